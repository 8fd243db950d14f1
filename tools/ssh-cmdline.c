/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ssh-cmdline.c - mig-ssh's command line: its options, -o's ssh_config(5)
 * keywords checked and normalised, [USER@]HOST and the remote command.
 * Apart from the session because nothing here touches libssh: it only
 * fills in struct cmdline.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mig.h"
#include "mig-ssh.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-ssh [-p PORT] [-l USER] [-i IDENTITY] [-F CONFIG] "
		"[-o Option=value]...\n"
		"               [USER@]HOST COMMAND...\n"
		"Run COMMAND on HOST over ssh with standard input as its input "
		"and its output\nand errors on standard output and error; exit "
		"with its exit status.\n\n"
		"  -p PORT         port to connect to\n"
		"  -l USER         user to log in as\n"
		"  -i IDENTITY     private key to try first (repeatable)\n"
		"  -F CONFIG       ssh configuration file instead of "
		"~/.ssh/config\n"
		"  -o OPTION=VALUE an ssh_config(5) option (repeatable)\n"
		"      --rate RATE send at most RATE bytes of stdin a second "
		"(K, M, G: 1024^n)\n"
		"  -v, --verbose   describe the connection on stderr "
		"(-vv: libssh's log)\n"
		"  -q, --quiet     no warnings\n"
		"  -h, --help      this help\n"
		"  -V, --version   version\n\n"
		"Exit status: the remote command's; 255 when mig-ssh fails "
		"(usage, connection,\nhost key, authentication, a connection "
		"lost before the command's exit status).\n");
}

/* ssh_config(5) keywords -o accepts: those libssh 0.10 applies, plus those
 * mig-ssh handles itself (tools/ssh-strict.c). */
static const char *const option_names[] = {
	"HostName", "Port", "User", "IdentityFile", "Ciphers", "MACs",
	"KexAlgorithms", "HostKeyAlgorithms", "PubkeyAcceptedKeyTypes",
	"PubkeyAcceptedAlgorithms", "UserKnownHostsFile",
	"GlobalKnownHostsFile", "ConnectTimeout", "Compression", "ProxyCommand",
	"ProxyJump", "RekeyLimit", "BindAddress", "IdentityAgent",
	"StrictHostKeyChecking", "BatchMode", "ServerAliveInterval",
	"ServerAliveCountMax", "RevokedHostKeys", NULL,
};

/* -o StrictHostKeyChecking, ServerAlive*, RevokedHostKeys and BatchMode,
 * kept here, not given to libssh (value v of -o arg). Returns 0, or -1
 * with a message. */
static int own_option(struct cmdline *c, const char *name, const char *v,
		      const char *arg)
{
	if (!strcmp(name, "StrictHostKeyChecking")) {
		enum strict s;
		if (migssh_parse_strict(v, &s) < 0) {
			mig_warn("-o '%s': not yes, no or accept-new", arg);
			return -1;
		}
		if (c->strict == STRICT_UNSET) /* the first one wins */
			c->strict = s;
		return 0;
	}
	if (!strcmp(name, "ServerAliveInterval") ||
	    !strcmp(name, "ServerAliveCountMax")) {
		bool count = !strcmp(name, "ServerAliveCountMax");
		long *slot = count ? &c->alive_count : &c->alive_interval;
		long n;
		if (migssh_parse_alive(v, count, &n) < 0) {
			mig_warn("-o '%s': not a number from %d to 86400", arg,
				 count ? 1 : 0);
			return -1;
		}
		if (*slot < 0) /* the first one wins */
			*slot = n;
		return 0;
	}
	if (!strcmp(name, "RevokedHostKeys"))
		return migssh_set_revoked(c, v);
	/* BatchMode */
	if (strcasecmp(v, "yes") != 0) {
		mig_warn("-o '%s': mig-ssh only runs in batch mode", arg);
		return -1;
	}
	return 0;
}

static bool is_own_option(const char *name)
{
	return !strcmp(name, "StrictHostKeyChecking") ||
	       !strcmp(name, "ServerAliveInterval") ||
	       !strcmp(name, "ServerAliveCountMax") ||
	       !strcmp(name, "RevokedHostKeys") || !strcmp(name, "BatchMode");
}

/* -o "Key=value" or "Key value" into "Key value" for libssh, or kept here
 * (own_option). Returns 0, or -1 with a message. */
static int add_option(struct cmdline *c, const char *arg)
{
	size_t klen = strcspn(arg, " \t=");
	const char *v = arg + klen;
	const char *name = NULL;

	v += strspn(v, " \t");
	if (*v == '=')
		v++;
	v += strspn(v, " \t");
	for (const char *const *n = option_names; *n; n++)
		if (strlen(*n) == klen && !strncasecmp(*n, arg, klen))
			name = *n;
	if (!name || !*v) {
		mig_warn("-o '%s': %s", arg, !name ? "unsupported option"
						   : "no value");
		return -1;
	}
	if (is_own_option(name))
		return own_option(c, name, v, arg);
	if (c->nopt == MAX_OPTIONS) {
		mig_warn("more than %d -o options", MAX_OPTIONS);
		return -1;
	}
	if (asprintf(&c->opt[c->nopt], "%s %s", name, v) < 0) {
		mig_warn("out of memory");
		return -1;
	}
	c->nopt++;
	return 0;
}

/* --help and --version: 0, or EXIT_OWN if stdout took no text. */
static int said(int status)
{
	return status == MIG_EXIT_OK ? 0 : EXIT_OWN;
}

/* -p PORT: 0, or -1 with a message */
static int set_port(struct cmdline *c, const char *arg)
{
	char *end;
	long p = strtol(arg, &end, 10);

	if (*arg == '\0' || *end || p < 1 || p > 65535) {
		mig_warn("-p '%s': not a port from 1 to 65535", arg);
		return -1;
	}
	c->port = arg;
	return 0;
}

static int add_identity(struct cmdline *c, const char *arg)
{
	if (c->nident == MAX_IDENTITIES) {
		mig_warn("more than %d -i", MAX_IDENTITIES);
		return -1;
	}
	c->ident[c->nident++] = arg;
	return 0;
}

/* mig-ssh's own options, up to HOST: MIG_GO_ON, or the exit status. */
static int parse_options(struct cmdline *c, int argc, char **argv)
{
	enum { OPT_RATE = 256 };
	static const struct option lo[] = {
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, r = 0;

	opterr = 0; /* our own messages, in one write */
	/* '+': stop at HOST, the command's own options are its own */
	while (r == 0 &&
	       (ch = getopt_long(argc, argv, "+p:l:i:F:o:qvhV", lo, NULL)) != -1) {
		switch (ch) {
		case 'p': r = set_port(c, optarg); break;
		case 'l': c->login = optarg; break;
		case 'F': c->config = optarg; break;
		case 'i': r = add_identity(c, optarg); break;
		case 'o': r = add_option(c, optarg); break;
		case OPT_RATE:
			r = mig_rate_option(optarg, &c->rate) == MIG_GO_ON ? 0 : -1;
			break;
		case 'q': c->quiet = true; break;
		case 'v': c->verbose++; break;
		case 'h': usage(stdout); return said(mig_stdout_finish());
		case 'V': return said(mig_print_version());
		default: return (mig_unknown_option(argv), EXIT_OWN);
		}
	}
	return r < 0 ? EXIT_OWN : MIG_GO_ON;
}

/* [USER@]HOST: 0, or -1 with a message */
static int set_host(struct cmdline *c, const char *arg)
{
	const char *at = strrchr(arg, '@');

	if (at) {
		if (!(c->user = strndup(arg, (size_t)(at - arg)))) {
			mig_warn("out of memory");
			return -1;
		}
		c->host = at + 1;
	} else
		c->host = arg;
	if (!*c->host || (at && !*c->user)) {
		mig_warn("'%s': not [USER@]HOST", arg);
		return -1;
	}
	return 0;
}

/* As ssh(1) does: the words joined by spaces, for the remote shell.
 * 0, or -1 with a message. */
static int join_command(struct cmdline *c, int n, char **words)
{
	size_t len = 1;

	for (int i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	if (!(c->command = malloc(len))) {
		mig_warn("out of memory");
		return -1;
	}
	c->command[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (i > 0)
			strcat(c->command, " ");
		strcat(c->command, words[i]);
	}
	return 0;
}

int migssh_parse_cmdline(struct cmdline *c, int argc, char **argv)
{
	int r = parse_options(c, argc, argv);

	if (r != MIG_GO_ON)
		return r;
	if (argc - optind < 2) {
		mig_usage_error("%s", argc == optind ? "no host given"
			: "no command given (mig-ssh opens no login shell)");
		return EXIT_OWN;
	}
	if (set_host(c, argv[optind]) < 0 ||
	    join_command(c, argc - optind - 1, argv + optind + 1) < 0)
		return EXIT_OWN;
	return MIG_GO_ON;
}

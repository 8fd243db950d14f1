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

/* -o "Key=value" or "Key value" into "Key value"; StrictHostKeyChecking,
 * ServerAlive*, RevokedHostKeys and BatchMode are kept here. Returns -1
 * with a message. */
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
		fprintf(stderr, "mig-ssh: -o '%s': %s\n", arg,
			!name ? "unsupported option" : "no value");
		return -1;
	}
	if (!strcmp(name, "StrictHostKeyChecking")) {
		enum strict s;
		if (migssh_parse_strict(v, &s) < 0) {
			fprintf(stderr, "mig-ssh: -o '%s': not yes, no or "
				"accept-new\n", arg);
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
			fprintf(stderr, "mig-ssh: -o '%s': not a number from "
				"%d to 86400\n", arg, count ? 1 : 0);
			return -1;
		}
		if (*slot < 0) /* the first one wins */
			*slot = n;
		return 0;
	}
	if (!strcmp(name, "RevokedHostKeys"))
		return migssh_set_revoked(c, v);
	if (!strcmp(name, "BatchMode")) {
		if (strcasecmp(v, "yes") != 0) {
			fprintf(stderr, "mig-ssh: -o '%s': mig-ssh only runs "
				"in batch mode\n", arg);
			return -1;
		}
		return 0;
	}
	if (c->nopt == MAX_OPTIONS) {
		fprintf(stderr, "mig-ssh: more than %d -o options\n",
			MAX_OPTIONS);
		return -1;
	}
	if (asprintf(&c->opt[c->nopt], "%s %s", name, v) < 0) {
		fprintf(stderr, "mig-ssh: out of memory\n");
		return -1;
	}
	c->nopt++;
	return 0;
}

/* Returns 0, or the exit status to leave with (-1 for success: help). */
int migssh_parse_cmdline(struct cmdline *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	/* '+': stop at HOST, the command's own options are its own */
	while ((ch = getopt_long(argc, argv, "+p:l:i:F:o:qvhV", lo, NULL)) != -1) {
		switch (ch) {
		case 'p': {
			char *end;
			long p = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || p < 1 || p > 65535) {
				fprintf(stderr, "mig-ssh: -p '%s': not a port "
					"from 1 to 65535\n", optarg);
				return EXIT_OWN;
			}
			c->port = optarg;
			break;
		}
		case 'l': c->login = optarg; break;
		case 'F': c->config = optarg; break;
		case 'i':
			if (c->nident == MAX_IDENTITIES) {
				fprintf(stderr, "mig-ssh: more than %d -i\n",
					MAX_IDENTITIES);
				return EXIT_OWN;
			}
			c->ident[c->nident++] = optarg;
			break;
		case 'o':
			if (add_option(c, optarg) < 0)
				return EXIT_OWN;
			break;
		case 'q': c->quiet = true; break;
		case 'v': c->verbose++; break;
		case 'h': usage(stdout); return -1;
		case 'V': printf("mig-ssh (migkit) %s\n", MIG_VERSION_STRING);
			return -1;
		default:
			fprintf(stderr, "Try 'mig-ssh --help'.\n");
			return EXIT_OWN;
		}
	}
	if (argc - optind < 2) {
		fprintf(stderr, "mig-ssh: %s\nTry 'mig-ssh --help'.\n",
			argc == optind ? "no host given"
				       : "no command given (mig-ssh opens no "
					 "login shell)");
		return EXIT_OWN;
	}
	const char *at = strrchr(argv[optind], '@');
	if (at) {
		c->user = strndup(argv[optind], (size_t)(at - argv[optind]));
		if (!c->user) {
			fprintf(stderr, "mig-ssh: out of memory\n");
			return EXIT_OWN;
		}
		c->host = at + 1;
	} else
		c->host = argv[optind];
	if (!*c->host || (at && !*c->user)) {
		fprintf(stderr, "mig-ssh: '%s': not [USER@]HOST\n", argv[optind]);
		return EXIT_OWN;
	}
	/* as ssh(1) does: the words joined by spaces, for the remote shell */
	size_t len = 1;
	for (int i = optind + 1; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if (!(c->command = malloc(len))) {
		fprintf(stderr, "mig-ssh: out of memory\n");
		return EXIT_OWN;
	}
	c->command[0] = '\0';
	for (int i = optind + 1; i < argc; i++) {
		if (i > optind + 1)
			strcat(c->command, " ");
		strcat(c->command, argv[i]);
	}
	return 0;
}

/*
 * mig-ssh - carry a stream to another host and run the receiving side
 * there, like `ssh HOST COMMAND`, on libssh.
 *
 * stdin goes to the remote command's stdin, then EOF; its stdout comes
 * back on stdout and its stderr on stderr; the exit status is the remote
 * command's, 255 for mig-ssh's own failures (as OpenSSH does). Batch mode
 * only: host keys are checked against known_hosts before anything is sent
 * and nothing is ever read from the terminal or from stdin (the stream).
 *
 * The transfer runs on a non-blocking session with our own poll() loop:
 * libssh's ssh_connector moves 4 KiB at a time and takes a full window for
 * EOF, so it is not used.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "mig.h"

#define EXIT_OWN 255
#define BUF_SIZE (1u << 20)
#define MAX_IDENTITIES 32
#define MAX_OPTIONS 64

/* When the user sets no Ciphers: AES-GCM first (about twice as fast as
 * chacha20-poly1305 with AES-NI), then what OpenSSH offers. */
static const char default_ciphers[] =
	"aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
	"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";

enum strict { STRICT_UNSET, STRICT_YES, STRICT_ACCEPT_NEW, STRICT_NO };

struct cmdline {
	const char *port, *login, *config;
	const char *ident[MAX_IDENTITIES];
	size_t nident;
	char *opt[MAX_OPTIONS]; /* "Keyword value", -o after normalising */
	size_t nopt;
	enum strict strict;
	bool quiet;
	int verbose;
	long alive_interval, alive_count; /* ServerAlive*, -1: default */
	const char *host;  /* as given: what messages and Host blocks use */
	char *user;        /* from USER@HOST */
	char *command;
};

static const char *msg_host = "";

static void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mig-ssh: %s: ", msg_host);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- Options --------------------------------------------------------------- */

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

/* ssh_config(5) keywords -o accepts: those libssh 0.10 applies, plus the
 * two mig-ssh handles itself. */
static const char *const option_names[] = {
	"HostName", "Port", "User", "IdentityFile", "Ciphers", "MACs",
	"KexAlgorithms", "HostKeyAlgorithms", "PubkeyAcceptedKeyTypes",
	"PubkeyAcceptedAlgorithms", "UserKnownHostsFile",
	"GlobalKnownHostsFile", "ConnectTimeout", "Compression", "ProxyCommand",
	"ProxyJump", "RekeyLimit", "BindAddress", "IdentityAgent",
	"StrictHostKeyChecking", "BatchMode", "ServerAliveInterval",
	"ServerAliveCountMax", NULL,
};

/* A dead link (no ACK, no packet) is given up after ServerAliveInterval *
 * ServerAliveCountMax seconds: without it, data unacknowledged on a cut
 * link waits for TCP's retries (about 15 minutes) and an idle connection
 * forever. */
#define ALIVE_INTERVAL 15
#define ALIVE_COUNT 3

static int parse_strict(const char *v, enum strict *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "ask"))
		*out = STRICT_YES; /* batch mode: no one to ask */
	else if (!strcasecmp(v, "accept-new"))
		*out = STRICT_ACCEPT_NEW;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "off"))
		*out = STRICT_NO;
	else
		return -1;
	return 0;
}

/* -o "Key=value" or "Key value" into "Key value"; StrictHostKeyChecking
 * and BatchMode are kept here. Returns -1 with a message. */
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
		if (parse_strict(v, &s) < 0) {
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
		char *end;
		long n = strtol(v, &end, 10);
		if (*end || n < (count ? 1 : 0) || n > 86400) {
			fprintf(stderr, "mig-ssh: -o '%s': not a number from "
				"%d to 86400\n", arg, count ? 1 : 0);
			return -1;
		}
		long *slot = count ? &c->alive_count : &c->alive_interval;
		if (*slot < 0) /* the first one wins */
			*slot = n;
		return 0;
	}
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
static int parse_cmdline(struct cmdline *c, int argc, char **argv)
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

/* ---- StrictHostKeyChecking from the configuration ---------------------------
 * libssh's parser knows only yes/no for it and keeps it to itself, so the
 * files are read here for that one keyword: Host blocks matched against
 * the host as given, Include followed, the first value wins. A Match block
 * cannot be evaluated here and is skipped: the default stays strict. */

static bool pattern_match(const char *pat, const char *s)
{
	if (!*pat)
		return !*s;
	if (*pat == '*') {
		for (;; s++) {
			if (pattern_match(pat + 1, s))
				return true;
			if (!*s)
				return false;
		}
	}
	if (!*s)
		return false;
	if (*pat == '?' || tolower((unsigned char)*pat) == tolower((unsigned char)*s))
		return pattern_match(pat + 1, s + 1);
	return false;
}

/* "Host a b !c": true if some pattern matches and no negated one does. */
static bool host_line_matches(char *list, const char *host)
{
	bool hit = false;
	char *save = NULL;

	for (char *p = strtok_r(list, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
		if (*p == '!') {
			if (pattern_match(p + 1, host))
				return false;
		} else if (pattern_match(p, host))
			hit = true;
	}
	return hit;
}

static void strict_from_file(const char *path, const char *host,
			     enum strict *out, int depth);

static void strict_include(const char *arg, const char *host, enum strict *out,
			   int depth, bool user_file)
{
	char pat[PATH_MAX];
	glob_t g;
	const char *home = getenv("HOME");
	struct passwd *pw = getpwuid(getuid());

	if (pw && pw->pw_dir)
		home = pw->pw_dir;
	if (arg[0] == '~' && arg[1] == '/' && home)
		snprintf(pat, sizeof pat, "%s%s", home, arg + 1);
	else if (arg[0] == '/')
		snprintf(pat, sizeof pat, "%s", arg);
	else if (user_file && home)
		snprintf(pat, sizeof pat, "%s/.ssh/%s", home, arg);
	else
		snprintf(pat, sizeof pat, "/etc/ssh/%s", arg);
	if (glob(pat, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc && *out == STRICT_UNSET; i++)
		strict_from_file(g.gl_pathv[i], host, out, depth + 1);
	globfree(&g);
}

static void strict_from_file(const char *path, const char *host,
			     enum strict *out, int depth)
{
	FILE *f;
	char line[4096];
	bool active = true, user_file = !strstr(path, "/etc/ssh/");

	if (depth > 8 || !(f = fopen(path, "re")))
		return;
	while (*out == STRICT_UNSET && fgets(line, sizeof line, f)) {
		char *k = line + strspn(line, " \t");
		size_t klen = strcspn(k, " \t=\r\n");
		char *v = k + klen;

		if (*k == '#' || klen == 0)
			continue;
		v += strspn(v, " \t");
		if (*v == '=')
			v++;
		v += strspn(v, " \t");
		v[strcspn(v, "\r\n")] = '\0';
		for (size_t n = strlen(v); n && (v[n - 1] == ' ' || v[n - 1] == '\t');)
			v[--n] = '\0';
		k[klen] = '\0';
		if (!strcasecmp(k, "Host"))
			active = host_line_matches(v, host);
		else if (!strcasecmp(k, "Match"))
			active = !strcasecmp(v, "all");
		else if (active && !strcasecmp(k, "Include")) {
			char *save = NULL;
			for (char *p = strtok_r(v, " \t", &save); p && *out == STRICT_UNSET;
			     p = strtok_r(NULL, " \t", &save))
				strict_include(p, host, out, depth, user_file);
		} else if (active && !strcasecmp(k, "StrictHostKeyChecking")) {
			if (parse_strict(v, out) < 0)
				*out = STRICT_YES;
		}
	}
	fclose(f);
}

static enum strict strict_from_config(const struct cmdline *c)
{
	enum strict s = STRICT_UNSET;
	struct passwd *pw = getpwuid(getuid());
	char path[PATH_MAX];

	if (c->config)
		strict_from_file(c->config, c->host, &s, 0);
	else {
		if (pw && pw->pw_dir) {
			snprintf(path, sizeof path, "%s/.ssh/config", pw->pw_dir);
			strict_from_file(path, c->host, &s, 0);
		}
		if (s == STRICT_UNSET)
			strict_from_file("/etc/ssh/ssh_config", c->host, &s, 0);
	}
	return s == STRICT_UNSET ? STRICT_YES : s;
}

/* ---- Session set-up ---------------------------------------------------------- */

/* libssh's default would prompt on stdin for a key's passphrase: never. */
static int no_passphrase(const char *prompt, char *buf, size_t len, int echo,
			 int verify, void *userdata)
{
	(void)prompt, (void)buf, (void)len, (void)echo, (void)verify;
	(void)userdata;
	return -1;
}

/* Apply the -o options through libssh's own config parser: they are
 * written to an anonymous file it reads before the user's configuration,
 * so they take precedence as on ssh(1)'s command line. */
static int apply_options(ssh_session s, const struct cmdline *c)
{
	char path[64];
	int fd, rc = 0;

	if (!c->nopt)
		return 0;
	if ((fd = memfd_create("mig-ssh-options", MFD_CLOEXEC)) < 0) {
		die_msg("-o options: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < c->nopt && rc == 0; i++) {
		struct mig_err e;
		if (mig_write_all(fd, c->opt[i], strlen(c->opt[i]), &e) < 0 ||
		    mig_write_all(fd, "\n", 1, &e) < 0) {
			die_msg("-o options: %s", e.msg);
			rc = -1;
		}
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (rc == 0 && ssh_options_parse_config(s, path) < 0) {
		die_msg("-o options: %s", ssh_get_error(s));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* ServerAliveInterval/CountMax on the TCP socket: keepalive probes when
 * idle, and TCP_USER_TIMEOUT when sent data stays unacknowledged; either
 * way the socket fails (ETIMEDOUT) and the transfer ends with "connection
 * lost". Not a socket (ProxyCommand): nothing to set. */
static void set_alive(ssh_session s, const struct cmdline *c)
{
	int fd = ssh_get_fd(s);
	int iv = (int)(c->alive_interval < 0 ? ALIVE_INTERVAL : c->alive_interval);
	int cnt = (int)(c->alive_count < 0 ? ALIVE_COUNT : c->alive_count);
	int on = 1;
	unsigned int tmo = (unsigned int)iv * (unsigned int)cnt * 1000u;

	if (fd < 0 || iv == 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0)
		return;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &iv, sizeof iv);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &iv, sizeof iv);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &tmo, sizeof tmo);
}

static int configure(ssh_session s, const struct cmdline *c)
{
	int verbosity = c->verbose >= 2 ? SSH_LOG_PROTOCOL : SSH_LOG_NOLOG;
	int yes = 1;

	if (ssh_options_set(s, SSH_OPTIONS_HOST, c->host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    /* before the configuration, so that its Ciphers wins */
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, default_ciphers) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, default_ciphers) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_COMPRESSION, "no") < 0) {
		die_msg("cannot set up the session: %s", ssh_get_error(s));
		return -1;
	}
	if (c->config && access(c->config, R_OK) != 0) {
		die_msg("cannot read the configuration %s: %s", c->config,
			strerror(errno));
		return -1;
	}
	/* -o first: libssh, like ssh(1), keeps the first value it parses
	 * for a keyword; then ~/.ssh/config and /etc/ssh/ssh_config, or
	 * only -F's file */
	if (apply_options(s, c) < 0)
		return -1;
	if (ssh_options_parse_config(s, c->config) < 0) {
		die_msg("configuration %s: %s",
			c->config ? c->config : "~/.ssh/config", ssh_get_error(s));
		return -1;
	}
	/* The policy is ours (verify_host): with libssh's own flag off,
	 * ssh_session_is_known_server() calls an unknown host known. */
	const char *user = c->user ? c->user : c->login;
	if (ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &yes) < 0 ||
	    (user && ssh_options_set(s, SSH_OPTIONS_USER, user) < 0) ||
	    (c->port && ssh_options_set(s, SSH_OPTIONS_PORT_STR, c->port) < 0)) {
		die_msg("%s", ssh_get_error(s));
		return -1;
	}
	/* -i: tried before the configuration's and the default identities */
	for (size_t i = c->nident; i-- > 0;) {
		if (access(c->ident[i], R_OK) != 0 && !c->quiet)
			die_msg("warning: identity file %s not accessible: %s",
				c->ident[i], strerror(errno));
		if (ssh_options_set(s, SSH_OPTIONS_IDENTITY, c->ident[i]) < 0) {
			die_msg("-i %s: %s", c->ident[i], ssh_get_error(s));
			return -1;
		}
	}
	return 0;
}

/* "ED25519", as ssh(1) names key types in its messages */
static const char *key_type_name(ssh_key k)
{
	switch (ssh_key_type(k)) {
	case SSH_KEYTYPE_ED25519: return "ED25519";
	case SSH_KEYTYPE_RSA: return "RSA";
	case SSH_KEYTYPE_ECDSA_P256:
	case SSH_KEYTYPE_ECDSA_P384:
	case SSH_KEYTYPE_ECDSA_P521: return "ECDSA";
	default: return ssh_key_type_to_char(ssh_key_type(k));
	}
}

/* Verify the server's host key before anything else is sent. */
static int verify_host(ssh_session s, const struct cmdline *c, enum strict strict)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL, *known = NULL, *file = NULL;
	unsigned int port = 22;
	char *host = NULL, entry[300];
	int rc = -1;

	if (ssh_get_server_publickey(s, &key) < 0 ||
	    ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) < 0 ||
	    !(fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen))) {
		die_msg("host key verification failed: cannot read the "
			"server's key: %s", ssh_get_error(s));
		goto out;
	}
	ssh_options_get_port(s, &port);
	ssh_options_get(s, SSH_OPTIONS_HOST, &host);
	ssh_options_get(s, SSH_OPTIONS_KNOWNHOSTS, &file);
	if (port == 22)
		snprintf(entry, sizeof entry, "%s", host ? host : c->host);
	else
		snprintf(entry, sizeof entry, "[%s]:%u", host ? host : c->host, port);
	known = file ? file : strdup("~/.ssh/known_hosts");

	switch (ssh_session_is_known_server(s)) {
	case SSH_KNOWN_HOSTS_OK:
		rc = 0;
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		fprintf(stderr,
			"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
			"@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
			"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
			"IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
			"Someone could be eavesdropping on you right now "
			"(man-in-the-middle attack)!\n"
			"It is also possible that a host key has just been changed.\n"
			"The fingerprint for the %s key sent by the remote host is\n"
			"%s.\n"
			"Please contact your system administrator.\n"
			"Add correct host key in %s to get rid of this message.\n",
			key_type_name(key), fp, known);
		die_msg("host key verification failed: the host key of %s "
			"has changed (%s key %s), refusing to connect",
			entry, key_type_name(key), fp);
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		if (strict == STRICT_YES) {
			die_msg("host key verification failed: no host key is "
				"known for %s and StrictHostKeyChecking is yes "
				"(%s key %s)", entry, key_type_name(key), fp);
			break;
		}
		if (ssh_session_update_known_hosts(s) < 0) {
			die_msg("host key verification failed: cannot add the "
				"key of %s to %s: %s", entry, known,
				ssh_get_error(s));
			break;
		}
		if (!c->quiet)
			die_msg("warning: permanently added %s (%s key %s) to "
				"%s", entry, key_type_name(key), fp, known);
		rc = 0;
		break;
	default:
		die_msg("host key verification failed: cannot check the key "
			"of %s against %s: %s", entry, known, ssh_get_error(s));
		break;
	}
out:
	free(host);
	free(known);
	if (fp)
		ssh_string_free_char(fp);
	if (hash)
		ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return rc;
}

static int authenticate(ssh_session s, const struct cmdline *c)
{
	char *user = NULL;
	int rc;

	(void)c;
	rc = ssh_userauth_publickey_auto(s, NULL, NULL);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	ssh_options_get(s, SSH_OPTIONS_USER, &user);
	if (rc == SSH_AUTH_ERROR)
		die_msg("authentication as %s failed: %s", user ? user : "?",
			ssh_get_error(s));
	else {
		int m = ssh_userauth_list(s, NULL);
		char methods[128] = "";
		if (m & SSH_AUTH_METHOD_PUBLICKEY)
			strcat(methods, ",publickey");
		if (m & SSH_AUTH_METHOD_PASSWORD)
			strcat(methods, ",password");
		if (m & SSH_AUTH_METHOD_INTERACTIVE)
			strcat(methods, ",keyboard-interactive");
		if (m & SSH_AUTH_METHOD_GSSAPI_MIC)
			strcat(methods, ",gssapi-with-mic");
		if (m & SSH_AUTH_METHOD_HOSTBASED)
			strcat(methods, ",hostbased");
		die_msg("authentication as %s failed: permission denied (%s): "
			"no key from the agent, -i or the default identities "
			"was accepted", user ? user : "?",
			methods[0] ? methods + 1 : "none");
	}
	free(user);
	return -1;
}

/* ---- The transfer ------------------------------------------------------------ */

struct exit_info {
	bool have_status, have_signal, core;
	int status;
	char signal[32];
};

static void on_exit_status(ssh_session s, ssh_channel ch, int status, void *u)
{
	struct exit_info *x = u;

	(void)s, (void)ch;
	x->have_status = true;
	x->status = status;
}

static void on_exit_signal(ssh_session s, ssh_channel ch, const char *sig,
			   int core, const char *errmsg, const char *lang, void *u)
{
	struct exit_info *x = u;

	(void)s, (void)ch, (void)errmsg, (void)lang;
	x->have_signal = true;
	x->core = core;
	snprintf(x->signal, sizeof x->signal, "%s", sig ? sig : "?");
}

struct xfer {
	ssh_session s;
	ssh_channel ch;
	uint8_t *in, *out;
	size_t in_off, in_len;
	uint64_t sent, received;
	bool in_eof;    /* stdin ended (or the remote stopped taking it) */
	bool eof_sent;
	bool stream_eof[2];
	bool cut_short; /* the channel closed before stdin's end */
};

static int lost(struct xfer *x, const char *when)
{
	die_msg("connection lost %s: %s", when,
		ssh_get_error(x->s)[0] ? ssh_get_error(x->s) : "closed");
	return -1;
}

/* One pass of work that does not block; *progress when anything moved.
 * Returns 0, or -1 with a message. */
static int step(struct xfer *x, bool stdin_ready, bool *progress)
{
	struct mig_err e;

	if (stdin_ready && x->in_len == 0 && !x->in_eof) {
		ssize_t n = read(0, x->in, BUF_SIZE);
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			die_msg("read from stdin: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			x->in_eof = true;
		if (n > 0) {
			x->in_off = 0;
			x->in_len = (size_t)n;
		}
		*progress = true;
	}
	if (x->in_len > 0) {
		if (ssh_channel_is_closed(x->ch)) {
			/* the remote command is gone: like ssh(1), the rest
			 * of stdin is not sent */
			x->in_len = 0;
			x->in_eof = x->eof_sent = x->cut_short = true;
		} else {
			int n = ssh_channel_write(x->ch, x->in + x->in_off,
						  (uint32_t)x->in_len);
			if (n == SSH_ERROR) {
				if (ssh_is_connected(x->s) && ssh_channel_is_closed(x->ch)) {
					x->in_len = 0;
					x->in_eof = x->eof_sent = x->cut_short = true;
					*progress = true;
				} else
					return lost(x, "while sending");
			} else if (n > 0) {
				x->in_off += (size_t)n;
				x->in_len -= (size_t)n;
				x->sent += (uint64_t)n;
				*progress = true;
			}
		}
	}
	if (x->in_eof && x->in_len == 0 && !x->eof_sent) {
		if (ssh_channel_send_eof(x->ch) == SSH_ERROR &&
		    !ssh_channel_is_closed(x->ch))
			return lost(x, "while sending EOF");
		x->eof_sent = true;
		*progress = true;
	}
	/* Read only as much as we write at once: our buffer is empty
	 * whenever we read, so libssh's window never outgrows what the
	 * output takes. stderr is drained too, or EOF never shows. */
	for (int is_err = 0; is_err < 2; is_err++) {
		if (x->stream_eof[is_err])
			continue;
		int n = ssh_channel_read_nonblocking(x->ch, x->out, BUF_SIZE, is_err);
		if (n == SSH_EOF || (n == 0 && ssh_channel_is_eof(x->ch))) {
			x->stream_eof[is_err] = true;
			*progress = true;
		} else if (n < 0) {
			return lost(x, "while receiving");
		} else if (n > 0) {
			if (mig_write_all(is_err ? 2 : 1, x->out, (size_t)n, &e) < 0) {
				die_msg("%s", e.msg);
				return -1;
			}
			x->received += (uint64_t)n;
			*progress = true;
		}
	}
	/* push out what libssh could not write yet */
	if (ssh_get_poll_flags(x->s) & SSH_WRITE_PENDING) {
		if (ssh_blocking_flush(x->s, 0) == SSH_ERROR)
			return lost(x, "while sending");
	}
	return 0;
}

static bool finished(struct xfer *x, const struct exit_info *ei)
{
	if (!x->stream_eof[0] || !x->stream_eof[1])
		return ssh_channel_is_closed(x->ch) &&
		       ssh_channel_poll(x->ch, 0) <= 0 &&
		       ssh_channel_poll(x->ch, 1) <= 0;
	return ei->have_status || ei->have_signal || ssh_channel_is_closed(x->ch);
}

static int transfer(struct xfer *x, struct exit_info *ei)
{
	bool stdin_ready = false;

	ssh_set_blocking(x->s, 0);
	for (;;) {
		bool progress = false;

		if (step(x, stdin_ready, &progress) < 0)
			return -1;
		stdin_ready = false;
		if (!ssh_is_connected(x->s))
			return lost(x, "");
		/* after the remote's EOF channel_read no longer reads
		 * packets: this does, until the exit status comes */
		if (x->stream_eof[0] && x->stream_eof[1] && !ei->have_status &&
		    !ei->have_signal && !ssh_channel_is_closed(x->ch))
			ssh_channel_get_exit_status(x->ch);
		if (finished(x, ei))
			return 0;
		if (progress)
			continue;

		struct pollfd p[2];
		nfds_t n = 0;
		p[n++] = (struct pollfd){ .fd = ssh_get_fd(x->s), .events = POLLIN };
		if (ssh_get_poll_flags(x->s) & SSH_WRITE_PENDING)
			p[0].events |= POLLOUT;
		if (!x->in_eof && x->in_len == 0)
			p[n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
		/* a bounded wait: the state is re-checked at least once a
		 * second whatever libssh did with the socket meanwhile */
		if (poll(p, n, 1000) < 0 && errno != EINTR) {
			die_msg("poll: %s", strerror(errno));
			return -1;
		}
		if (n == 2 && p[1].revents)
			stdin_ready = true;
	}
}

/* ---- main -------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct cmdline c = { .strict = STRICT_UNSET, .alive_interval = -1,
			     .alive_count = -1 };
	struct exit_info ei = { 0 };
	struct xfer x = { 0 };
	struct ssh_callbacks_struct cb = { .auth_function = no_passphrase };
	struct ssh_channel_callbacks_struct chcb = {
		.userdata = &ei,
		.channel_exit_status_function = on_exit_status,
		.channel_exit_signal_function = on_exit_signal,
	};
	int rc = EXIT_OWN, r;

	mig_progname = "mig-ssh";
	signal(SIGPIPE, SIG_IGN);
	r = parse_cmdline(&c, argc, argv);
	if (r != 0) {
		rc = r < 0 ? 0 : r;
		goto out_args;
	}
	msg_host = c.host;
	enum strict strict = c.strict != STRICT_UNSET ? c.strict
						      : strict_from_config(&c);

	ssh_init();
	if (!(x.s = ssh_new())) {
		die_msg("out of memory");
		goto out_lib;
	}
	ssh_callbacks_init(&cb);
	ssh_set_callbacks(x.s, &cb);
	if (configure(x.s, &c) < 0)
		goto out_session;
	if (ssh_connect(x.s) != SSH_OK) {
		unsigned int port = 22;
		char *host = NULL;
		ssh_options_get_port(x.s, &port);
		ssh_options_get(x.s, SSH_OPTIONS_HOST, &host);
		die_msg("cannot connect to %s port %u: %s", host ? host : c.host,
			port, ssh_get_error(x.s));
		free(host);
		goto out_session;
	}
	set_alive(x.s, &c);
	if (verify_host(x.s, &c, strict) < 0 || authenticate(x.s, &c) < 0)
		goto out_disconnect;
	if (c.verbose) {
		char *user = NULL, *host = NULL;
		unsigned int port = 22;
		ssh_options_get(x.s, SSH_OPTIONS_USER, &user);
		ssh_options_get(x.s, SSH_OPTIONS_HOST, &host);
		ssh_options_get_port(x.s, &port);
		die_msg("connected to %s port %u as %s, cipher %s", host, port,
			user, ssh_get_cipher_out(x.s));
		free(user);
		free(host);
	}
	if (!(x.ch = ssh_channel_new(x.s)) ||
	    ssh_channel_open_session(x.ch) != SSH_OK) {
		die_msg("cannot open a session channel: %s", ssh_get_error(x.s));
		goto out_disconnect;
	}
	ssh_callbacks_init(&chcb);
	ssh_set_channel_callbacks(x.ch, &chcb);
	if (ssh_channel_request_exec(x.ch, c.command) != SSH_OK) {
		die_msg("cannot run the command: %s", ssh_get_error(x.s));
		goto out_channel;
	}
	if (!(x.in = malloc(BUF_SIZE)) || !(x.out = malloc(BUF_SIZE))) {
		die_msg("out of memory");
		goto out_channel;
	}
	mig_pipe_grow(0);
	mig_pipe_grow(1);
	if (transfer(&x, &ei) < 0) {
		/* our side failed: never let the remote take it for a
		 * clean end (no EOF is sent; ask for the command's end) */
		if (ssh_is_connected(x.s) && !ssh_channel_is_closed(x.ch))
			ssh_channel_request_send_signal(x.ch, "TERM");
		goto out_channel;
	}
	if (ei.have_status) {
		rc = ei.status & 0xff;
		if (x.cut_short && !c.quiet)
			die_msg("warning: the remote command ended before "
				"reading all of stdin (%llu bytes sent)",
				(unsigned long long)x.sent);
	} else if (ei.have_signal)
		die_msg("the remote command was killed by signal %s%s",
			ei.signal, ei.core ? " (core dumped)" : "");
	else
		die_msg("connection closed without an exit status from the "
			"remote command (%llu bytes sent, %llu received)",
			(unsigned long long)x.sent, (unsigned long long)x.received);
	if (c.verbose)
		die_msg("%llu bytes sent, %llu received, exit status %d",
			(unsigned long long)x.sent, (unsigned long long)x.received,
			rc);
out_channel:
	free(x.in);
	free(x.out);
	if (ssh_is_connected(x.s))
		ssh_channel_close(x.ch);
	ssh_channel_free(x.ch);
out_disconnect:
	ssh_disconnect(x.s);
out_session:
	ssh_free(x.s);
out_lib:
	ssh_finalize();
out_args:
	for (size_t i = 0; i < c.nopt; i++)
		free(c.opt[i]);
	free(c.user);
	free(c.command);
	return rc;
}

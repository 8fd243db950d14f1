/*
 * ssh-config.c - the libssh session's options: our default ciphers, the -o
 * options, the configuration files, user, port and -i identities before
 * connecting; ServerAlive* on the socket after. Apart from the host key
 * and authentication: this only says how to connect, not whom to trust.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "mig.h"
#include "mig-ssh.h"

/* When the user sets no Ciphers: AES-GCM first (about twice as fast as
 * chacha20-poly1305 with AES-NI), then what OpenSSH offers. */
static const char default_ciphers[] =
	"aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
	"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";

/* A dead link (no ACK, no packet) is given up after ServerAliveInterval *
 * ServerAliveCountMax seconds: without it, data unacknowledged on a cut
 * link waits for TCP's retries (about 15 minutes) and an idle connection
 * forever. */
#define ALIVE_INTERVAL 15
#define ALIVE_COUNT 3

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
		migssh_die_msg("-o options: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < c->nopt && rc == 0; i++) {
		struct mig_err e;
		if (mig_write_all(fd, c->opt[i], strlen(c->opt[i]), &e) < 0 ||
		    mig_write_all(fd, "\n", 1, &e) < 0) {
			migssh_die_msg("-o options: %s", e.msg);
			rc = -1;
		}
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (rc == 0 && ssh_options_parse_config(s, path) < 0) {
		migssh_die_msg("-o options: %s", ssh_get_error(s));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* ServerAliveInterval/CountMax on the TCP socket: keepalive probes when
 * idle, and TCP_USER_TIMEOUT when sent data stays unacknowledged; either
 * way the socket fails (ETIMEDOUT) and the transfer ends with "connection
 * lost". Not a socket (ProxyCommand): nothing to set. */
void migssh_set_alive(ssh_session s, const struct cmdline *c)
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

int migssh_configure(ssh_session s, const struct cmdline *c)
{
	int verbosity = c->verbose >= 2 ? SSH_LOG_PROTOCOL : SSH_LOG_NOLOG;
	int yes = 1;

	if (ssh_options_set(s, SSH_OPTIONS_HOST, c->host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    /* before the configuration, so that its Ciphers wins */
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, default_ciphers) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, default_ciphers) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_COMPRESSION, "no") < 0) {
		migssh_die_msg("cannot set up the session: %s", ssh_get_error(s));
		return -1;
	}
	if (c->config && access(c->config, R_OK) != 0) {
		migssh_die_msg("cannot read the configuration %s: %s", c->config,
			strerror(errno));
		return -1;
	}
	/* -o first: libssh, like ssh(1), keeps the first value it parses
	 * for a keyword; then ~/.ssh/config and /etc/ssh/ssh_config, or
	 * only -F's file */
	if (apply_options(s, c) < 0)
		return -1;
	if (ssh_options_parse_config(s, c->config) < 0) {
		migssh_die_msg("configuration %s: %s",
			c->config ? c->config : "~/.ssh/config", ssh_get_error(s));
		return -1;
	}
	/* The policy is ours (migssh_verify_host): with libssh's own flag off,
	 * ssh_session_is_known_server() calls an unknown host known. */
	const char *user = c->user ? c->user : c->login;
	if (ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &yes) < 0 ||
	    (user && ssh_options_set(s, SSH_OPTIONS_USER, user) < 0) ||
	    (c->port && ssh_options_set(s, SSH_OPTIONS_PORT_STR, c->port) < 0)) {
		migssh_die_msg("%s", ssh_get_error(s));
		return -1;
	}
	/* -i: tried before the configuration's and the default identities */
	for (size_t i = c->nident; i-- > 0;) {
		if (access(c->ident[i], R_OK) != 0 && !c->quiet)
			migssh_die_msg("warning: identity file %s not accessible: %s",
				c->ident[i], strerror(errno));
		if (ssh_options_set(s, SSH_OPTIONS_IDENTITY, c->ident[i]) < 0) {
			migssh_die_msg("-i %s: %s", c->ident[i], ssh_get_error(s));
			return -1;
		}
	}
	return 0;
}

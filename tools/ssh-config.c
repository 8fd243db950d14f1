/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ssh-config.c - the libssh session's options: our default ciphers, the -o
 * options, the configuration files, user, port and -i identities, and how
 * long libssh waits for an answer while connecting. Apart from the host
 * key and authentication: this only says how to connect, not whom to trust.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "mig.h"
#include "mig-ssh.h"

/* When the user sets no Ciphers: AES-GCM first (about twice as fast as
 * chacha20-poly1305 with AES-NI), then what OpenSSH offers. */
static const char default_ciphers[] =
	"aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
	"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";

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
		migssh_say("-o options: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < c->nopt && rc == 0; i++) {
		struct mig_err e;
		if (mig_write_all(fd, c->opt[i], strlen(c->opt[i]), &e) < 0 ||
		    mig_write_all(fd, "\n", 1, &e) < 0) {
			migssh_say("-o options: %s", e.msg);
			rc = -1;
		}
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (rc == 0 && ssh_options_parse_config(s, path) < 0) {
		migssh_say("-o options: %s", ssh_get_error(s));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* Host, log level and what the configuration may override: our ciphers,
 * no compression, how long to wait. */
static int set_defaults(ssh_session s, const struct cmdline *c)
{
	int verbosity = c->verbose >= 2 ? SSH_LOG_PROTOCOL : SSH_LOG_NOLOG;
	/* Until the command runs, libssh waits for each answer itself (the
	 * key exchange, authentication, the channel, the exec request): a
	 * server silent for as long as keepalives would allow during the
	 * transfer is given up there too. Set before the configuration, so
	 * that ConnectTimeout wins; with ServerAliveInterval 0, libssh's
	 * own defaults (10 s to connect, then no limit). */
	long wait_s = c->alive_interval * (c->alive_count + 1);

	if (ssh_options_set(s, SSH_OPTIONS_HOST, c->host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    /* before the configuration, so that its Ciphers wins */
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, default_ciphers) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, default_ciphers) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_COMPRESSION, "no") < 0 ||
	    (wait_s > 0 && ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &wait_s) < 0)) {
		migssh_say("cannot set up the session: %s", ssh_get_error(s));
		return -1;
	}
	return 0;
}

/* -o first: libssh, like ssh(1), keeps the first value it parses for a
 * keyword; then ~/.ssh/config and /etc/ssh/ssh_config, or only -F's
 * file. */
static int read_configuration(ssh_session s, const struct cmdline *c)
{
	if (c->config && access(c->config, R_OK) != 0) {
		migssh_say("cannot read the configuration %s: %s", c->config,
			strerror(errno));
		return -1;
	}
	if (apply_options(s, c) < 0)
		return -1;
	if (ssh_options_parse_config(s, c->config) < 0) {
		migssh_say("configuration %s: %s",
			c->config ? c->config : "~/.ssh/config", ssh_get_error(s));
		return -1;
	}
	return 0;
}

/* What the command line says over the configuration: the user, the port,
 * and host key checking on (the policy is ours, in migssh_verify_host:
 * with libssh's own flag off, ssh_session_is_known_server() calls an
 * unknown host known). */
static int set_command_line(ssh_session s, const struct cmdline *c)
{
	const char *user = c->user ? c->user : c->login;
	int yes = 1;

	if (ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &yes) < 0 ||
	    (user && ssh_options_set(s, SSH_OPTIONS_USER, user) < 0) ||
	    (c->port && ssh_options_set(s, SSH_OPTIONS_PORT_STR, c->port) < 0)) {
		migssh_say("%s", ssh_get_error(s));
		return -1;
	}
	return 0;
}

/* -i: tried before the configuration's and the default identities */
static int add_identities(ssh_session s, const struct cmdline *c)
{
	for (size_t i = c->nident; i-- > 0;) {
		if (access(c->ident[i], R_OK) != 0 && !c->quiet)
			migssh_say("warning: identity file %s not accessible: %s",
				c->ident[i], strerror(errno));
		if (ssh_options_set(s, SSH_OPTIONS_IDENTITY, c->ident[i]) < 0) {
			migssh_say("-i %s: %s", c->ident[i], ssh_get_error(s));
			return -1;
		}
	}
	return 0;
}

int migssh_configure(ssh_session s, const struct cmdline *c)
{
	if (set_defaults(s, c) < 0 || read_configuration(s, c) < 0 ||
	    set_command_line(s, c) < 0 || add_identities(s, c) < 0)
		return -1;
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-ssh.h - what the parts of mig-ssh share (not installed): the command
 * line as parsed, the state of a transfer, and the steps main() runs in
 * order, one file each: ssh-cmdline.c, ssh-strict.c, ssh-config.c,
 * ssh-auth.c, ssh-transfer.c.
 */
#ifndef MIGKIT_MIG_SSH_H
#define MIGKIT_MIG_SSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>

#define EXIT_OWN 255
#define BUF_SIZE (1u << 20)
#define MAX_IDENTITIES 32
#define MAX_OPTIONS 64

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
	long alive_interval, alive_count; /* ServerAlive*, -1: not yet set */
	char *revoked;     /* RevokedHostKeys, NULL: none */
	bool revoked_set;  /* given (perhaps as "none"): the first one wins */
	const char *host;  /* as given: what messages and Host blocks use */
	char *user;        /* from USER@HOST */
	char *command;
};

struct exit_info {
	bool have_status, have_signal, core;
	int status;
	char signal[32];
};

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
	bool out_closed; /* stdout was closed at start: output is an error */
	/* keepalives (ServerAliveInterval/CountMax): the packets libssh
	 * counted, how many the server had sent when last heard, and when
	 * the next keepalive is due */
	struct ssh_counter_struct counter;
	long alive_interval, alive_count, unanswered;
	uint64_t heard_packets;
	int64_t next_alive_ms;
};

/* mig-ssh.c: one message on stderr, "mig-ssh: HOST: " and fmt's text
 * ("mig-ssh: " alone before HOST is known), in one write (mig_warn): an
 * error, a warning or a -v line alike. It only speaks: the caller says
 * what happens next. */
void migssh_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ssh-cmdline.c: argv into c. MIG_GO_ON, or the exit status to leave
 * with: 0 after --help or --version, EXIT_OWN after a message. */
int migssh_parse_cmdline(struct cmdline *c, int argc, char **argv);

/* ssh-strict.c: the keywords libssh does not apply (StrictHostKeyChecking,
 * ServerAlive*, RevokedHostKeys), their values and the configuration's. */
int migssh_parse_strict(const char *v, enum strict *out);
int migssh_parse_alive(const char *v, bool count, long *out);
int migssh_set_revoked(struct cmdline *c, const char *v);
int migssh_config_keywords(struct cmdline *c);

/* ssh-config.c: the session's options, before connecting. */
int migssh_configure(ssh_session s, const struct cmdline *c);

/* ssh-auth.c: the server's host key, then our keys. */
int migssh_no_passphrase(const char *prompt, char *buf, size_t len, int echo,
			 int verify, void *userdata);
int migssh_verify_host(ssh_session s, const struct cmdline *c);
int migssh_authenticate(ssh_session s);

/* ssh-transfer.c: stdin to the remote command, its output back. */
void migssh_on_exit_status(ssh_session s, ssh_channel ch, int status, void *u);
void migssh_on_exit_signal(ssh_session s, ssh_channel ch, const char *sig,
			   int core, const char *errmsg, const char *lang, void *u);
int migssh_transfer(struct xfer *x, struct exit_info *ei);

#endif

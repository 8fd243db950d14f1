/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-ssh.h - what the parts of mig-ssh share (not installed): the command
 * line as parsed, the state of a transfer, and the steps main() runs in
 * order, one file each: ssh-cmdline.c, ssh-strict.c, ssh-config.c,
 * ssh-auth.c, ssh-transfer.c; and ssh-prefetch.c, which reads stdin while
 * the others connect.
 */
#ifndef MIGKIT_MIG_SSH_H
#define MIGKIT_MIG_SSH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>

#include "mig.h"

#define EXIT_OWN 255
#define BUF_SIZE (1u << 20)
#define MAX_IDENTITIES 32
#define MAX_OPTIONS 64
/* How much of stdin is read ahead while the connection is set up
 * (tools/ssh-prefetch.c). The set-up takes a handful of round trips: 0.1 s
 * on loopback, about half a second over a link with 100 ms of latency.
 * The stages before mig-ssh (QEMU through the filters) produce a few
 * hundred MB/s, so 64 MiB keeps them going for most of that time while
 * memory stays bounded; once it is full they block on the pipe, as QEMU's
 * migration thread does whenever the link is slower than it is. */
/* 4 MiB: a QEMU whose stream is all taken completes whatever the
 * pipeline's fate, so what is read ahead before the destination could
 * refuse must stay small (SECURITY.md); it still keeps the stages before
 * mig-ssh busy for the first part of a set-up */
#define PREFETCH_MAX (4u << 20)
#define PREFETCH_CHUNKS (PREFETCH_MAX / BUF_SIZE)

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
	uint64_t rate;     /* --rate: bytes of stdin sent a second, 0: no limit */
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

/* stdin read ahead: chunks of BUF_SIZE bytes, filled in order by the
 * thread until migssh_prefetch_stop(), then handed to the transfer */
struct prefetch {
	pthread_t thread;
	bool started, running; /* started: stdin is a pipe, read ahead */
	int stop[2];        /* a byte on stop[1] ends the reading */
	uint8_t *chunk[PREFETCH_CHUNKS];
	size_t len[PREFETCH_CHUNKS];
	size_t nchunks, next; /* chunks filled, the next one to hand over */
	uint64_t bytes;     /* read ahead in all */
	bool eof;           /* stdin ended while reading ahead */
	int err;            /* errno of a read that failed, 0: none */
};

struct xfer {
	ssh_session s;
	struct prefetch *pre; /* sent before anything read from stdin */
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
	struct mig_rate rate; /* --rate on what is sent */
	/* when (mig_now()) --rate lets the next piece go; 0: now. Set by
	 * send_input() each pass, read by poll_timeout() after it. */
	double rate_next;
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

/* ssh-prefetch.c: stdin read by a thread during the set-up; stop before
 * the transfer, which takes the chunks; free drops what is left. */
void migssh_prefetch_start(struct prefetch *p);
void migssh_prefetch_stop(struct prefetch *p);
bool migssh_prefetch_pending(const struct prefetch *p);
uint8_t *migssh_prefetch_take(struct prefetch *p, size_t *len);
void migssh_prefetch_free(struct prefetch *p);

/* ssh-transfer.c: stdin to the remote command, its output back. */
void migssh_on_exit_status(ssh_session s, ssh_channel ch, int status, void *u);
void migssh_on_exit_signal(ssh_session s, ssh_channel ch, const char *sig,
			   int core, const char *errmsg, const char *lang, void *u);
int migssh_transfer(struct xfer *x, struct exit_info *ei);

#endif

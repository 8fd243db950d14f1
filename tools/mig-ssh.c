/* SPDX-License-Identifier: BSD-2-Clause */
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
 * Here: main(), which runs the steps of tools/ssh-*.c in order and frees
 * what they took, and the form of every message. The standard descriptors
 * are made safe (channel/stdfds.c) before anything is opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "mig.h"
#include "mig-ssh.h"

/* The host as given, once the command line is read: every message after
 * that names it. */
static const char *msg_host;

void migssh_say(const char *fmt, ...)
{
	char m[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	if (msg_host)
		mig_warn("%s: %s", msg_host, m); /* one write: stderr is shared */
	else
		mig_warn("%s", m);
}

/* What a run holds from the session's start to its end; end_session()
 * frees it whatever step was reached. The callbacks live as long as the
 * session and channel that point to them. */
struct run {
	struct xfer x;
	struct exit_info ei;
	struct ssh_callbacks_struct cb;
	struct ssh_channel_callbacks_struct chcb;
	bool connected; /* ssh_connect() succeeded: disconnect at the end */
	struct prefetch pre; /* stdin read during the set-up */
	double start;        /* when the set-up began (mig_now()) */
};

/* The session, its callbacks and options set, not yet connected. */
static int open_session(struct run *r, const struct cmdline *c)
{
	if (!(r->x.s = ssh_new())) {
		migssh_say("out of memory");
		return -1;
	}
	r->cb = (struct ssh_callbacks_struct){
		.auth_function = migssh_no_passphrase,
	};
	ssh_callbacks_init(&r->cb);
	ssh_set_callbacks(r->x.s, &r->cb);
	return migssh_configure(r->x.s, c);
}

static int connect_host(struct run *r, const struct cmdline *c)
{
	unsigned int port = 22;
	char *host = NULL;

	if (ssh_connect(r->x.s) == SSH_OK) {
		r->connected = true;
		/* libssh leaves the socket blocking once connected and, when
		 * poll() says POLLOUT, sends all it has buffered in one send():
		 * on a link that went down with the socket buffer part full,
		 * that send() waited for TCP to give up (4 minutes here), with
		 * no keepalive able to run. Non-blocking, the send() takes what
		 * fits and libssh keeps the rest for the next POLLOUT. */
		int fl = fcntl(ssh_get_fd(r->x.s), F_GETFL);
		if (fl < 0 || fcntl(ssh_get_fd(r->x.s), F_SETFL, fl | O_NONBLOCK) < 0) {
			migssh_say("socket: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	ssh_options_get_port(r->x.s, &port);
	ssh_options_get(r->x.s, SSH_OPTIONS_HOST, &host);
	migssh_say("cannot connect to %s port %u: %s", host ? host : c->host,
		port, ssh_get_error(r->x.s));
	free(host);
	return -1;
}

/* -v: where we are connected, how, and how long a silent server is kept */
static void say_connected(ssh_session s, const struct cmdline *c)
{
	char *user = NULL, *host = NULL;
	unsigned int port = 22;

	ssh_options_get(s, SSH_OPTIONS_USER, &user);
	ssh_options_get(s, SSH_OPTIONS_HOST, &host);
	ssh_options_get_port(s, &port);
	migssh_say("connected to %s port %u as %s, cipher %s", host, port,
		user, ssh_get_cipher_out(s));
	if (c->alive_interval)
		migssh_say("keepalive after %ld s of silence, giving up "
			"after %ld s", c->alive_interval,
			c->alive_interval * (c->alive_count + 1));
	else
		migssh_say("no keepalives (ServerAliveInterval 0)");
	free(user);
	free(host);
}

/* A session channel running the command, its exit callbacks set. */
static int start_command(struct run *r, const struct cmdline *c)
{
	ssh_session s = r->x.s;

	if (!(r->x.ch = ssh_channel_new(s)) ||
	    ssh_channel_open_session(r->x.ch) != SSH_OK) {
		migssh_say("cannot open a session channel: %s", ssh_get_error(s));
		/* never opened: nothing to close */
		ssh_channel_free(r->x.ch);
		r->x.ch = NULL;
		return -1;
	}
	r->chcb = (struct ssh_channel_callbacks_struct){
		.userdata = &r->ei,
		.channel_exit_status_function = migssh_on_exit_status,
		.channel_exit_signal_function = migssh_on_exit_signal,
	};
	ssh_callbacks_init(&r->chcb);
	ssh_set_channel_callbacks(r->x.ch, &r->chcb);
	if (ssh_channel_request_exec(r->x.ch, c->command) != SSH_OK) {
		migssh_say("cannot run the command: %s", ssh_get_error(s));
		return -1;
	}
	return 0;
}

/* -v: how long the set-up took and how much of stdin came meanwhile */
static void say_started(const struct run *r)
{
	double t = mig_now() - r->start;

	if (!r->pre.started)
		migssh_say("command started after %.2f s; stdin not read "
			"meanwhile (not a pipe)", t);
	else
		migssh_say("command started after %.2f s; %llu bytes of stdin "
			"read meanwhile%s", t, (unsigned long long)r->pre.bytes,
			r->pre.eof ? ", all of it" : "");
}

/* The buffers, then stdin to the command and its output back. */
static int transfer(struct run *r)
{
	struct xfer *x = &r->x;

	if (!(x->in = malloc(BUF_SIZE)) || !(x->out = malloc(BUF_SIZE))) {
		migssh_say("out of memory");
		return -1;
	}
	mig_pipe_grow(0);
	mig_pipe_grow(1);
	if (migssh_transfer(x, &r->ei) == 0)
		return 0;
	/* our side failed: never let the remote take it for a clean end
	 * (no EOF is sent; ask for the command's end) */
	if (ssh_is_connected(x->s) && !ssh_channel_is_closed(x->ch))
		ssh_channel_request_send_signal(x->ch, "TERM");
	return -1;
}

/* The remote command's exit status, or EXIT_OWN when it has none (killed,
 * or the connection closed first), with what happened said. */
static int remote_status(const struct run *r, const struct cmdline *c)
{
	const struct xfer *x = &r->x;
	const struct exit_info *ei = &r->ei;
	int rc = EXIT_OWN;

	if (ei->have_status) {
		rc = ei->status & 0xff;
		if (x->cut_short && !c->quiet)
			migssh_say("warning: the remote command ended before "
				"reading all of stdin (%llu bytes sent)",
				(unsigned long long)x->sent);
	} else if (ei->have_signal)
		migssh_say("the remote command was killed by signal %s%s",
			ei->signal, ei->core ? " (core dumped)" : "");
	else
		migssh_say("connection closed without an exit status from the "
			"remote command (%llu bytes sent, %llu received)",
			(unsigned long long)x->sent, (unsigned long long)x->received);
	if (c->verbose)
		migssh_say("%llu bytes sent, %llu received, exit status %d",
			(unsigned long long)x->sent, (unsigned long long)x->received,
			rc);
	return rc;
}

static void end_session(struct run *r)
{
	migssh_prefetch_free(&r->pre);
	free(r->x.in);
	free(r->x.out);
	if (r->x.ch) {
		if (ssh_is_connected(r->x.s))
			ssh_channel_close(r->x.ch);
		ssh_channel_free(r->x.ch);
	}
	if (r->connected)
		ssh_disconnect(r->x.s);
	ssh_free(r->x.s);
}

/* Connect, check the host, log in, run the command and carry the stream:
 * its exit status, or EXIT_OWN after a message. */
static int run_remote(const struct cmdline *c, const bool closed[3])
{
	/* a closed stdin is an empty stream: EOF at once; a closed stdout
	 * makes any output from the remote an error; a closed stderr loses
	 * the messages */
	struct run r = { .x = { .in_eof = closed[0], .out_closed = closed[1],
				.alive_interval = c->alive_interval,
				.alive_count = c->alive_count },
			 .start = mig_now() };
	int rc = EXIT_OWN;

	/* the stream is read meanwhile, and sent only by transfer(), once
	 * the host is verified, we are logged in and the command runs */
	if (!closed[0]) {
		migssh_prefetch_start(&r.pre);
		r.x.pre = &r.pre;
	}
	ssh_init();
	if (open_session(&r, c) < 0 || connect_host(&r, c) < 0 ||
	    migssh_verify_host(r.x.s, c) < 0 || migssh_authenticate(r.x.s) < 0)
		goto out;
	if (c->verbose)
		say_connected(r.x.s, c);
	if (start_command(&r, c) < 0)
		goto out;
	migssh_prefetch_stop(&r.pre);
	if (c->verbose)
		say_started(&r);
	mig_rate_init(&r.x.rate, c->rate, mig_now());
	if (transfer(&r) < 0)
		goto out;
	rc = remote_status(&r, c);
out:
	end_session(&r);
	ssh_finalize();
	return rc;
}

static void free_cmdline(struct cmdline *c)
{
	for (size_t i = 0; i < c->nopt; i++)
		free(c->opt[i]);
	free(c->user);
	free(c->command);
	free(c->revoked);
}

int main(int argc, char **argv)
{
	struct cmdline c = { .strict = STRICT_UNSET, .alive_interval = -1,
			     .alive_count = -1 };
	bool closed[3];
	int rc;

	mig_progname = "mig-ssh";
	/* as OpenSSH's sanitise_stdfd(): a closed 0, 1 or 2 gets /dev/null
	 * before the socket is opened, which could otherwise become "stdout"
	 * and have the remote output written into the connection, or "stdin"
	 * and be read as the stream */
	if (mig_stdfds_ensure(closed) < 0)
		return EXIT_OWN;
	signal(SIGPIPE, SIG_IGN);
	rc = migssh_parse_cmdline(&c, argc, argv);
	if (rc == MIG_GO_ON) {
		msg_host = c.host;
		rc = migssh_config_keywords(&c) < 0 ? EXIT_OWN
						     : run_remote(&c, closed);
	}
	free_cmdline(&c);
	return rc;
}

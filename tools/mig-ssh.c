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
 * what they took, the form of every message, and the standard descriptors
 * made safe before anything is opened.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "mig.h"
#include "mig-ssh.h"

static const char *msg_host = "";

void migssh_die_msg(const char *fmt, ...)
{
	char m[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	mig_warn("%s: %s", msg_host, m); /* one write: stderr is shared */
}

/* Descriptors 0, 1 and 2 open before anything else is (as OpenSSH's
 * sanitise_stdfd()): a closed one gets /dev/null, so that the socket
 * cannot become "stdout" and have the remote output written into the SSH
 * connection, or "stdin" and be read as the stream. closed[] says which
 * were closed. Returns -1 if /dev/null cannot be opened: nothing may run. */
static int std_fds_open(bool closed[3])
{
	for (int fd = 0; fd < 3; fd++) {
		closed[fd] = fcntl(fd, F_GETFD) < 0;
		if (!closed[fd])
			continue;
		/* the lowest free descriptor: this one */
		int n = open("/dev/null", O_RDWR);
		if (n != fd) {
			if (n >= 0)
				close(n);
			return -1;
		}
	}
	return 0;
}

/* -v: where we are connected, how, and how long a silent server is kept */
static void say_connected(ssh_session s, const struct cmdline *c)
{
	char *user = NULL, *host = NULL;
	unsigned int port = 22;

	ssh_options_get(s, SSH_OPTIONS_USER, &user);
	ssh_options_get(s, SSH_OPTIONS_HOST, &host);
	ssh_options_get_port(s, &port);
	migssh_die_msg("connected to %s port %u as %s, cipher %s", host, port,
		user, ssh_get_cipher_out(s));
	if (c->alive_interval)
		migssh_die_msg("keepalive after %ld s of silence, giving up "
			"after %ld s", c->alive_interval,
			c->alive_interval * (c->alive_count + 1));
	else
		migssh_die_msg("no keepalives (ServerAliveInterval 0)");
	free(user);
	free(host);
}

int main(int argc, char **argv)
{
	struct cmdline c = { .strict = STRICT_UNSET, .alive_interval = -1,
			     .alive_count = -1 };
	struct exit_info ei = { 0 };
	struct xfer x = { 0 };
	struct ssh_callbacks_struct cb = { .auth_function = migssh_no_passphrase };
	struct ssh_channel_callbacks_struct chcb = {
		.userdata = &ei,
		.channel_exit_status_function = migssh_on_exit_status,
		.channel_exit_signal_function = migssh_on_exit_signal,
	};
	int rc = EXIT_OWN, r;
	bool closed[3];

	if (std_fds_open(closed) < 0)
		return EXIT_OWN; /* no stderr to say it on, perhaps */
	mig_progname = "mig-ssh";
	signal(SIGPIPE, SIG_IGN);
	r = migssh_parse_cmdline(&c, argc, argv);
	if (r != 0) {
		rc = r < 0 ? 0 : r;
		goto out_args;
	}
	msg_host = c.host;
	if (migssh_config_keywords(&c) < 0)
		goto out_args;
	/* a closed stdin is an empty stream: EOF at once; a closed stdout
	 * makes any output from the remote an error; a closed stderr loses
	 * the messages */
	x.in_eof = closed[0];
	x.out_closed = closed[1];
	x.alive_interval = c.alive_interval;
	x.alive_count = c.alive_count;

	ssh_init();
	if (!(x.s = ssh_new())) {
		migssh_die_msg("out of memory");
		goto out_lib;
	}
	ssh_callbacks_init(&cb);
	ssh_set_callbacks(x.s, &cb);
	if (migssh_configure(x.s, &c) < 0)
		goto out_session;
	if (ssh_connect(x.s) != SSH_OK) {
		unsigned int port = 22;
		char *host = NULL;
		ssh_options_get_port(x.s, &port);
		ssh_options_get(x.s, SSH_OPTIONS_HOST, &host);
		migssh_die_msg("cannot connect to %s port %u: %s", host ? host : c.host,
			port, ssh_get_error(x.s));
		free(host);
		goto out_session;
	}
	if (migssh_verify_host(x.s, &c) < 0 || migssh_authenticate(x.s) < 0)
		goto out_disconnect;
	if (c.verbose)
		say_connected(x.s, &c);
	if (!(x.ch = ssh_channel_new(x.s)) ||
	    ssh_channel_open_session(x.ch) != SSH_OK) {
		migssh_die_msg("cannot open a session channel: %s", ssh_get_error(x.s));
		goto out_disconnect;
	}
	ssh_callbacks_init(&chcb);
	ssh_set_channel_callbacks(x.ch, &chcb);
	if (ssh_channel_request_exec(x.ch, c.command) != SSH_OK) {
		migssh_die_msg("cannot run the command: %s", ssh_get_error(x.s));
		goto out_channel;
	}
	if (!(x.in = malloc(BUF_SIZE)) || !(x.out = malloc(BUF_SIZE))) {
		migssh_die_msg("out of memory");
		goto out_channel;
	}
	mig_pipe_grow(0);
	mig_pipe_grow(1);
	if (migssh_transfer(&x, &ei) < 0) {
		/* our side failed: never let the remote take it for a
		 * clean end (no EOF is sent; ask for the command's end) */
		if (ssh_is_connected(x.s) && !ssh_channel_is_closed(x.ch))
			ssh_channel_request_send_signal(x.ch, "TERM");
		goto out_channel;
	}
	if (ei.have_status) {
		rc = ei.status & 0xff;
		if (x.cut_short && !c.quiet)
			migssh_die_msg("warning: the remote command ended before "
				"reading all of stdin (%llu bytes sent)",
				(unsigned long long)x.sent);
	} else if (ei.have_signal)
		migssh_die_msg("the remote command was killed by signal %s%s",
			ei.signal, ei.core ? " (core dumped)" : "");
	else
		migssh_die_msg("connection closed without an exit status from the "
			"remote command (%llu bytes sent, %llu received)",
			(unsigned long long)x.sent, (unsigned long long)x.received);
	if (c.verbose)
		migssh_die_msg("%llu bytes sent, %llu received, exit status %d",
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
	free(c.revoked);
	return rc;
}

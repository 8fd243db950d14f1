/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ssh-transfer.c - the transfer: stdin to the remote command's stdin, then
 * EOF; its stdout and stderr back on ours; its exit status or signal kept
 * from the channel's callbacks.
 *
 * The transfer runs on a non-blocking session with our own poll() loop:
 * libssh's ssh_connector moves 4 KiB at a time and takes a full window for
 * EOF, so it is not used.
 *
 * A server that sends nothing for ServerAliveInterval seconds is sent a
 * keepalive@openssh.com request, which wants an answer (OpenSSH's sshd
 * answers it with a failure); one that stays silent for
 * ServerAliveInterval x (ServerAliveCountMax + 1) seconds is given up, as
 * ssh(1) does. Silence is counted in SSH packets received (libssh's raw
 * counter), so a peer whose kernel still acknowledges while its sshd is
 * stopped or hung is caught too, which TCP keepalives cannot see.
 *
 * Apart from the set-up: once the command runs, only this moves data.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/server.h> /* ssh_send_keepalive(), for clients too */

#include "mig.h"
#include "mig-ssh.h"

void migssh_on_exit_status(ssh_session s, ssh_channel ch, int status, void *u)
{
	struct exit_info *x = u;

	(void)s, (void)ch;
	x->have_status = true;
	x->status = status;
}

void migssh_on_exit_signal(ssh_session s, ssh_channel ch, const char *sig,
			   int core, const char *errmsg, const char *lang, void *u)
{
	struct exit_info *x = u;

	(void)s, (void)ch, (void)errmsg, (void)lang;
	x->have_signal = true;
	x->core = core;
	snprintf(x->signal, sizeof x->signal, "%s", sig ? sig : "?");
}

static int lost(struct xfer *x, const char *when)
{
	migssh_say("connection lost %s: %s", when,
		ssh_get_error(x->s)[0] ? ssh_get_error(x->s) : "closed");
	return -1;
}

/* The remote command is gone: like ssh(1), the rest of stdin is not
 * sent. */
static void input_cut_short(struct xfer *x)
{
	x->in_len = 0;
	x->in_eof = x->eof_sent = x->cut_short = true;
}

/* What was read ahead during the set-up, in its order: a chunk becomes
 * the buffer; then stdin's end, or the read error met, as if read now. */
static int take_prefetched(struct xfer *x, bool *progress)
{
	struct prefetch *p = x->pre;
	size_t len;
	uint8_t *c = migssh_prefetch_take(p, &len);

	*progress = true;
	if (c) {
		free(x->in);
		x->in = c;
		x->in_off = 0;
		x->in_len = len;
	} else if (p->err) {
		migssh_say("read from stdin: %s", strerror(p->err));
		return -1;
	} else
		x->in_eof = true;
	return 0;
}

static bool prefetched(const struct xfer *x)
{
	return x->pre && migssh_prefetch_pending(x->pre);
}

/* A piece of stdin when the buffer is empty and stdin has one, what was
 * read ahead first. */
static int read_stdin(struct xfer *x, bool *progress)
{
	if (x->in_len != 0 || x->in_eof)
		return 0;
	if (prefetched(x))
		return take_prefetched(x, progress);
	ssize_t n = read(0, x->in, BUF_SIZE);
	if (n < 0 && errno != EINTR && errno != EAGAIN) {
		migssh_say("read from stdin: %s", strerror(errno));
		return -1;
	}
	if (n == 0)
		x->in_eof = true;
	if (n > 0) {
		x->in_off = 0;
		x->in_len = (size_t)n;
	}
	*progress = true;
	return 0;
}

/* The bytes of the buffer --rate lets go now: 0 while the bucket fills,
 * and then when it will have (rate_next, for poll_timeout()). */
static size_t rate_allows(struct xfer *x)
{
	x->rate_next = 0;
	if (!mig_rate_on(&x->rate)) /* no clock read, no wait */
		return x->in_len;
	size_t piece = mig_rate_piece(&x->rate, x->in_len);
	double now = mig_now(), d = mig_rate_delay(&x->rate, piece, now);

	if (d <= 0)
		return piece;
	x->rate_next = now + d;
	return 0;
}

/* As much of the buffer as the channel's window (and --rate) takes. */
static int send_input(struct xfer *x, bool *progress)
{
	size_t len;

	if (x->in_len == 0)
		return 0;
	if (ssh_channel_is_closed(x->ch)) {
		input_cut_short(x);
		return 0;
	}
	if ((len = rate_allows(x)) == 0)
		return 0;
	int n = ssh_channel_write(x->ch, x->in + x->in_off, (uint32_t)len);
	if (n == SSH_ERROR) {
		if (!ssh_is_connected(x->s) || !ssh_channel_is_closed(x->ch))
			return lost(x, "while sending");
		input_cut_short(x);
		*progress = true;
	} else if (n > 0) {
		x->in_off += (size_t)n;
		x->in_len -= (size_t)n;
		x->sent += (uint64_t)n;
		mig_rate_take(&x->rate, (size_t)n);
		*progress = true;
	}
	return 0;
}

/* EOF once stdin has ended and all of it went out. */
static int send_eof(struct xfer *x, bool *progress)
{
	if (!x->in_eof || x->in_len != 0 || x->eof_sent)
		return 0;
	if (ssh_channel_send_eof(x->ch) == SSH_ERROR &&
	    !ssh_channel_is_closed(x->ch))
		return lost(x, "while sending EOF");
	x->eof_sent = true;
	*progress = true;
	return 0;
}

/* What the remote command wrote on its stdout (is_err 0) or stderr, onto
 * ours. */
static int receive(struct xfer *x, int is_err, bool *progress)
{
	struct mig_err e;

	if (x->stream_eof[is_err])
		return 0;
	int n = ssh_channel_read_nonblocking(x->ch, x->out, BUF_SIZE, is_err);
	if (n == SSH_EOF || (n == 0 && ssh_channel_is_eof(x->ch))) {
		x->stream_eof[is_err] = true;
		*progress = true;
		return 0;
	}
	if (n < 0)
		return lost(x, "while receiving");
	if (n == 0)
		return 0;
	if (!is_err && x->out_closed) {
		/* stdout was closed (now /dev/null): as a write to a closed
		 * descriptor would fail */
		migssh_say("write to stdout: %s", strerror(EBADF));
		return -1;
	}
	if (mig_write_all(is_err ? 2 : 1, x->out, (size_t)n, &e) < 0) {
		migssh_say("%s", e.msg);
		return -1;
	}
	x->received += (uint64_t)n;
	*progress = true;
	return 0;
}

/* One pass of work that does not block; *progress when anything moved.
 * Returns 0, or -1 with a message. */
static int step(struct xfer *x, bool stdin_ready, bool *progress)
{
	if (((stdin_ready || prefetched(x)) && read_stdin(x, progress) < 0) ||
	    send_input(x, progress) < 0 || send_eof(x, progress) < 0)
		return -1;
	/* Read only as much as we write at once: our buffer is empty
	 * whenever we read, so libssh's window never outgrows what the
	 * output takes. stderr is drained too, or EOF never shows. */
	if (receive(x, 0, progress) < 0 || receive(x, 1, progress) < 0)
		return -1;
	/* push out what libssh could not write yet */
	if ((ssh_get_poll_flags(x->s) & SSH_WRITE_PENDING) &&
	    ssh_blocking_flush(x->s, 0) == SSH_ERROR)
		return lost(x, "while sending");
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

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void alive_start(struct xfer *x)
{
	x->heard_packets = x->counter.in_packets;
	x->next_alive_ms = now_ms() + x->alive_interval * 1000;
	x->unanswered = 0;
}

/* Keepalives: any packet from the server since the last look restarts
 * the count; each silent interval sends a request wanting an answer, and
 * one more after ServerAliveCountMax unanswered ones gives up. Returns 0,
 * or -1 with a message. */
static int alive_check(struct xfer *x)
{
	int64_t now;

	if (x->alive_interval == 0)
		return 0;
	if (x->counter.in_packets != x->heard_packets) {
		alive_start(x);
		return 0;
	}
	if ((now = now_ms()) < x->next_alive_ms)
		return 0;
	if (x->unanswered >= x->alive_count) {
		/* the limit, not the time measured: that is at most a
		 * poll() wake-up later */
		migssh_say("no answer from the server for %ld s "
			"(ServerAliveInterval %ld, ServerAliveCountMax %ld)",
			x->alive_interval * (x->alive_count + 1),
			x->alive_interval, x->alive_count);
		return -1;
	}
	/* libssh keeps one global request pending: a call that finds the
	 * previous answer only collects it, so send again once if nothing
	 * went out (an unanswered request stays the one in flight) */
	uint64_t out = x->counter.out_packets;
	ssh_send_keepalive(x->s);
	if (x->counter.out_packets == out)
		ssh_send_keepalive(x->s);
	x->unanswered++;
	x->next_alive_ms = now + x->alive_interval * 1000;
	return 0;
}

/* How long poll() may wait: at most a second (the state is re-checked
 * whatever libssh did with the socket meanwhile), less when a keepalive
 * is due sooner or --rate lets the next piece go sooner: waiting for the
 * rate, we still answer the server and send keepalives. */
static int poll_timeout(struct xfer *x)
{
	int64_t left = 1000;

	if (x->alive_interval != 0 && x->next_alive_ms - now_ms() < left)
		left = x->next_alive_ms - now_ms();
	/* the wait send_input() found this pass (poll() is reached only
	 * when nothing moved since); rounded up: woken early, we would only
	 * poll again */
	if (x->in_len != 0 && x->rate_next > 0) {
		double d = x->rate_next - mig_now();
		int64_t rate_ms = d > 0 ? (int64_t)(d * 1000) + 1 : 0;
		if (rate_ms < left)
			left = rate_ms;
	}
	return left < 0 ? 0 : (int)left;
}

/* Sleep in poll() until the socket or stdin (when we want more of it)
 * has something, or a keepalive is due; *stdin_ready if stdin woke us.
 * Returns 0, or -1 with a message. */
static int wait_for_work(struct xfer *x, bool *stdin_ready)
{
	struct pollfd p[2];
	nfds_t n = 0;

	p[n++] = (struct pollfd){ .fd = ssh_get_fd(x->s), .events = POLLIN };
	if (ssh_get_poll_flags(x->s) & SSH_WRITE_PENDING)
		p[0].events |= POLLOUT;
	if (!x->in_eof && x->in_len == 0)
		p[n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
	if (poll(p, n, poll_timeout(x)) < 0 && errno != EINTR) {
		migssh_say("poll: %s", strerror(errno));
		return -1;
	}
	*stdin_ready = n == 2 && p[1].revents;
	return 0;
}

int migssh_transfer(struct xfer *x, struct exit_info *ei)
{
	bool stdin_ready = false;

	ssh_set_counters(x->s, NULL, &x->counter);
	alive_start(x);
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
		if (alive_check(x) < 0)
			return -1;
		if (!progress && wait_for_work(x, &stdin_ready) < 0)
			return -1;
	}
}

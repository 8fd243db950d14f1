/* SPDX-License-Identifier: BSD-2-Clause */
/* progress.c - bytes and rate on stderr, for people watching a pipeline. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "mig.h"
#include "progress.h"

double mig_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

long mig_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* When the process started, as near as a library can tell: the time to
 * first byte counts from here, the pipeline's start for a stage of it. */
static double process_start;

__attribute__((constructor)) static void note_process_start(void)
{
	process_start = mig_now();
}

void mig_progress_start(struct mig_progress *p, bool on)
{
	p->on = on;
	p->tty = isatty(2);
	p->first_out = false;
	p->start = p->last = mig_now();
}

/* "first byte in after 0.12 s", a line of its own; on a terminal it
 * replaces a progress line being rewritten, which the next update redraws
 * below it. */
static void say_first(const char *dir, bool tty)
{
	fprintf(stderr, "%s%s: first byte %s after %.2f s%s\n",
		tty ? "\r" : "", mig_progname, dir, mig_now() - process_start,
		tty ? "\033[K" : "");
	fflush(stderr);
}

void mig_progress_first_in(int fd, int out_fd)
{
	/* an output whose reader went (POLLERR on a pipe's writing end)
	 * ends the wait too: the caller fails at once, not at first input */
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
			       { .fd = out_fd, .events = 0 } };
	int avail;

	while (poll(p, out_fd >= 0 ? 2 : 1, -1) < 0)
		if (errno != EINTR)
			return;
	if (!p[0].revents)
		return;
	/* a pipe, socket, file or terminal says how much it holds: none
	 * means the end of an empty input, with no first byte; a device
	 * that cannot say (/dev/zero, /dev/null) is not guessed about */
	if (ioctl(fd, FIONREAD, &avail) == 0 && avail > 0)
		say_first("in", isatty(2));
}

/* Output has begun: said once, if it was asked for. */
static void check_first_out(struct mig_progress *p, uint64_t out)
{
	if (p->first_out && out > 0) {
		say_first("out", p->tty);
		p->first_out = false;
	}
}

void mig_progress_first_out(struct mig_progress *p, uint64_t out)
{
	p->first_out = p->on;
	check_first_out(p, out);
}

static void show(struct mig_progress *p, uint64_t in, uint64_t out,
		 double now, bool final)
{
	char bi[32], bo[32], rate[32];
	double dt = now - p->start;

	mig_format_bytes(in, bi, sizeof bi);
	mig_format_bytes(out, bo, sizeof bo);
	mig_format_bytes(dt > 0 ? (uint64_t)((double)in / dt) : 0, rate,
			 sizeof rate);
	/* on a terminal, one line rewritten in place; in a log, a line each */
	fprintf(stderr, "%s%s: %s in, %s out, %s/s, %.1f s%s",
		p->tty ? "\r" : "", mig_progname, bi, bo, rate, dt,
		p->tty && !final ? "\033[K" : "\n");
	fflush(stderr);
}

void mig_progress_update(struct mig_progress *p, uint64_t in, uint64_t out)
{
	double now;

	if (!p->on)
		return;
	check_first_out(p, out);
	now = mig_now();
	if (now - p->last < 1.0)
		return;
	p->last = now;
	show(p, in, out, now, false);
}

void mig_progress_done(struct mig_progress *p, uint64_t in, uint64_t out)
{
	if (!p->on)
		return;
	check_first_out(p, out);
	show(p, in, out, mig_now(), true);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/* progress.c - bytes and rate on stderr, for people watching a pipeline. */
#include <stdio.h>
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

void mig_progress_start(struct mig_progress *p, bool on)
{
	p->on = on;
	p->tty = isatty(2);
	p->start = p->last = mig_now();
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
	now = mig_now();
	if (now - p->last < 1.0)
		return;
	p->last = now;
	show(p, in, out, now, false);
}

void mig_progress_done(struct mig_progress *p, uint64_t in, uint64_t out)
{
	if (p->on)
		show(p, in, out, mig_now(), true);
}

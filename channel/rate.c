/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * rate.c - --rate: a token bucket on what a stage writes.
 *
 * Tokens are bytes that may be written; they come in at the rate and are
 * kept up to the bucket's depth. A write waits until the bucket holds its
 * piece, and a write longer than a quarter of the depth goes in pieces of
 * a quarter, so no burst is ever larger than the depth.
 *
 * The depth is 1/20 of a second of the rate, at most one default frame
 * (1 MiB): in any window of T seconds at most rate x T + depth bytes go,
 * so a one-second window is within 5 % of the rate, and a slow rate is
 * not written in frame-sized lumps. Time is the monotonic clock; waiting
 * is clock_nanosleep to an absolute deadline, never a busy loop, and a
 * sleep that overshoots only leaves more tokens for the next piece (up to
 * the depth), so the average holds. With no rate set nothing here runs:
 * the writes go straight to mig_writev_all().
 */
#include <errno.h>
#include <time.h>

#include "mig.h"

/* The depth: RATE_WINDOW of a second of the rate, within 1 byte and one
 * default frame. */
#define RATE_WINDOW 20

int mig_rate_parse(const char *arg, uint64_t *bps)
{
	uint64_t v;

	if (mig_parse_size(arg, &v) < 0 || v == 0)
		return -1;
	*bps = v;
	return 0;
}

int mig_rate_option(const char *arg, uint64_t *bps)
{
	if (mig_rate_parse(arg, bps) < 0)
		return mig_usage_error("--rate: '%.64s' is not a rate in bytes "
				       "per second above 0 (such as 800K, 50M, "
				       "1G)", arg);
	return MIG_GO_ON;
}

void mig_rate_init(struct mig_rate *r, uint64_t bps, double now)
{
	double depth = (double)bps / RATE_WINDOW;

	if (depth > MIG_FRAME_DATA_DEFAULT)
		depth = MIG_FRAME_DATA_DEFAULT;
	if (depth < 1)
		depth = 1;
	r->rate = (double)bps;
	r->depth = bps ? (double)(uint64_t)depth : 0; /* whole bytes */
	r->tokens = r->depth; /* the first piece goes at once */
	r->last = now;
}

bool mig_rate_on(const struct mig_rate *r)
{
	return r && r->rate > 0;
}

/* Pieces are a quarter of the depth: waiting for a whole bucket, every
 * sleep's overshoot (a late wake-up on a busy machine, a reader slow to
 * empty the pipe) would find it full and lose the tokens come in
 * meanwhile; with room for 3/4 of a bucket more, a delay of up to 3/80 s
 * loses nothing. */
size_t mig_rate_piece(const struct mig_rate *r, size_t want)
{
	double most;

	if (!mig_rate_on(r))
		return want;
	most = r->depth >= 4 ? (double)(uint64_t)(r->depth / 4) : 1;
	return (double)want <= most ? want : (size_t)most;
}

double mig_rate_delay(struct mig_rate *r, size_t n, double now)
{
	if (!mig_rate_on(r))
		return 0;
	if (now > r->last) {
		r->tokens += (now - r->last) * r->rate;
		if (r->tokens > r->depth)
			r->tokens = r->depth;
		r->last = now;
	}
	/* less than a byte short is rounding: the piece goes, the fraction
	 * owed (waiting for it could end before the clock moves) */
	double need = (double)mig_rate_piece(r, n) - r->tokens;
	return need >= 1 ? need / r->rate : 0;
}

void mig_rate_take(struct mig_rate *r, size_t n)
{
	if (mig_rate_on(r))
		r->tokens -= (double)n; /* below 0: owed, waited for next */
}

/* Sleep until mig_now() reaches t. */
static void sleep_until(double t)
{
	struct timespec ts;
	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec > 999999999)
		ts.tv_nsec = 999999999;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

size_t mig_rate_wait(struct mig_rate *r, size_t want)
{
	size_t piece = mig_rate_piece(r, want);
	double d;

	/* a sleep ends at or after its deadline: the loop runs again only
	 * after an early wake-up, never spinning */
	while ((d = mig_rate_delay(r, piece, mig_now())) > 0)
		sleep_until(r->last + d);
	return piece;
}

int mig_rate_writev(struct mig_rate *r, int fd, const void *a, size_t alen,
		    const void *b, size_t blen, struct mig_err *e)
{
	const uint8_t *pa = a, *pb = b;

	if (!mig_rate_on(r))
		return mig_writev_all(fd, a, alen, b, blen, e);
	while (alen + blen > 0) {
		size_t piece = mig_rate_wait(r, alen + blen);
		size_t na = piece < alen ? piece : alen, nb = piece - na;

		mig_rate_take(r, piece);
		if (mig_writev_all(fd, pa, na, pb, nb, e) < 0)
			return -1;
		if (na)
			pa += na, alen -= na;
		if (nb)
			pb += nb, blen -= nb;
	}
	return 0;
}

int mig_rate_write(struct mig_rate *r, int fd, const void *buf, size_t len,
		   struct mig_err *e)
{
	return mig_rate_writev(r, fd, buf, len, NULL, 0, e);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * timing.h - what the benchmark programs share: a monotonic clock, and the
 * median of runs, so that one run slowed by something else on the machine
 * is not what gets reported. Header only: the bench scripts build each
 * program from its one source file (cc -O2 bench/NAME.c).
 */
#ifndef BENCH_TIMING_H
#define BENCH_TIMING_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n) (n odd, as the runs are); sorts v. */
static inline double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, bench_cmp);
	return v[n / 2];
}

#endif

/* SPDX-License-Identifier: BSD-2-Clause */
/* source-private.h - what a kind of source implements (not installed). */
#ifndef MIG_SOURCE_PRIVATE_H
#define MIG_SOURCE_PRIVATE_H

#include "mig.h"

struct mig_src_ops {
	/* The next chunk, any size > 0: 1; the end: 0; failure: -1. */
	int (*next)(struct mig_src *s, const uint8_t **p, size_t *len,
		    struct mig_err *e);
	/* Optional: read up to len bytes straight into buf (large reads
	 * skip a copy). Same returns as read(2), errors in e. */
	long (*read_direct)(struct mig_src *s, void *buf, size_t len,
			    struct mig_err *e);
	/* Optional: would next() return without blocking? (Read-ahead asks
	 * before waiting for more input while it has frames to hand out.) */
	bool (*ready)(struct mig_src *s);
	/* Optional: wait at most ms milliseconds for input (or its end):
	 * 1 ready, 0 timed out, -1 error in e. A source without it is
	 * never idle (memory, a layer). */
	int (*wait)(struct mig_src *s, int ms, struct mig_err *e);
	void (*free)(struct mig_src *s);
};

#define MIG_PEEK_MAX 64

struct mig_src {
	const struct mig_src_ops *ops;
	const char *name;
	/* Bytes peeked and copied out of chunks come first, then the rest of
	 * the current chunk. */
	uint8_t look[MIG_PEEK_MAX];
	size_t lookpos, looklen;
	const uint8_t *cur;
	size_t curlen;
	uint64_t offset;
	bool ended;
};

bool mig_src_ready(struct mig_src *s);
void mig_src_init(struct mig_src *s, const struct mig_src_ops *ops,
		  const char *name);

#endif

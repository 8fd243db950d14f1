/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tagged.h - the tagged-frame transform shared by the checksum (kind 1)
 * and envelope (kind 4) layers: every frame is its plain payload plus
 * XXH3-64 of it seeded with the frame's index and type; END carries
 * XXH3-128 of all inner bytes. See mig-stream(5).
 */
#ifndef MIG_TAGGED_H
#define MIG_TAGGED_H

#include "mig.h"

#define MIG_TAG_LEN 8

/* XXH3-64 of p[0..len) bound to the frame's place: seed index << 8 | type. */
uint64_t mig_frame_tag(const struct mig_frame *f, const uint8_t *p, size_t len);
/* Compare a frame's stored tag with the computed one; on a mismatch set
 * e to "WHAT (stored X, computed Y): ..." naming the likely causes, which
 * are the same for every layer with frame tags. Returns 0 or -1. */
int mig_frame_tag_check(uint64_t want, uint64_t got, const char *what,
			struct mig_err *e);

void *mig_tagged_create(void);
void mig_tagged_destroy(void *st);
int mig_tagged_encode_init(void *st, struct mig_encode_args *a,
			   uint8_t *params, size_t *len, struct mig_err *e);
int mig_tagged_encode(void *ctx, struct mig_frame *in, size_t tailroom,
		      const uint8_t **out, size_t *out_len, uint8_t *flags,
		      struct mig_err *e);
int mig_tagged_encode_trailer(void *st, uint8_t *trailer, size_t *len,
			      struct mig_err *e);
int mig_tagged_decode_init(void *st, const uint8_t *params, size_t len,
			   struct mig_err *e);
int mig_tagged_decode(void *ctx, const struct mig_frame *in,
		      const uint8_t **out, size_t *out_len, struct mig_err *e);
int mig_tagged_decode_trailer(void *st, const uint8_t *trailer, size_t len,
			      struct mig_err *e);
void mig_tagged_describe(const uint8_t *params, size_t len, char *buf,
			 size_t buflen);

/* The callbacks of a struct mig_filter that uses this transform. */
#define MIG_TAGGED_CALLBACKS                                             \
	.max_overhead = MIG_TAG_LEN, .create = mig_tagged_create,         \
	.destroy = mig_tagged_destroy,                                    \
	.encode_init = mig_tagged_encode_init,                            \
	.encode = mig_tagged_encode,                                      \
	.encode_trailer = mig_tagged_encode_trailer,                      \
	.decode_init = mig_tagged_decode_init,                            \
	.decode = mig_tagged_decode,                                      \
	.decode_trailer = mig_tagged_decode_trailer,                      \
	.describe = mig_tagged_describe

/* Kind 4 (MIG_KIND_ENVELOPE): an envelope around any stream, to carry
 * META (a VM's configuration, a checkpoint's origin). Every decoder peels
 * envelopes before its own layer. */
extern const struct mig_filter mig_filter_envelope;

#endif

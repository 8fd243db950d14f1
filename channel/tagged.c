/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tagged.c - the tagged-frame transform (checksum and envelope layers).
 *
 * Each frame carries XXH3-64 of its payload, seeded with the frame's index
 * and type, so a flipped bit and a dropped, repeated or moved frame all
 * fail the check of the first frame they touch. END carries XXH3-128 of
 * all inner bytes. XXH3 was chosen by measurement (README, bench/hash.c):
 * it runs at memory speed, well above pipe throughput, where BLAKE2b and
 * CRC32 would be the bottleneck. It guards against accidents, not
 * attackers: encryption layers do that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tagged.h"

#define HASH_XXH3 1
#define TAG_LEN MIG_TAG_LEN
#define DIGEST_LEN 16

struct checksum {
	XXH3_state_t *digest; /* of all DATA bytes, for END */
};

uint64_t mig_frame_tag(const struct mig_frame *f, const uint8_t *p, size_t len)
{
	return XXH3_64bits_withSeed(p, len, f->index << 8 | f->type);
}

int mig_frame_tag_check(uint64_t want, uint64_t got, const char *what,
			struct mig_err *e)
{
	if (want == got)
		return 0;
	return mig_err_set(e, MIG_EXIT_DATA, "%s (stored %016llx, computed "
			   "%016llx): the frame is corrupt, or frames were "
			   "dropped, repeated or reordered", what,
			   (unsigned long long)want, (unsigned long long)got);
}

void *mig_tagged_create(void)
{
	struct checksum *c = calloc(1, sizeof *c);

	if (c && !(c->digest = XXH3_createState())) {
		free(c);
		return NULL;
	}
	if (c)
		XXH3_128bits_reset(c->digest);
	return c;
}

void mig_tagged_destroy(void *st)
{
	struct checksum *c = st;

	XXH3_freeState(c->digest);
	free(c);
}

int mig_tagged_encode_init(void *st, struct mig_encode_args *a,
			   uint8_t *params, size_t *len, struct mig_err *e)
{
	(void)st, (void)a, (void)e;
	params[0] = HASH_XXH3;
	*len = 1;
	return 0;
}

int mig_tagged_encode(void *ctx, struct mig_frame *in, size_t tailroom,
			   const uint8_t **out, size_t *out_len,
			   uint8_t *flags, struct mig_err *e)
{
	struct checksum *c = ctx; /* no frame contexts: ctx is st */
	uint8_t *tail = (uint8_t *)in->data + in->len;

	(void)flags;
	if (tailroom < TAG_LEN)
		return mig_err_set(e, MIG_EXIT_SYS, "no room for the checksum");
	if (in->type == MIG_FRAME_DATA)
		XXH3_128bits_update(c->digest, in->data, in->len);
	mig_put_le64(tail, mig_frame_tag(in, in->data, in->len));
	*out = in->data;
	*out_len = in->len + TAG_LEN;
	return 0;
}

int mig_tagged_encode_trailer(void *st, uint8_t *trailer, size_t *len,
				   struct mig_err *e)
{
	struct checksum *c = st;
	XXH128_canonical_t d;

	(void)e;
	XXH128_canonicalFromHash(&d, XXH3_128bits_digest(c->digest));
	memcpy(trailer, d.digest, DIGEST_LEN);
	*len = DIGEST_LEN;
	return 0;
}

int mig_tagged_decode_init(void *st, const uint8_t *params, size_t len,
				struct mig_err *e)
{
	(void)st;
	if (len != 1 || params[0] != HASH_XXH3)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "unsupported checksum parameters (hash %u)",
				   len ? params[0] : 0);
	return 0;
}

int mig_tagged_decode(void *ctx, const struct mig_frame *in,
			   const uint8_t **out, size_t *out_len,
			   struct mig_err *e)
{
	struct checksum *c = ctx;

	if (in->len < TAG_LEN)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "frame too short to hold its checksum");
	size_t n = in->len - TAG_LEN;
	uint64_t want = mig_get_le64(in->data + n), got = mig_frame_tag(in, in->data, n);
	if (mig_frame_tag_check(want, got, "checksum mismatch", e) < 0)
		return -1;
	if (in->type == MIG_FRAME_DATA)
		XXH3_128bits_update(c->digest, in->data, n);
	*out = in->data;
	*out_len = n;
	return 0;
}

int mig_tagged_decode_trailer(void *st, const uint8_t *trailer,
				   size_t len, struct mig_err *e)
{
	struct checksum *c = st;
	XXH128_canonical_t d;

	XXH128_canonicalFromHash(&d, XXH3_128bits_digest(c->digest));
	if (len != DIGEST_LEN || memcmp(trailer, d.digest, DIGEST_LEN) != 0)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "stream digest mismatch in END");
	return 0;
}

void mig_tagged_describe(const uint8_t *params, size_t len, char *buf,
			      size_t buflen)
{
	if (len == 1 && params[0] == HASH_XXH3)
		snprintf(buf, buflen, "hash=xxh3");
	else
		snprintf(buf, buflen, "hash=unknown");
}

/*
 * checksum.c - mig-checksum: detect any change to a stream.
 *
 * Each frame carries XXH3-64 of its payload, seeded with the frame's index
 * and type, so a flipped bit and a dropped, repeated or moved frame all
 * fail the check of the first frame they touch. END carries XXH3-128 of
 * all inner bytes. XXH3 was chosen by measurement (README: bench/hash):
 * it runs at memory speed, well above pipe throughput, where BLAKE2b and
 * CRC32C would be the bottleneck. It guards against accidents, not
 * attackers: use mig-encrypt for that.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mig.h"

#define HASH_XXH3 1
#define TAG_LEN 8
#define DIGEST_LEN 16

struct checksum {
	XXH3_state_t *digest; /* of all DATA bytes, for END */
};

static uint64_t frame_tag(const struct mig_frame *f, size_t len)
{
	return XXH3_64bits_withSeed(f->data, len, f->index << 8 | f->type);
}

static void *checksum_create(void)
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

static void checksum_destroy(void *st)
{
	struct checksum *c = st;

	XXH3_freeState(c->digest);
	free(c);
}

static int checksum_encode_init(void *st, uint8_t *params, size_t *len,
				struct mig_err *e)
{
	(void)st, (void)e;
	params[0] = HASH_XXH3;
	*len = 1;
	return 0;
}

static int checksum_encode(void *ctx, struct mig_frame *in, size_t tailroom,
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
	mig_put_le64(tail, frame_tag(in, in->len));
	*out = in->data;
	*out_len = in->len + TAG_LEN;
	return 0;
}

static int checksum_encode_trailer(void *st, uint8_t *trailer, size_t *len,
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

static int checksum_decode_init(void *st, const uint8_t *params, size_t len,
				struct mig_err *e)
{
	(void)st;
	if (len != 1 || params[0] != HASH_XXH3)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "unsupported checksum parameters (hash %u)",
				   len ? params[0] : 0);
	return 0;
}

static int checksum_decode(void *ctx, const struct mig_frame *in,
			   const uint8_t **out, size_t *out_len,
			   struct mig_err *e)
{
	struct checksum *c = ctx;

	if (in->len < TAG_LEN)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "frame too short to hold its checksum");
	size_t n = in->len - TAG_LEN;
	uint64_t want = mig_get_le64(in->data + n), got = frame_tag(in, n);
	if (want != got)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "checksum mismatch (stored %016llx, computed "
				   "%016llx): the frame is corrupt, or frames "
				   "were dropped, repeated or reordered",
				   (unsigned long long)want,
				   (unsigned long long)got);
	if (in->type == MIG_FRAME_DATA)
		XXH3_128bits_update(c->digest, in->data, n);
	*out = in->data;
	*out_len = n;
	return 0;
}

static int checksum_decode_trailer(void *st, const uint8_t *trailer,
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

static void checksum_describe(const uint8_t *params, size_t len, char *buf,
			      size_t buflen)
{
	if (len == 1 && params[0] == HASH_XXH3)
		snprintf(buf, buflen, "hash=xxh3");
	else
		snprintf(buf, buflen, "hash=unknown");
}

MIG_FILTER(checksum) {
	.name = "checksum",
	.kind = 1,
	.summary = "Wrap a stream in a checksum layer, or verify and unwrap "
		   "one (-d).",
	.max_overhead = TAG_LEN,
	.create = checksum_create,
	.destroy = checksum_destroy,
	.encode_init = checksum_encode_init,
	.encode = checksum_encode,
	.encode_trailer = checksum_encode_trailer,
	.decode_init = checksum_decode_init,
	.decode = checksum_decode,
	.decode_trailer = checksum_decode_trailer,
	.describe = checksum_describe,
};

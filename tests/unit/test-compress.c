/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test-compress.c - unit tests of the compress filter's callbacks: what a
 * bats test cannot easily craft, such as a frame that would decompress to
 * more than the layer's frame size (a bomb), and frames at size edges.
 */
#include <stdlib.h>

#include "mig.h"
#include "tap.h"

extern const struct mig_filter mig_filter_compress;
static const struct mig_filter *const F = &mig_filter_compress;
static const char *const codecs[] = { "zstd", "zlib", "lz4" };

struct enc {
	uint8_t params[MIG_PARAMS_MAX];
	size_t plen;
	uint8_t *payload;
	size_t len;
	uint8_t flags;
};

static const struct mig_option *opt(int c)
{
	for (const struct mig_option *o = F->options; o->long_name; o++)
		if (o->short_name == c)
			return o;
	return NULL;
}

/* Encode one frame of n bytes of data with codec a and frame size fs. */
static int encode1(const char *a, size_t fs, uint8_t type, uint64_t index,
		   const uint8_t *data, size_t n, struct enc *out)
{
	struct mig_err e = { 0 };
	void *st = F->create(), *ctx = NULL;
	uint8_t *buf = malloc(n + F->max_overhead + 1);
	const uint8_t *p;
	int rc = -1;

	memcpy(buf, data, n);
	out->plen = sizeof out->params;
	if (F->set_option(st, opt('a'), a, &e) < 0)
		goto done;
	struct mig_encode_args ea = { .frame_size = fs, .threads = 1 };
	if (F->encode_init(st, &ea, out->params, &out->plen, &e) < 0 ||
	    !(ctx = F->frame_ctx_create(st, &e)))
		goto done;
	struct mig_frame fr = { .type = type, .index = index, .data = buf, .len = n };
	out->flags = 0;
	if (F->encode(ctx, &fr, F->max_overhead, &p, &out->len, &out->flags, &e) < 0)
		goto done;
	out->payload = malloc(out->len);
	memcpy(out->payload, p, out->len);
	rc = 0;
done:
	if (rc < 0)
		printf("# encode: %s\n", e.msg);
	if (ctx)
		F->frame_ctx_destroy(ctx);
	F->destroy(st);
	free(buf);
	return rc;
}

/* Decode it with the given parameters; plain bytes copied to *plain. */
static int decode1(const struct enc *in, const uint8_t *params, uint8_t type,
		   uint64_t index, uint8_t **plain, size_t *n, struct mig_err *e)
{
	void *st = F->create(), *ctx = NULL;
	uint8_t *copy = malloc(in->len + 1);
	const uint8_t *p;
	int rc = -1;

	memset(e, 0, sizeof *e);
	memcpy(copy, in->payload, in->len);
	if (F->decode_init(st, params, in->plen, e) < 0 ||
	    !(ctx = F->frame_ctx_create(st, e)))
		goto done;
	struct mig_frame fr = { .type = type, .flags = in->flags, .index = index,
				.data = copy, .len = in->len };
	if (F->decode(ctx, &fr, &p, n, e) < 0)
		goto done;
	*plain = malloc(*n + 1);
	memcpy(*plain, p, *n);
	rc = 0;
done:
	if (ctx)
		F->frame_ctx_destroy(ctx);
	F->destroy(st);
	free(copy);
	return rc;
}

static void test_bomb(void)
{
	size_t big = 1u << 20;
	uint8_t *zeros = calloc(1, big), *plain;
	struct mig_err e;
	size_t n;

	for (int c = 0; c < 3; c++) {
		struct enc en;
		uint8_t params[MIG_PARAMS_MAX];
		ok(encode1(codecs[c], big, MIG_FRAME_DATA, 1, zeros, big, &en) == 0 &&
		   en.flags == 0 && en.len < 8192,
		   "%s: 1 MiB of zeros compresses to %zu bytes", codecs[c], en.len);
		ok(decode1(&en, en.params, MIG_FRAME_DATA, 1, &plain, &n, &e) == 0 &&
		   n == big && memcmp(plain, zeros, big) == 0,
		   "%s: and decodes back with the frame size it was made with",
		   codecs[c]);
		free(plain);
		/* the same frame in a layer that says frames hold 4 KiB */
		memcpy(params, en.params, en.plen);
		mig_put_le32(params + 4, 4096);
		ok(decode1(&en, params, MIG_FRAME_DATA, 1, &plain, &n, &e) < 0 &&
		   e.code == MIG_EXIT_DATA,
		   "%s: a frame that would decode past the frame size is refused",
		   codecs[c]);
		ok_msg(&e, c == 0 ? "frame decodes to 1048576 bytes, over the limit of 4096"
			: c == 1 ? "frame decodes to more than the limit of 4096 bytes"
				 : "decodes to more than the limit of 4096 bytes",
		       "  ... saying so");
		/* as META, it may not pass 65601 bytes */
		struct enc meta;
		encode1(codecs[c], big, MIG_FRAME_META, 0, zeros, big, &meta);
		ok(decode1(&meta, meta.params, MIG_FRAME_META, 0, &plain, &n, &e) < 0,
		   "%s: a META frame decoding to 1 MiB is refused", codecs[c]);
		free(meta.payload);
		free(en.payload);
	}
	free(zeros);
}

static void test_stored_and_edges(void)
{
	uint8_t data[64], *plain;
	struct mig_err e;
	size_t n;

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 37 + 11);
	for (int c = 0; c < 3; c++) {
		size_t sizes[] = { 0, 1, 16, 17, 64 };
		for (size_t s = 0; s < 5; s++) {
			struct enc en;
			encode1(codecs[c], 64, MIG_FRAME_DATA, 9, data, sizes[s], &en);
			ok(en.flags == 1 && en.len == sizes[s] + 8,
			   "%s: %zu bytes that do not shrink are stored, plus 8",
			   codecs[c], sizes[s]);
			ok(decode1(&en, en.params, MIG_FRAME_DATA, 9, &plain, &n, &e) == 0 &&
			   n == sizes[s] && memcmp(plain, data, n) == 0,
			   "  ... and decode back");
			free(plain);
			ok(decode1(&en, en.params, MIG_FRAME_DATA, 8, &plain, &n, &e) < 0,
			   "  ... but not as another frame");
			ok_msg(&e, "content check failed", "  ... (content check)");
			if (sizes[s] == 64) {
				uint8_t params[MIG_PARAMS_MAX];
				memcpy(params, en.params, en.plen);
				mig_put_le32(params + 4, 63);
				ok(decode1(&en, params, MIG_FRAME_DATA, 9, &plain, &n, &e) < 0,
				   "  ... nor in a layer of 63-byte frames");
				ok_msg(&e, "stored frame of 64 bytes is over the limit of 63",
				       "  ... saying so");
			}
			free(en.payload);
		}
	}
}

static void test_params(void)
{
	struct enc en = { .plen = 8 };
	uint8_t params[8] = { 1, 1, 0, 0, 0, 0, 16, 0 }, *plain;
	struct mig_err e;
	size_t n;

	en.payload = calloc(1, 8);
	en.len = 8;
	params[0] = 9;
	ok(decode1(&en, params, MIG_FRAME_DATA, 0, &plain, &n, &e) < 0,
	   "an unknown codec is refused");
	ok_msg(&e, "unknown codec 9", "  ... naming it");
	params[0] = 1;
	mig_put_le32(params + 4, 0);
	ok(decode1(&en, params, MIG_FRAME_DATA, 0, &plain, &n, &e) < 0,
	   "a frame size of 0 is refused");
	ok_msg(&e, "frame size 0 is not from 1 to 16777216", "  ... saying so");
	en.plen = 7;
	ok(decode1(&en, params, MIG_FRAME_DATA, 0, &plain, &n, &e) < 0,
	   "parameters of 7 bytes are refused");
	ok_msg(&e, "unsupported compress parameters (7 bytes, not 8)", "  ... saying so");
	free(en.payload);
}

int main(void)
{
	test_bomb();
	test_stored_and_edges();
	test_params();
	return tap_done();
}

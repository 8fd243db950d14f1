/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-xor.c - a layer filter written outside migkit, against the
 * installed mig.h and libmigchan only (tests/build.bats builds it with
 * `pkg-config --static migchan`): each byte XORed with 0x5a, which hides
 * nothing and checks nothing, so the stock layers around it must. It is
 * the smallest filter the protocol in mig.h allows: no options, no
 * trailer, no frame contexts. Its kind, 200, is in the private range
 * (mig-stream(5)); tests/sdk/xor.kind names it for the other commands.
 */
#include <mig.h>
#include <stdlib.h>

static void *xor_create(void) { return malloc(1); }
static void xor_destroy(void *st) { free(st); }

static int xor_encode_init(void *st, struct mig_encode_args *a,
			   uint8_t *params, size_t *len, struct mig_err *e)
{
	(void)st, (void)a, (void)params, (void)e;
	*len = 0;
	return 0;
}

static void flip(const struct mig_frame *in, uint8_t *out)
{
	for (size_t i = 0; i < in->len; i++)
		out[i] = in->data[i] ^ 0x5a;
}

static int xor_encode(void *ctx, struct mig_frame *in, size_t tailroom,
		      const uint8_t **out, size_t *out_len, uint8_t *flags,
		      struct mig_err *e)
{
	(void)ctx, (void)tailroom, (void)flags, (void)e;
	flip(in, (uint8_t *)in->data); /* in place: the frame is ours */
	*out = in->data;
	*out_len = in->len;
	return 0;
}

static int xor_decode_init(void *st, const uint8_t *params, size_t len,
			   struct mig_err *e)
{
	(void)st, (void)params;
	return len ? mig_err_set(e, MIG_EXIT_DATA, "unexpected parameters") : 0;
}

static int xor_decode(void *ctx, const struct mig_frame *in,
		      const uint8_t **out, size_t *out_len, struct mig_err *e)
{
	(void)ctx, (void)e;
	flip(in, (uint8_t *)in->data);
	*out = in->data;
	*out_len = in->len;
	return 0;
}

static const struct mig_filter xor_filter = {
	.name = "xor",
	.kind = 200,
	.summary = "XOR every byte with 0x5a (a filter built outside migkit).",
	.create = xor_create,
	.destroy = xor_destroy,
	.encode_init = xor_encode_init,
	.encode = xor_encode,
	.decode_init = xor_decode_init,
	.decode = xor_decode,
};

int main(int argc, char **argv)
{
	if (mig_stdfds_ensure(NULL) < 0)
		return MIG_EXIT_SYS;
	return mig_filter_main(&xor_filter, argc, argv);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-stream.c - what mig-info and the decoders meet: detection, the
 * envelopes peeled as the decoders and mig-recv peel them, then every
 * layer this build can open, nested, then the QEMU stream. */

#include "all.h"
#include "fuzz.h"
#include "qemu-stream.h"

#define DEPTH 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_src *base, *src[DEPTH + 1];
	const struct mig_filter *f[DEPTH + 1];
	void *st[DEPTH + 1];
	size_t n = 0;
	struct mig_err e = { 0 };
	struct mig_detect d;
	struct mig_envelopes env = { 0 };

	base = fuzz_src(&data, &size);
	if (!(src[0] = mig_envelopes_peel(base, &env, &d, &e)))
		goto out;
	while (n < DEPTH && mig_detect(src[n], &d, &e) == 0 &&
	       d.type == MIG_INPUT_LAYER && d.headlen >= 6 &&
	       (f[n + 1] = mig_filter_by_kind(d.kind)) &&
	       (st[n + 1] = f[n + 1]->create())) {
		struct mig_src *l = mig_src_layer(src[n], f[n + 1], st[n + 1], 2, &e);
		if (!l) {
			f[n + 1]->destroy(st[n + 1]);
			break;
		}
		src[++n] = l;
	}
	if (mig_detect(src[n], &d, &e) == 0 && d.type == MIG_INPUT_QEMU) {
		struct qs_info q = { 0 };
		char err[256];
		struct mig_err re;
		struct mig_src_pull pl = { src[n], &re, false };
		qs_scan(mig_src_pull_read, &pl, 0, &q, err, sizeof err);
		qs_info_free(&q);
	} else {
		fuzz_drain(src[n], &e);
	}
	for (; n > 0; n--) {
		mig_src_free(src[n]);
		f[n]->destroy(st[n]);
	}
out:
	mig_envelopes_free(&env);
	mig_src_free(base);
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-layer.c - one filter's decoder (FUZZ_FILTER, set by the build) on
 * arbitrary input, one thread and several. */
#include <stdlib.h>

#include "fuzz.h"

#define SYM2(n) mig_filter_##n
#define SYM(n) SYM2(n)
extern const struct mig_filter SYM(FUZZ_FILTER);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct mig_filter *f = &SYM(FUZZ_FILTER);
	int threads = size > 0 && (data[size - 1] & 1) ? 3 : 1;
	struct mig_src *in = fuzz_src(&data, &size);
	struct mig_err e = { 0 };
	void *st = f->create();
	struct mig_src *l = st ? mig_src_layer(in, f, st, threads, &e) : NULL;

	if (l)
		fuzz_drain(l, &e);
	mig_src_free(l);
	if (st)
		f->destroy(st);
	mig_src_free(in);
	return 0;
}

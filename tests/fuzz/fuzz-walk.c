/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-walk.c - following a layer's framing without decoding (mig-tee). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_src *in = fuzz_src(&data, &size);
	struct mig_walk w;
	struct mig_err e = { 0 };

	if (mig_layer_walk(in, &w, &e) < 0)
		fuzz_drain(in, &e);
	mig_src_free(in);
	return 0;
}

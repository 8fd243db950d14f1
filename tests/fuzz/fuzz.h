/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz.h - shared by the fuzz targets: the first input byte picks the
 * chunk size the source hands bytes out in, so chunk boundaries are
 * fuzzed too. Each target defines LLVMFuzzerTestOneInput. */
#ifndef MIG_FUZZ_H
#define MIG_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "mig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline struct mig_src *fuzz_src(const uint8_t **data, size_t *size)
{
	size_t chunk = 0;

	if (*size > 0) {
		chunk = (*data)[0] < 128 ? (size_t)(*data)[0] + 1 : 0;
		(*data)++;
		(*size)--;
	}
	return mig_src_mem(*data, *size, chunk, "fuzz");
}

/* Drain a source; what comes out is discarded. */
static inline int fuzz_drain(struct mig_src *s, struct mig_err *e)
{
	const uint8_t *p;
	size_t n;
	int r;

	while ((r = mig_src_chunk(s, &p, &n, SIZE_MAX, e)) > 0)
		;
	return r;
}

#endif

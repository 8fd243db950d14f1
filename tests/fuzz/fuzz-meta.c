/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-meta.c - KEY=VALUE parsing of META frames. */
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_meta m;
	struct mig_err e;

	if (mig_meta_parse(data, size, &m, &e) == 0) {
		/* what parses is a key and a NUL-free value */
		if (strlen(m.value) != m.value_len || !m.key[0])
			__builtin_trap();
		mig_meta_clear(&m);
	}
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-qemu-stream.c - the raw QEMU stream reader (mig-info, mig-tee). */

#include "fuzz.h"
#include "qemu-stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_src *in = fuzz_src(&data, &size);
	struct qs_info q = { 0 };
	char err[256];
	unsigned flags = size > 0 && (data[size - 1] & 1) ? QS_ALLOW_NO_VMDESC : 0;

	struct mig_err re;
	struct mig_src_pull pl = { in, &re, false };
	qs_scan(mig_src_pull_read, &pl, flags, &q, err, sizeof err);
	qs_info_free(&q);
	mig_src_free(in);
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-qemu-stream.c - the raw QEMU stream reader (mig-info, mig-tee), and
 * the same input through its hooks to the compactor (mig-compact): its
 * page index, and for a complete stream the compacted output, written to
 * memory files. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "qemu-compact.h"
#include "qemu-stream.h"

/* Compact the input as mig-compact does, the output to /dev/null. */
static void compact(const uint8_t *data, size_t size, unsigned flags)
{
	struct mig_src *in = fuzz_src(&data, &size);
	struct qs_info q = { 0 };
	struct qc c = { 0 };
	struct mig_err re = { 0 };
	struct mig_src_pull pl = { in, &re, false };
	char err[256];
	int spill = memfd_create("spill", MFD_CLOEXEC);
	int raw = memfd_create("raw", MFD_CLOEXEC);
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (spill >= 0 && raw >= 0 && out >= 0 && qc_init(&c, spill, raw) == 0 &&
	    qs_scan_hooks(mig_src_pull_read, &pl, flags, &c.hooks, &q, err,
			  sizeof err) == 0 &&
	    qc_check(&c, &q) == 0)
		qc_write(&c, &q, out, &re);
	qc_free(&c);
	qs_info_free(&q);
	mig_src_free(in);
	if (spill >= 0)
		close(spill);
	if (raw >= 0)
		close(raw);
	if (out >= 0)
		close(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *whole = data;
	size_t whole_size = size;
	struct mig_src *in = fuzz_src(&data, &size);
	struct qs_info q = { 0 };
	char err[256];
	unsigned flags = size > 0 && (data[size - 1] & 1) ? QS_ALLOW_NO_VMDESC : 0;

	struct mig_err re;
	struct mig_src_pull pl = { in, &re, false };
	qs_scan(mig_src_pull_read, &pl, flags, &q, err, sizeof err);
	qs_info_free(&q);
	mig_src_free(in);
	compact(whole, whole_size, flags);
	return 0;
}

/* fuzz-qemu-stream.c - the raw QEMU stream reader (mig-info, mig-tee). */
#include <errno.h>

#include "fuzz.h"
#include "qemu-stream.h"

static long pull(void *ctx, void *buf, size_t len)
{
	struct mig_err e;
	long n = mig_src_read(ctx, buf, len, &e);

	if (n < 0)
		errno = EIO;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_src *in = fuzz_src(&data, &size);
	struct qs_info q = { 0 };
	char err[256];
	unsigned flags = size > 0 && (data[size - 1] & 1) ? QS_ALLOW_NO_VMDESC : 0;

	qs_scan(pull, in, flags, &q, err, sizeof err);
	qs_info_free(&q);
	mig_src_free(in);
	return 0;
}

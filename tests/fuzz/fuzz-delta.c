/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-delta.c - mig-delta -d: a base and a delta, rebuilt as mig-delta -d
 * does, the output to /dev/null. Input: the chunk byte (fuzz.h), then a
 * le32 length N, N bytes of base (written to a memory file, as the base
 * is a regular file), the rest the delta. The base is read by the same
 * code as a delta's base, so both sides are fuzzed. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "qemu-delta.h"

static int to_fd(void *ctx, const void *p, size_t n, struct mig_err *e)
{
	return mig_write_all(*(int *)ctx, p, n, e);
}

static void rebuild(int base_fd, const uint8_t *delta, size_t n, size_t chunk)
{
	struct qd_stream base;
	struct qd_stats st;
	struct mig_err e = { 0 };
	struct mig_src *in = mig_src_mem(delta, n, chunk, "fuzz");
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (qd_base_open_fd(&base, base_fd, "base", &e) == 0 && in && out >= 0)
		qd_decode(&base, in, to_fd, &out, &st, &e);
	qd_stream_free(&base);
	mig_src_free(in);
	if (out >= 0)
		close(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	size_t chunk = data[0] < 128 ? (size_t)data[0] + 1 : 0;
	size_t n = mig_get_le32(data + 1);
	data += 5;
	size -= 5;
	if (n > size)
		n = size;
	int fd = memfd_create("base", MFD_CLOEXEC);
	struct mig_err e = { 0 };
	if (fd < 0)
		return 0;
	if (mig_write_all(fd, data, n, &e) == 0)
		rebuild(fd, data + n, size - n, chunk);
	close(fd);
	return 0;
}

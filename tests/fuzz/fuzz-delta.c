/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-delta.c - mig-delta -d: a base, maybe a delta of a chain on it,
 * and a delta, rebuilt as mig-delta -d does, the output to /dev/null.
 * Input: the chunk byte (fuzz.h), a le32 length N and N bytes of base
 * (written to a memory file: the base is a regular file), a le32 length M
 * and M bytes of a chain's delta (none if 0), the rest the delta. The
 * base and the chain are read by the same code as mig-delta's, so every
 * side is fuzzed. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "qemu-delta.h"

static int to_fd(void *ctx, const void *p, size_t n, struct mig_err *e)
{
	return mig_write_all(*(int *)ctx, p, n, e);
}

/* A le32 length, then that many bytes (cut to what there is). */
static const uint8_t *take(const uint8_t **data, size_t *size, size_t *n)
{
	const uint8_t *p;

	if (*size < 4) {
		*n = 0;
		return *data;
	}
	*n = mig_get_le32(*data);
	*data += 4;
	*size -= 4;
	if (*n > *size)
		*n = *size;
	p = *data;
	*data += *n;
	*size -= *n;
	return p;
}

static void rebuild(int base_fd, const uint8_t *mid, size_t m,
		    const uint8_t *delta, size_t n, size_t chunk)
{
	struct qd_stream base;
	struct qd_stats st;
	struct mig_err e = { 0 };
	struct mig_src *c = m ? mig_src_mem(mid, m, chunk, "chain") : NULL;
	struct mig_src *in = mig_src_mem(delta, n, chunk, "fuzz");
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (qd_base_open_fd(&base, base_fd, "base", &e) == 0 && in &&
	    out >= 0 && (!m || (c && qd_chain_absorb(&base, c, "chain", &e) == 0)))
		qd_decode(&base, in, to_fd, &out, &st, &e);
	qd_stream_free(&base);
	mig_src_free(c);
	mig_src_free(in);
	if (out >= 0)
		close(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *b, *mid;
	size_t n, m;

	if (size < 1)
		return 0;
	size_t chunk = data[0] < 128 ? (size_t)data[0] + 1 : 0;
	data++;
	size--;
	b = take(&data, &size, &n);
	mid = take(&data, &size, &m);
	int fd = memfd_create("base", MFD_CLOEXEC);
	struct mig_err e = { 0 };
	if (fd < 0)
		return 0;
	if (mig_write_all(fd, b, n, &e) == 0)
		rebuild(fd, mid, m, data, size, chunk);
	close(fd);
	return 0;
}

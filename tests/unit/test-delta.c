/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit test of the delta layer's XBZRLE records (emu-glue/qemu-delta*.c)
 * on the vectors of mig-stream(5) (argv[1]: tests/vectors): deltas whose
 * frames and header are sound but whose XBZRLE records are not, made by
 * the real encoder with its rewrite step swapped for one that writes a
 * chosen encoding. The rebuilding reader must refuse each with its
 * reason and write no byte of what follows the RAM pages.
 */
#include "qemu-delta.h"
#include "tap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *vectors;
static const uint8_t *enc_bytes;
static size_t enc_len;

/* The encoder's rewrite step, swapped: every data page it writes goes as
 * the XBZRLE record enc_bytes. */
static long rewrite_fixed(void *ctx, uint64_t page, const unsigned char *data,
			  unsigned char *out, size_t cap, struct mig_err *e)
{
	(void)ctx, (void)page, (void)data, (void)cap, (void)e;
	memcpy(out, enc_bytes, enc_len);
	return (long)enc_len;
}

static char *vector(const char *name)
{
	static char path[4][512];
	static int k;
	char *p = path[k++ % 4];
	snprintf(p, sizeof path[0], "%s/%s", vectors, name);
	return p;
}

/* The base with one byte of its page 2 ("C"s, bytes 4199 on) changed,
 * in t. */
static int changed_base(FILE *t)
{
	static char buf[16384];
	int fd = open(vector("delta-base.qemu"), O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;

	if (fd >= 0)
		close(fd);
	if (n < 5001 || !t)
		return -1;
	buf[5000] = 'x';
	if (fwrite(buf, 1, (size_t)n, t) != (size_t)n || fflush(t))
		return -1;
	return fileno(t);
}

/* A delta of the new stream in fd against the vectors' base, its data
 * pages written as enc: a descriptor of it, or -1. */
static int make_delta(int new_fd, const uint8_t *enc, size_t len)
{
	struct qd_stream base, now;
	struct qd_plan plan;
	struct qd_ident id;
	struct mig_err e = { 0 };
	struct mig_src *src = NULL;
	FILE *out = tmpfile();
	int raw = qc_temp_file("other bytes"), rc = -1;

	enc_bytes = enc;
	enc_len = len;
	memset(&now, 0, sizeof now);
	memset(&plan, 0, sizeof plan);
	if (qd_base_open(&base, vector("delta-base.qemu"), &e) < 0 || !out ||
	    raw < 0 || qc_init(&now.qc, -1, raw) < 0)
		goto out;
	lseek(new_fd, 0, SEEK_SET);
	qc_use_source(&now.qc, new_fd, 0);
	qd_stream_init_new(&now, "new");
	if (!(src = mig_src_fd(new_fd, "new")) ||
	    qd_stream_scan_new(&now, src, &e) < 0 ||
	    qd_plan(&plan, &base, &now, &id, &e) < 0)
		goto out;
	now.qc.rewrite = rewrite_fixed;
	if (qd_encode(&plan, &id, fileno(out), &e) == 0)
		rc = dup(fileno(out));
out:
	if (rc < 0)
		printf("#   make_delta: %s\n", e.msg);
	mig_src_free(src);
	qd_plan_free(&plan);
	qd_stream_free(&now);
	qd_stream_free(&base);
	if (raw >= 0)
		close(raw);
	if (out)
		fclose(out);
	return rc;
}

struct buf {
	unsigned char b[65536];
	size_t len;
};

static int to_buf(void *ctx, const void *p, size_t n, struct mig_err *e)
{
	struct buf *o = ctx;
	if (n > sizeof o->b - o->len)
		return mig_err_set(e, MIG_EXIT_IO, "test buffer full");
	memcpy(o->b + o->len, p, n);
	o->len += n;
	return 0;
}

/* Rebuild delta fd against the vectors' base: refused with a message
 * starting with want, and nothing of the device state ("abcdefgh" of the
 * timer) written. */
static void refused(int fd, const char *want, const char *what)
{
	struct qd_stream base;
	struct qd_stats st;
	struct mig_err e = { 0 };
	struct mig_src *src = NULL;
	static struct buf o;
	int rc = 0;

	o.len = 0;
	lseek(fd, 0, SEEK_SET);
	if (qd_base_open(&base, vector("delta-base.qemu"), &e) == 0 &&
	    (src = mig_src_fd(fd, "delta")))
		rc = qd_decode(&base, src, to_buf, &o, &st, &e);
	ok(rc == -1 && !strncmp(e.msg, want, strlen(want)) &&
	   !memmem(o.b, o.len, "abcdefgh", 8),
	   "%s: refused (%s), %zu bytes written, no device state", what,
	   e.msg, o.len);
	mig_src_free(src);
	qd_stream_free(&base);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return fprintf(stderr, "usage: test-delta VECTORS-DIR\n"), 2;
	vectors = argv[1];

	FILE *t = tmpfile();
	int changed = changed_base(t);
	int new_fd = open(vector("delta-new.qemu"), O_RDONLY);
	ok(changed >= 0 && new_fd >= 0, "the vectors open");
	if (changed < 0 || new_fd < 0)
		return tap_done();

	/* page 1 of the base is a zero page: nothing to apply runs to */
	refused(make_delta(new_fd, (const uint8_t[]){ 0, 1, 'B' }, 3),
		"an XBZRLE record at offset 76 for page 1, of which the base "
		"holds no data", "an XBZRLE record over a zero page");
	refused(make_delta(changed, (const uint8_t[]){ 0x80 }, 1),
		"an XBZRLE record at offset 76 that does not apply: a cut or "
		"overlong run length", "a cut run length");
	refused(make_delta(changed, (const uint8_t[]){ 0xff, 0x7f, 1, 'x' }, 4),
		"an XBZRLE record at offset 76 that does not apply: an "
		"unchanged run past the end of the page", "a run past the page");
	/* sound, but not the page the header's digest names */
	refused(make_delta(changed, (const uint8_t[]){ 0, 1, 'Z' }, 3),
		"the rebuilt pages do not match the delta's header",
		"an XBZRLE record that makes another page");
	close(new_fd);
	fclose(t);
	return tap_done();
}

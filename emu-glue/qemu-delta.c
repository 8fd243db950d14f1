/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-delta.c - page keys, the base, and the encoder. See qemu-delta.h;
 * the layer is delta-layer.c, the rebuilding side qemu-delta-rebuild.c.
 */
#include "qemu-delta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libvirt-image.h"
#include "xbzrle.h"

typedef unsigned long long ull;

/* ---- page keys ----------------------------------------------------------------- */

#define ZERO_SEED 0x5a45524fu /* "ZERO": a fill byte never keys like data */

XXH128_hash_t qd_page_key(unsigned kind, uint8_t fill, const void *data,
			  size_t page_size)
{
	if (kind == QS_PAGE_ZERO)
		return XXH3_128bits_withSeed(&fill, 1, ZERO_SEED);
	return XXH3_128bits(data, page_size);
}

void qd_layout_digest(const struct qs_info *info, uint8_t out[QD_DIGEST])
{
	XXH3_state_t *s = XXH3_createState();
	uint8_t b[8];
	XXH128_canonical_t c;

	if (!s) { /* no memory: a digest nothing matches */
		memset(out, 0xff, QD_DIGEST);
		return;
	}
	XXH3_128bits_reset(s);
	mig_put_le64(b, info->page_size);
	XXH3_128bits_update(s, b, 8);
	for (size_t i = 0; i < info->nblocks; i++) {
		uint8_t n = (uint8_t)strlen(info->blocks[i].id);
		XXH3_128bits_update(s, &n, 1);
		XXH3_128bits_update(s, info->blocks[i].id, n);
		mig_put_le64(b, info->blocks[i].size);
		XXH3_128bits_update(s, b, 8);
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(s));
	memcpy(out, c.digest, QD_DIGEST);
	XXH3_freeState(s);
}

void qd_digest_record(XXH3_state_t *s, uint64_t page, XXH128_hash_t key)
{
	uint8_t b[8 + QD_DIGEST];
	XXH128_canonical_t c;

	mig_put_le64(b, page);
	XXH128_canonicalFromHash(&c, key);
	memcpy(b + 8, c.digest, QD_DIGEST);
	XXH3_128bits_update(s, b, sizeof b);
}

void qd_state_digest(const uint8_t layout[QD_DIGEST],
		     const uint8_t pages[QD_DIGEST],
		     const uint8_t other[QD_DIGEST], uint8_t out[QD_DIGEST])
{
	uint8_t b[3 * QD_DIGEST];
	XXH128_canonical_t c;

	memcpy(b, layout, QD_DIGEST);
	memcpy(b + QD_DIGEST, pages, QD_DIGEST);
	memcpy(b + 2 * QD_DIGEST, other, QD_DIGEST);
	XXH128_canonicalFromHash(&c, XXH3_128bits(b, sizeof b));
	memcpy(out, c.digest, QD_DIGEST);
}

/* ---- a stream read with page keys ---------------------------------------------- */

/* The compactor keeps what is outside the ram PART sections (its drop
 * says which bytes are inside): those bytes go into the state's digest. */
static int on_bytes(void *ctx, const unsigned char *p, size_t n)
{
	struct qd_stream *s = ctx;

	if (!s->qc.drop)
		XXH3_128bits_update(s->other, p, n);
	return s->qc.hooks.bytes(s->qc.hooks.ctx, p, n);
}

static int on_item(void *ctx, unsigned type, uint64_t at, unsigned cmd)
{
	struct qd_stream *s = ctx;
	return s->qc.hooks.item(s->qc.hooks.ctx, type, at, cmd);
}

/* The compactor indexes the page; its key goes beside it. */
static int on_page(void *ctx, const struct qs_info *info, const struct qs_page *pg)
{
	struct qd_stream *s = ctx;

	if (s->qc.hooks.page(s->qc.hooks.ctx, info, pg) < 0)
		return -1;
	if (!s->qc.ent || (pg->kind != QS_PAGE_ZERO && pg->kind != QS_PAGE_DATA))
		return 0; /* refused after the scan (qc.not_compactable) */
	if (!s->key && !(s->key = calloc(s->qc.npages, sizeof *s->key))) {
		s->qc.code = MIG_EXIT_SYS;
		snprintf(s->qc.why, sizeof s->qc.why, "out of memory for the "
			 "page keys (%llu pages of RAM)", (ull)s->qc.npages);
		snprintf(s->hooks.hook_err, sizeof s->hooks.hook_err, "%s",
			 s->qc.why);
		return -1;
	}
	uint64_t i = s->qc.block_first[pg->block] + pg->addr / s->qc.page_size;
	s->key[i] = qd_page_key(pg->kind, pg->fill, pg->data, s->qc.page_size);
	return 0;
}

static void stream_init(struct qd_stream *s, const char *name, int fd)
{
	memset(s, 0, sizeof *s);
	s->name = s->file = name;
	s->fd = fd;
	s->page_fd = fd;
	s->absorb_fd = -1;
	s->hooks.ctx = s;
	s->hooks.bytes = on_bytes;
	s->hooks.item = on_item;
	s->hooks.page = on_page;
}

void qd_stream_init_new(struct qd_stream *s, const char *name)
{
	struct qc keep = s->qc; /* made by the caller */

	stream_init(s, name, -1);
	s->qc = keep;
	s->qc.hooks.ctx = &s->qc;
}

void qd_stream_free(struct qd_stream *s)
{
	if (s->page_fd >= 0 && s->page_fd != s->fd)
		close(s->page_fd);
	s->page_fd = s->fd;
	if (s->absorb_fd >= 0)
		close(s->absorb_fd);
	s->absorb_fd = -1;
	free(s->over);
	s->over = NULL;
	qc_free(&s->qc);
	qs_info_free(&s->info);
	free(s->key);
	s->key = NULL;
}

/* What a stream must be: raw QEMU (or a libvirt image holding one). */
static int check_kind(struct mig_src *src, const char *hint, struct mig_err *e)
{
	struct mig_detect d;
	char what[128];

	if (mig_detect(src, &d, e) < 0)
		return -1;
	switch (d.type) {
	case MIG_INPUT_QEMU:
		return 0;
	case MIG_INPUT_EMPTY:
		return mig_err_set(e, MIG_EXIT_DATA, "empty input");
	case MIG_INPUT_LAYER:
		mig_detect_describe(&d, what, sizeof what);
		return mig_err_set(e, MIG_EXIT_DATA, "%s, not a raw QEMU "
				   "stream: %s", what, hint);
	default:
		if (lv_is_image(d.head, d.headlen))
			return 0;
		return mig_err_set(e, MIG_EXIT_DATA, "not a QEMU migration "
				   "stream");
	}
}

static int scan_raw(struct qd_stream *s, struct mig_src *src, const char *hint,
		    struct mig_err *e);

/* Read the whole stream (out of its envelopes), keying its pages, and
 * take its state's digest. 0 or -1 with e set. */
static int scan(struct qd_stream *s, struct mig_src *src, const char *hint,
		struct mig_err *e)
{
	struct mig_envelopes env = { 0 };
	struct mig_detect d;
	int rc = -1;

	if (!(src = mig_envelopes_peel(src, &env, &d, e)))
		goto out;
	rc = scan_raw(s, src, hint, e);
out:
	mig_envelopes_free(&env);
	return rc;
}

/* The digest of the state read: its layout's, its final page records'
 * (page by page, as the delta's digest of the rebuilt records) and its
 * other bytes' (s->other, then reused for the records). */
static void state_digest(struct qd_stream *s)
{
	uint8_t pages[QD_DIGEST], other[QD_DIGEST];
	XXH128_canonical_t c;
	uint64_t off;
	uint8_t f;

	qd_layout_digest(&s->info, s->layout);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(s->other));
	memcpy(other, c.digest, QD_DIGEST);
	XXH3_128bits_reset(s->other);
	for (uint64_t i = 0; i < s->qc.npages; i++)
		if (qc_page_ref(&s->qc, i, &f, &off))
			qd_digest_record(s->other, i, s->key[i]);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(s->other));
	memcpy(pages, c.digest, QD_DIGEST);
	qd_state_digest(s->layout, pages, other, s->digest);
}

/* The raw stream through the hooks: its pages indexed and keyed, its
 * other bytes into s->other. 0 or -1 with e set. */
static int read_keyed(struct qd_stream *s, struct mig_src *src,
		      struct mig_err *e)
{
	struct mig_src_pull p = { src, e, false };
	char qerr[512];

	if (qs_scan_hooks(mig_src_pull_read, &p, 0, &s->hooks, &s->info, qerr,
			  sizeof qerr) < 0) {
		if (s->qc.code)
			return mig_err_set(e, s->qc.code, "%s", s->qc.why);
		if (!p.failed)
			mig_err_set(e, MIG_EXIT_DATA, "%s", qerr);
		return -1;
	}
	if (s->qc.not_compactable[0])
		return mig_err_set(e, MIG_EXIT_DATA, "unsupported: %s: a delta "
				   "needs every page whole",
				   s->qc.not_compactable);
	if (qc_check(&s->qc, &s->info) < 0)
		return mig_err_set(e, s->qc.code, "%s", s->qc.why);
	return 0;
}

/* The same, the stream raw (out of its envelopes). */
static int scan_raw(struct qd_stream *s, struct mig_src *src, const char *hint,
		    struct mig_err *e)
{
	int rc;

	if (check_kind(src, hint, e) < 0)
		return -1;
	if (!(s->other = XXH3_createState()))
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	XXH3_128bits_reset(s->other);
	rc = read_keyed(s, src, e);
	if (rc == 0) {
		s->bytes = qc_output_bytes(&s->qc, &s->info);
		state_digest(s);
	}
	XXH3_freeState(s->other);
	s->other = NULL;
	return rc;
}

int qd_stream_scan_new(struct qd_stream *s, struct mig_src *src,
		       struct mig_err *e)
{
	return scan(s, src, "decode it first (mig-delta(1))", e);
}

/* Its pages are read again from where they lie in the file, or, in
 * envelopes (where frames interleave), from a temporary file they are
 * spilled to. 0 or -1 with e set. */
static int base_index(struct qd_stream *b, struct mig_src *src,
		      struct mig_err *e)
{
	struct mig_detect d;
	bool wrapped;

	if (mig_detect(src, &d, e) < 0)
		return -1;
	wrapped = d.type == MIG_INPUT_LAYER && d.kind == MIG_KIND_ENVELOPE;
	if (wrapped && (b->page_fd = qc_temp_file("base's pages")) < 0)
		return mig_err_set(e, MIG_EXIT_IO, "no temporary file");
	if (qc_init(&b->qc, wrapped ? b->page_fd : -1, -1) < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	if (!wrapped)
		qc_use_source(&b->qc, b->fd, 0);
	return 0;
}

int qd_base_open_fd(struct qd_stream *b, int fd, const char *name,
		    struct mig_err *e)
{
	struct mig_src *src = NULL;
	int rc = -1;

	stream_init(b, name, fd);
	if (lseek(fd, 0, SEEK_SET) < 0) { /* the whole file is the base */
		mig_err_set(e, MIG_EXIT_IO, "%s: %s", name, strerror(errno));
		goto out;
	}
	if (!(src = mig_src_fd(fd, name))) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto out;
	}
	if (base_index(b, src, e) < 0)
		goto out;
	rc = scan(b, src, "decode it into a raw QEMU stream file first, "
		  "the base a delta needs (mig-delta(1))", e);
out:
	mig_src_free(src);
	return rc;
}

int qd_base_open(struct qd_stream *b, const char *path, struct mig_err *e)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	stream_init(b, path, -1);
	if (fd < 0)
		return mig_err_set(e, MIG_EXIT_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mig_err_set(e, MIG_EXIT_USAGE, "%s: not a regular file: "
				   "the base's pages are read again by offset",
				   path);
	}
	if (qd_base_open_fd(b, fd, path, e) < 0) {
		mig_err_prefix(e, "%s: ", path);
		if (b->page_fd == fd)
			b->page_fd = -1;
		close(fd);
		b->fd = -1;
		return -1;
	}
	return 0;
}

int qd_page_where(const struct qd_stream *s, uint64_t i, uint8_t *fill,
		  uint64_t *off, bool *absorbed)
{
	uint64_t o = s->over ? s->over[i] : 0;

	*absorbed = o != 0;
	if (!o)
		return qc_page_ref(&s->qc, i, fill, off);
	if (o & QD_OVER_ZERO) {
		*fill = (uint8_t)o;
		return 1;
	}
	*off = o - 1;
	return 2;
}

/* ---- encoding --------------------------------------------------------------------- */

/* The base's page i, read again and checked against its key, into buf:
 * 1; 0 when the base holds no data page there; -1 with e set. */
static int base_data(const struct qd_stream *b, uint64_t i, unsigned char *buf,
		     struct mig_err *e)
{
	size_t ps = (size_t)b->qc.page_size;
	uint64_t off;
	uint8_t fill;
	bool absorbed;

	if (qd_page_where(b, i, &fill, &off, &absorbed) != 2)
		return 0;
	int fd = absorbed ? b->absorb_fd : b->page_fd;
	const char *file = absorbed ? "the chain's pages (temporary file)" :
			   b->file;
	ssize_t n = mig_pread_full(fd, buf, ps, (off_t)off);
	if (n != (ssize_t)ps)
		return mig_err_set(e, MIG_EXIT_IO, "%s: %s", file, n < 0 ?
				   strerror(errno) : "ends early: it "
				   "changed since it was read");
	if (!XXH128_isEqual(XXH3_128bits(buf, ps), b->key[i]))
		return mig_err_set(e, MIG_EXIT_DATA, "%s: page %llu changed "
				   "since it was read", file, (ull)i);
	return 1;
}

/* A changed page the base holds data for goes as an XBZRLE record
 * against it when that takes at most half a page: a page changed in a
 * few places (a counter, a list's links) costs those places. Where more
 * changed, the page goes whole: the compressor after us does better
 * with it than with scattered runs. */
static long rewrite_changed(void *ctx, uint64_t i, const unsigned char *data,
			    unsigned char *out, size_t cap, struct mig_err *e)
{
	struct qd_plan *p = ctx;
	int k = base_data(p->base, i, p->old, e);

	if (k <= 0)
		return k;
	long n = xbzrle_encode(p->old, data, cap, out, cap / 2);
	if (n <= 0) /* 0: equal after all (keys can collide): sent whole */
		return 0;
	p->xbzrle++;
	return n;
}

static bool keep_changed(void *ctx, uint64_t i)
{
	const uint8_t *changed = ctx;
	return changed[i >> 3] & (1u << (i & 7));
}

/* The new stream's layout must be the base's: page for page the same RAM. */
static int same_layout(const struct qd_stream *base, const struct qd_stream *now,
		       struct mig_err *e)
{
	if (!memcmp(base->layout, now->layout, QD_DIGEST) &&
	    base->qc.npages == now->qc.npages)
		return 0;
	return mig_err_set(e, MIG_EXIT_DATA, "its RAM blocks differ from the "
			   "base's (%zu blocks, %llu pages of RAM against %zu "
			   "and %llu): not a later checkpoint of the same VM",
			   now->info.nblocks, (ull)now->qc.npages,
			   base->info.nblocks, (ull)base->qc.npages);
}

int qd_plan(struct qd_plan *p, struct qd_stream *base, struct qd_stream *now,
	    struct qd_ident *id, struct mig_err *e)
{
	XXH3_state_t *ram = XXH3_createState();
	XXH128_canonical_t c;
	uint64_t n = now->qc.npages;
	uint8_t f;
	uint64_t off;

	memset(p, 0, sizeof *p);
	p->base = base;
	p->now = now;
	if (!ram || !(p->changed = calloc(n / 8 + 1, 1)) ||
	    !(p->old = malloc(base->qc.page_size ? base->qc.page_size : 1))) {
		XXH3_freeState(ram);
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	}
	if (same_layout(base, now, e) < 0) {
		XXH3_freeState(ram);
		return -1;
	}
	XXH3_128bits_reset(ram);
	memset(id, 0, sizeof *id);
	for (uint64_t i = 0; i < n; i++) {
		int had = (base->over && base->over[i]) ||
			  qc_page_ref(&base->qc, i, &f, &off);
		if (!qc_page_ref(&now->qc, i, &f, &off)) {
			if (!had)
				continue;
			/* sent in the base, never in the new stream: loads as
			 * a zero page, the RAM of a fresh destination */
			qc_page_set_zero(&now->qc, i);
			now->key[i] = qd_page_key(QS_PAGE_ZERO, 0, NULL, 0);
		}
		id->records++;
		qd_digest_record(ram, i, now->key[i]);
		if (!had || !XXH128_isEqual(base->key[i], now->key[i])) {
			p->changed[i >> 3] |= (uint8_t)(1u << (i & 7));
			id->delta_pages++;
		}
	}
	memcpy(id->base_digest, base->digest, QD_DIGEST);
	id->base_bytes = base->bytes;
	memcpy(id->layout_digest, base->layout, QD_DIGEST);
	id->ram_pages = n;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(ram));
	memcpy(id->ram_digest, c.digest, QD_DIGEST);
	XXH3_freeState(ram);
	now->qc.keep = keep_changed;
	now->qc.keep_ctx = p->changed;
	now->qc.rewrite = rewrite_changed;
	now->qc.rewrite_ctx = p;
	return 0;
}

void qd_plan_free(struct qd_plan *p)
{
	free(p->changed);
	free(p->old);
	p->changed = NULL;
	p->old = NULL;
}

/* qc_write's bytes into the layer's DATA frames. */
static int sink_write(void *ctx, const void *p, size_t n, struct mig_err *e)
{
	return mig_sink_write(ctx, p, n, e);
}

int qd_encode(struct qd_plan *p, const struct qd_ident *id, int fd,
	      struct mig_err *e)
{
	void *st = qd_layer_new(id);
	struct mig_sink *k = NULL;
	int rc = -1;

	if (!st)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	if (!(k = mig_sink_open(fd, &mig_filter_delta, st, 0, 1, e)))
		goto out;
	if (qc_write_to(&p->now->qc, &p->now->info, sink_write, k, e) < 0)
		goto out;
	rc = mig_sink_end(k, e);
out:
	mig_sink_free(k);
	mig_filter_delta.destroy(st);
	return rc;
}

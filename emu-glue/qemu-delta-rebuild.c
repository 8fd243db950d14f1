/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-delta-rebuild.c - mig-delta -d: a delta layer and its base back
 * into a whole raw QEMU stream (qemu-delta.h).
 *
 * The delta's inner stream is read by the stream reader; its bytes pass
 * on as they are, except its one ram PART section, whose page records are
 * merged with the base's in page order: before each of the delta's pages
 * go the base's pages below it, after the last the rest. Each base page
 * read back from the base file is checked against the key taken when the
 * base was read whole (the keys are in the state's digest, checked
 * against the delta's header before a byte is written), so a base
 * changed meanwhile is refused too.
 *
 * A chain's state (qd_chain_absorb) is rebuilt without output: the
 * base's pages are neither read nor written, only their keys go into the
 * digest of the records and their records' lengths are counted; the
 * delta's pages are kept and their keys replace the base's.
 *
 * Everything after the pages is held back in memory until the layer's
 * END (every frame's tag, the digest of the inner bytes) and the digest
 * of the rebuilt page records are verified: output cut short by an error
 * ends inside the ram PART section, which QEMU never completes loading.
 */
#include "qemu-delta.h"
#include "xbzrle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef unsigned long long ull;

#define BUF_CAP (1u << 20)

/* ram record flags (migration/ram.c) */
#define RF_ZERO 0x002u
#define RF_PAGE 0x008u
#define RF_CONTINUE 0x020u

enum { BEFORE, PART_HEAD, PAGES, HELD }; /* where in the inner stream */

/* Part of a file the pages are read from: pages written in order mostly
 * lie in order there too. */
struct window {
	unsigned char *buf;
	uint64_t at;
	size_t len;
};

struct rb {
	struct qd_stream *base;
	const struct qd_ident *id;
	const struct qs_info *info;   /* the inner stream's, as it is read */
	qc_write_fn write;
	void *wctx;
	struct mig_err *e;
	bool failed;                  /* a hook set e */

	unsigned char *buf;           /* output not yet written */
	size_t len;
	unsigned char *tail;          /* held back until verified */
	size_t tail_len, tail_cap;

	int state;
	bool absorbing;               /* a chain's state: nothing written */
	bool in_part;                 /* in the ram PART section */
	XXH3_state_t *other;          /* digest of the bytes outside it */
	size_t head_seen;             /* bytes of the PART's header */
	uint64_t next;                /* first page of the index not merged */
	size_t block;                 /* the block of page `next` on */
	size_t named;                 /* the block named last (SIZE_MAX: none) */
	XXH3_state_t *ram;            /* digest of the records written */
	struct qd_stats *st;

	struct window win[2];          /* of the base file, of the pages
	                                  a chain's deltas carried */
	unsigned char *page;          /* a page an XBZRLE record rebuilt */
	struct qs_hooks hooks;
};

static int rb_fail(struct rb *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int rb_fail(struct rb *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->e->msg, sizeof r->e->msg, fmt, ap);
	va_end(ap);
	r->e->code = MIG_EXIT_DATA;
	r->failed = true;
	return -1;
}

/* ---- output ------------------------------------------------------------------- */

static int flush_out(struct rb *r)
{
	int rc = r->len ? r->write(r->wctx, r->buf, r->len, r->e) : 0;
	if (rc < 0)
		r->failed = true;
	r->st->bytes_out += r->len;
	r->len = 0;
	return rc;
}

static int hold(struct rb *r, const void *p, size_t n)
{
	if (n > QD_TAIL_MAX - r->tail_len)
		return rb_fail(r, "unsupported: more than %u MiB after the RAM "
			       "pages (device state)", QD_TAIL_MAX >> 20);
	if (r->tail_len + n > r->tail_cap) {
		size_t cap = r->tail_cap ? r->tail_cap : 1u << 16;
		while (cap < r->tail_len + n)
			cap *= 2;
		unsigned char *t = realloc(r->tail, cap);
		if (!t) {
			mig_err_set(r->e, MIG_EXIT_SYS, "out of memory");
			r->failed = true;
			return -1;
		}
		r->tail = t;
		r->tail_cap = cap;
	}
	memcpy(r->tail + r->tail_len, p, n);
	r->tail_len += n;
	return 0;
}

/* n bytes of output; a chain's state only counts them (p may then be
 * NULL: a base page that is not read). */
static int put(struct rb *r, const void *p, size_t n)
{
	if (r->absorbing) {
		r->st->bytes_out += n;
		return 0;
	}
	if (r->state == HELD)
		return hold(r, p, n);
	while (n) {
		if (r->len == BUF_CAP && flush_out(r) < 0)
			return -1;
		size_t m = BUF_CAP - r->len < n ? BUF_CAP - r->len : n;
		memcpy(r->buf + r->len, p, m);
		r->len += m;
		p = (const unsigned char *)p + m;
		n -= m;
	}
	return 0;
}

/* ---- page records ------------------------------------------------------------- */

static size_t block_of(struct rb *r, uint64_t page)
{
	const uint64_t *first = r->base->qc.block_first;
	while (r->block + 1 < r->base->qc.nblocks && page >= first[r->block + 1])
		r->block++;
	return r->block;
}

/* One record of the rebuilt PART: page in the index, its key (data NULL:
 * a chain's state's page from its base, counted, not read). */
static int put_record(struct rb *r, uint64_t page, unsigned kind, uint8_t fill,
		      const unsigned char *data, XXH128_hash_t key)
{
	size_t b = block_of(r, page);
	const struct qs_ramblock *blk = &r->base->info.blocks[b];
	uint64_t ps = r->base->qc.page_size;
	uint64_t hdr = (page - r->base->qc.block_first[b]) * ps |
		       (kind == QS_PAGE_ZERO ? RF_ZERO : RF_PAGE) |
		       (b == r->named ? RF_CONTINUE : 0);
	unsigned char h[8 + 1 + 255];
	size_t n = 8;

	for (int i = 0; i < 8; i++)
		h[i] = (unsigned char)(hdr >> (56 - 8 * i));
	if (b != r->named) {
		h[n++] = (unsigned char)strlen(blk->id);
		memcpy(h + n, blk->id, strlen(blk->id));
		n += strlen(blk->id);
		r->named = b;
	}
	qd_digest_record(r->ram, page, key);
	r->st->records++;
	if (put(r, h, n) < 0)
		return -1;
	return kind == QS_PAGE_ZERO ? put(r, &fill, 1) : put(r, data, ps);
}

/* For messages: the file a page of the state is read from. */
static const char *page_file(const struct qd_stream *b, bool absorbed)
{
	return absorbed ? "the chain's pages (temporary file)" : b->file;
}

/* The page at offset off of the base's file (absorbed: of the pages its
 * chain's deltas carried), through that file's window. The base's pages
 * lie there in page order, so a window holds the next ones too; the
 * chain's lie delta after delta, each delta's in page order, so in page
 * order they alternate between the deltas' parts of the file: a window
 * would be read again for nearly every page, and each is read alone. */
static const unsigned char *base_page(struct rb *r, bool absorbed, uint64_t off)
{
	size_t ps = (size_t)r->base->qc.page_size;
	struct window *w = &r->win[absorbed];
	int fd = absorbed ? r->base->absorb_fd : r->base->page_fd;
	const char *name = page_file(r->base, absorbed);

	if (off < w->at || off + ps > w->at + w->len) {
		ssize_t n = mig_pread_full(fd, w->buf, absorbed ? ps : BUF_CAP,
					   (off_t)off);
		if (n < 0) {
			mig_err_set(r->e, MIG_EXIT_IO, "%s: %s", name,
				    strerror(errno));
			r->failed = true;
			return NULL;
		}
		w->at = off;
		w->len = (size_t)n;
		if (w->len < ps) {
			rb_fail(r, "%s: ends early: it changed since it was read",
				name);
			return NULL;
		}
	}
	return w->buf + (off - w->at);
}

/* The state's data page `page` (at off; absorbed: of the pages its
 * chain's deltas carried), checked against its key: a base changed since
 * it was read is refused before a byte of the page is used. */
static const unsigned char *checked_page(struct rb *r, uint64_t page,
					 bool absorbed, uint64_t off)
{
	const unsigned char *p = base_page(r, absorbed, off);

	if (p && !XXH128_isEqual(XXH3_128bits(p, (size_t)r->base->qc.page_size),
				 r->base->key[page])) {
		rb_fail(r, "%s: page %llu changed since it was read",
			page_file(r->base, absorbed), (ull)page);
		return NULL;
	}
	return p;
}

/* The base's pages from r->next up to (not including) page `to`. */
static int merge_base(struct rb *r, uint64_t to)
{
	struct qd_stream *b = r->base;

	for (; r->next < to; r->next++) {
		uint8_t fill = 0;
		uint64_t off = 0;
		bool absorbed;
		int k = qd_page_where(b, r->next, &fill, &off, &absorbed);
		if (k == 0)
			continue;
		/* a chain's state: its data pages are not read (checked
		 * against their keys when the output reads them) */
		if (k == 1 || r->absorbing) {
			if (put_record(r, r->next, k == 1 ? QS_PAGE_ZERO :
				       QS_PAGE_DATA, fill, NULL,
				       b->key[r->next]) < 0)
				return -1;
			continue;
		}
		const unsigned char *p = checked_page(r, r->next, absorbed, off);
		if (!p || put_record(r, r->next, QS_PAGE_DATA, 0, p,
				     b->key[r->next]) < 0)
			return -1;
	}
	return 0;
}

/* Rebuilding a state of a chain: the delta's page becomes the base's
 * (the pages below it were merged already, so the base is read on as
 * before), its data kept in the file of absorbed pages. */
static int absorb(struct rb *r, uint64_t page, const struct qs_page *pg,
		  XXH128_hash_t key)
{
	struct qd_stream *b = r->base;
	struct mig_err *e = r->e;

	if (!b->over && !(b->over = calloc(b->qc.npages, sizeof *b->over))) {
		r->failed = true;
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	}
	b->key[page] = key;
	if (pg->kind == QS_PAGE_ZERO) {
		b->over[page] = QD_OVER_ZERO | pg->fill;
		return 0;
	}
	size_t ps = (size_t)b->qc.page_size, done = 0;
	while (done < ps) {
		ssize_t w = pwrite(b->absorb_fd, pg->data + done, ps - done,
				   (off_t)(b->absorb_at + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r->failed = true;
			return mig_err_set(e, MIG_EXIT_IO, "temporary file: %s",
					   w < 0 ? strerror(errno) : "short write");
		}
		done += (size_t)w;
	}
	b->over[page] = b->absorb_at + 1;
	b->absorb_at += ps;
	return 0;
}

/* ---- the reader's hooks --------------------------------------------------------- */

/* The pages are over: the base's remaining ones, then hold what follows. */
static int pages_done(struct rb *r)
{
	if (merge_base(r, r->base->qc.npages) < 0 || flush_out(r) < 0)
		return -1;
	r->state = HELD;
	return 0;
}

static int rb_bytes(void *ctx, const unsigned char *p, size_t n)
{
	struct rb *r = ctx;

	if (!r->in_part)
		XXH3_128bits_update(r->other, p, n);
	if (r->state == PART_HEAD) {
		size_t h = 5 - r->head_seen < n ? 5 - r->head_seen : n;
		if (put(r, p, h) < 0)
			return -1;
		r->head_seen += h;
		p += h;
		n -= h;
		if (r->head_seen == 5)
			r->state = PAGES;
	}
	if (n && r->state == PAGES && pages_done(r) < 0)
		return -1;
	return n ? put(r, p, n) : 0;
}

static int check_layout(struct rb *r)
{
	uint8_t d[QD_DIGEST];

	qd_layout_digest(r->info, d);
	if (memcmp(d, r->id->layout_digest, QD_DIGEST))
		return rb_fail(r, "the stream's RAM blocks are not those of "
			       "the delta's header");
	return 0;
}

static int rb_item(void *ctx, unsigned type, uint64_t at, unsigned cmd)
{
	struct rb *r = ctx;

	(void)cmd;
	r->in_part = type == 0x02;
	if (type == 0x02) {
		if (r->state != BEFORE)
			return rb_fail(r, "a second ram PART section at offset "
				       "%llu: a delta has one", (ull)at);
		if (check_layout(r) < 0)
			return -1;
		r->state = PART_HEAD;
		return 0;
	}
	if ((type == 0x03 || type == 0x04) && r->state == BEFORE)
		return rb_fail(r, "no ram PART section before offset %llu: a "
			       "delta has one", (ull)at);
	return 0;
}

/* An XBZRLE record: the base's page, checked against its key, with the
 * record's runs applied, in r->page; pg then stands for it. */
static int apply_xbzrle(struct rb *r, uint64_t page, struct qs_page *pg)
{
	struct qd_stream *b = r->base;
	size_t ps = (size_t)b->qc.page_size;
	uint8_t fill;
	uint64_t off;
	bool absorbed;
	const char *why;

	if (qd_page_where(b, page, &fill, &off, &absorbed) != 2)
		return rb_fail(r, "an XBZRLE record at offset %llu for page "
			       "%llu, of which the base holds no data",
			       (ull)pg->offset, (ull)page);
	const unsigned char *p = checked_page(r, page, absorbed, off);
	if (!p)
		return -1;
	memcpy(r->page, p, ps);
	if (xbzrle_decode(pg->data, pg->data_len, r->page, ps, &why) < 0)
		return rb_fail(r, "an XBZRLE record at offset %llu that does "
			       "not apply: %s", (ull)pg->offset, why);
	pg->kind = QS_PAGE_DATA;
	pg->data = r->page;
	r->st->xbzrle++;
	return 0;
}

static int rb_page(void *ctx, const struct qs_info *info, const struct qs_page *in)
{
	struct rb *r = ctx;
	const struct qc *bq = &r->base->qc;
	struct qs_page pg = *in;

	(void)info;
	if (r->state != PAGES)
		return rb_fail(r, "a page record at offset %llu outside the "
			       "ram PART section", (ull)pg.offset);
	if (pg.kind == QS_PAGE_COMPRESS)
		return rb_fail(r, "a compressed page record at offset %llu",
			       (ull)pg.offset);
	uint64_t page = bq->block_first[pg.block] + pg.addr / bq->page_size;
	if (page >= bq->block_first[pg.block + 1] || page < r->next)
		return rb_fail(r, "page records out of order at offset %llu",
			       (ull)pg.offset);
	if (merge_base(r, page) < 0)
		return -1;
	if (pg.kind == QS_PAGE_XBZRLE && apply_xbzrle(r, page, &pg) < 0)
		return -1;
	r->st->from_delta++;
	r->next = page + 1;
	XXH128_hash_t key = qd_page_key(pg.kind, pg.fill, pg.data,
					(size_t)bq->page_size);
	if (put_record(r, page, pg.kind, pg.fill, pg.data, key) < 0)
		return -1;
	return r->absorbing ? absorb(r, page, &pg, key) : 0;
}

/* ---- decoding ------------------------------------------------------------------- */

/* The delta must be made against this very base. */
static int check_base(const struct qd_stream *b, const struct qd_ident *id,
		      struct mig_err *e)
{
	char have[17], want[17];

	if (!memcmp(b->digest, id->base_digest, QD_DIGEST) &&
	    b->bytes == id->base_bytes &&
	    !memcmp(b->layout, id->layout_digest, QD_DIGEST) &&
	    b->qc.npages == id->ram_pages)
		return 0;
	qd_hex(b->digest, 8, have);
	qd_hex(id->base_digest, 8, want);
	return mig_err_set(e, MIG_EXIT_DATA, "wrong base: %s (%llu bytes "
			   "compacted, state XXH3-128 %s...) is not the base "
			   "this delta was made against (%llu bytes, %s...)",
			   b->name, (ull)b->bytes, have, (ull)id->base_bytes,
			   want);
}

/* A chain's state verified: the base becomes it. Its layout is the
 * base's (check_base), its records' digest the one just verified. */
static void become_state(struct rb *r, const uint8_t pages[QD_DIGEST])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(r->other));
	qd_state_digest(r->base->layout, pages, c.digest, r->base->digest);
	r->base->bytes = r->st->bytes_out;
}

/* Verified: the records and their digest are the header's; then the tail. */
static int finish(struct rb *r)
{
	XXH128_canonical_t c;

	if (r->state != HELD)
		return rb_fail(r, "incomplete: no ram PART section");
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(r->ram));
	if (r->st->records != r->id->records ||
	    r->st->from_delta != r->id->delta_pages ||
	    memcmp(c.digest, r->id->ram_digest, QD_DIGEST))
		return rb_fail(r, "the rebuilt pages do not match the delta's "
			       "header (%llu records, %llu from the delta; "
			       "expected %llu and %llu, or their digest)",
			       (ull)r->st->records, (ull)r->st->from_delta,
			       (ull)r->id->records, (ull)r->id->delta_pages);
	r->st->held = r->tail_len;
	r->state = BEFORE; /* write, no longer hold */
	if (put(r, r->tail, r->tail_len) < 0 || flush_out(r) < 0)
		return -1;
	if (r->absorbing)
		become_state(r, c.digest);
	return 0;
}

static int rebuild(struct rb *r, struct mig_src *layer)
{
	struct mig_src_pull p = { layer, r->e, false };
	struct qs_info info = { 0 };
	char qerr[512];
	int rc = -1;

	r->info = &info;
	if (qs_scan_hooks(mig_src_pull_read, &p, QS_ALLOW_NO_PAGES, &r->hooks,
			  &info, qerr, sizeof qerr) < 0) {
		if (!r->failed && !p.failed)
			mig_err_set(r->e, MIG_EXIT_DATA, "%s", qerr);
	} else {
		rc = finish(r);
	}
	qs_info_free(&info);
	return rc;
}

int qd_decode(struct qd_stream *base, struct mig_src *in, qc_write_fn write,
	      void *ctx, struct qd_stats *st, struct mig_err *e)
{
	struct mig_envelopes env = { 0 };
	struct mig_detect d;
	struct mig_src *src, *layer = NULL;
	void *lst = qd_layer_new(NULL);
	struct rb r = { .base = base, .write = write, .wctx = ctx, .e = e,
			.named = SIZE_MAX, .st = st,
			.absorbing = base->absorbing };
	int rc = -1;

	memset(st, 0, sizeof *st);
	r.hooks = (struct qs_hooks){ .ctx = &r, .bytes = rb_bytes,
				     .page = rb_page, .item = rb_item };
	if (!lst || !(r.buf = malloc(BUF_CAP)) ||
	    !(r.win[0].buf = malloc(BUF_CAP)) ||
	    !(r.win[1].buf = malloc(BUF_CAP)) ||
	    !(r.page = malloc(base->qc.page_size ? base->qc.page_size : 1)) ||
	    !(r.ram = XXH3_createState()) ||
	    !(r.other = XXH3_createState())) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto out;
	}
	XXH3_128bits_reset(r.ram);
	XXH3_128bits_reset(r.other);
	if (!(src = mig_envelopes_peel(in, &env, &d, e)) ||
	    !(layer = mig_src_layer(src, &mig_filter_delta, lst, 1, e)) ||
	    mig_layer_open(layer, e) < 0)
		goto out;
	r.id = qd_layer_ident(lst);
	if (check_base(base, r.id, e) < 0)
		goto out;
	rc = rebuild(&r, layer);
out:
	mig_src_free(layer);
	mig_envelopes_free(&env);
	mig_filter_delta.destroy(lst);
	XXH3_freeState(r.ram);
	XXH3_freeState(r.other);
	free(r.buf);
	free(r.win[0].buf);
	free(r.win[1].buf);
	free(r.page);
	free(r.tail);
	return rc;
}

/* ---- a chain ------------------------------------------------------------------------ */

int qd_chain_absorb(struct qd_stream *state, struct mig_src *in,
		    const char *name, struct mig_err *e)
{
	struct qd_stats st;
	int rc;

	if (state->absorb_fd < 0 &&
	    (state->absorb_fd = qc_temp_file("chain's pages")) < 0)
		return mig_err_set(e, MIG_EXIT_IO, "no temporary file");
	state->absorbing = true;
	rc = qd_decode(state, in, NULL, NULL, &st, e);
	if (rc == 0)
		state->name = name;
	state->absorbing = false;
	return rc;
}

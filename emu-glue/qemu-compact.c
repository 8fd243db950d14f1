/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-compact: each RAM page once, with its final content.  See
 * qemu-compact.h for the layout it writes and why QEMU loads it.
 *
 * An index entry (uint64_t per page of RAM):
 *   0                        never sent
 *   bit 63 set               final record ZERO, fill byte in bits 0-7
 *   bit 62 set               the page was sent more than once
 *   bits 8-61                slot + 1 in the spill file (0: no slot); kept
 *                            when a page becomes ZERO, so that a page sent
 *                            again as data reuses its slot.  With a source
 *                            file (qc_use_source): the page's offset in it + 1
 */
#include "qemu-compact.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENT_ZERO (1ull << 63)
#define ENT_AGAIN (1ull << 62)
#define ENT_SLOT_MASK (~(ENT_ZERO | ENT_AGAIN) & ~0xffull)
#define WBUF_CAP (1u << 20)

/* ram record flags (migration/ram.c) */
#define RF_ZERO 0x002u
#define RF_PAGE 0x008u
#define RF_EOS 0x010u
#define RF_CONTINUE 0x020u
#define RF_XBZRLE 0x040u
#define XBZRLE_ENCODING 0x01

typedef unsigned long long ull;

static int stop(struct qc *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A hook's failure: the reason for the caller, and the scan stops. */
static int stop(struct qc *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
	c->code = code;
	snprintf(c->hooks.hook_err, sizeof c->hooks.hook_err, "%s", c->why);
	return -1;
}

/* ---- the kept bytes -------------------------------------------------------- */

static int raw_flush(struct qc *c)
{
	struct mig_err e = { 0 };
	if (c->wlen && mig_write_all(c->raw_fd, c->wbuf, c->wlen, &e) < 0)
		return stop(c, MIG_EXIT_IO, "temporary file: %s", strerror(errno));
	c->wlen = 0;
	return 0;
}

static int on_bytes(void *ctx, const unsigned char *p, size_t n)
{
	struct qc *c = ctx;
	if (c->drop)
		return 0;       /* a ram PART: header, EOS, footer */
	c->kept_bytes += n;
	if (c->raw_fd < 0)
		return 0;
	while (n) {
		size_t k = WBUF_CAP - c->wlen < n ? WBUF_CAP - c->wlen : n;
		memcpy(c->wbuf + c->wlen, p, k);
		c->wlen += k;
		p += k;
		n -= k;
		if (c->wlen == WBUF_CAP && raw_flush(c))
			return -1;
	}
	return 0;
}

/* ---- items: where the pages go, what is dropped, what is refused ----------- */

static void mark_pages_at(struct qc *c)
{
	if (c->seen_start && c->pages_at == UINT64_MAX)
		c->pages_at = c->kept_bytes;
}

/* What the reader passes here is compactable: it refuses every command
 * but PING and SWITCHOVER_START (postcopy, COLO, a return path, a nested
 * stream) by name, and the commands it passes are kept in place. */
static int on_item(void *ctx, unsigned type, uint64_t at, unsigned cmd)
{
	struct qc *c = ctx;

	(void)at, (void)cmd;
	c->drop = false;
	switch (type) {
	case 0x01: /* START: the parser takes only "ram" */
		c->seen_start = true;
		break;
	case 0x02: /* PART: nothing but pages, EOS and a footer */
		mark_pages_at(c);
		c->drop = true;
		break;
	default: /* a command (PING), END, or device state */
		mark_pages_at(c);
		break;
	}
	return 0;
}

/* ---- pages ------------------------------------------------------------------ */

static int make_index(struct qc *c, const struct qs_info *info)
{
	c->page_size = info->page_size;
	c->nblocks = info->nblocks;
	if (!(c->block_first = calloc(c->nblocks + 1, sizeof *c->block_first)))
		return stop(c, MIG_EXIT_SYS, "out of memory");
	for (size_t i = 0; i < c->nblocks; i++)
		c->block_first[i + 1] = c->block_first[i] +
			(info->blocks[i].size + c->page_size - 1) / c->page_size;
	c->npages = c->block_first[c->nblocks];
	if ((c->ent = calloc(c->npages, sizeof *c->ent)))
		return 0;
	if (c->refuse)
		return stop(c, MIG_EXIT_SYS, "out of memory for the page index "
			    "(%llu pages of RAM, %u bytes each)",
			    (ull)c->npages, QC_INDEX_BYTES_PER_PAGE);
	/* counting only (mig-info): the stream is read all the same */
	c->no_index = true;
	snprintf(c->not_compactable, sizeof c->not_compactable, "no memory "
		 "for the page index (%llu pages of RAM, %u bytes each)",
		 (ull)c->npages, QC_INDEX_BYTES_PER_PAGE);
	return 0;
}

/* A page record that carries no whole page: refused when compacting,
 * noted when counting. */
static int not_whole(struct qc *c, const struct qs_page *pg)
{
	const char *what = pg->kind == QS_PAGE_XBZRLE ?
		"an XBZRLE page record (the xbzrle capability)" :
		"a compressed page record (the compress capability)";
	if (!c->refuse) {
		if (!c->not_compactable[0])
			snprintf(c->not_compactable, sizeof c->not_compactable,
				 "%s at offset %llu", what, (ull)pg->offset);
		return 0;
	}
	return stop(c, MIG_EXIT_DATA, "unsupported: %s at offset %llu: "
		    "compaction needs every page whole; migrate without it",
		    what, (ull)pg->offset);
}

static int spill_write(struct qc *c, const unsigned char *p, size_t n,
		       uint64_t slot)
{
	off_t at = (off_t)(slot * c->page_size);
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(c->spill_fd, p + done, n - done, at + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return stop(c, MIG_EXIT_IO, "temporary file: %s",
				    w < 0 ? strerror(errno) : "short write");
		done += (size_t)w;
	}
	return 0;
}

/* New slots are written in runs: pend holds slots [pend_first, +pend_n). */
static int spill_flush(struct qc *c)
{
	int rc = c->pend_n ?
		spill_write(c, c->pend, c->pend_n * c->page_size, c->pend_first) : 0;
	c->pend_first += c->pend_n;
	c->pend_n = 0;
	return rc;
}

/* The page's data into its slot (a new one on its first data record),
 * or, from a source file, where it lies there. */
static int spill(struct qc *c, uint64_t *e, const struct qs_page *pg)
{
	if (c->source_fd >= 0) {
		uint64_t at = c->source_base + pg->data_offset;
		if (at + 1 > ENT_SLOT_MASK >> 8)
			return stop(c, MIG_EXIT_DATA, "input too large");
		*e = (*e & ENT_AGAIN) | (at + 1) << 8;
		return 0;
	}
	uint64_t slot1 = (*e & ENT_SLOT_MASK) >> 8;
	bool fresh = !slot1;
	if (fresh)
		slot1 = ++c->nslots;
	*e = (*e & ENT_AGAIN) | slot1 << 8;
	if (c->spill_fd < 0)
		return 0;
	uint64_t slot = slot1 - 1;
	if (slot >= c->pend_first && slot < c->pend_first + c->pend_n) {
		memcpy(c->pend + (slot - c->pend_first) * c->page_size, pg->data,
		       c->page_size);           /* sent again before written */
		return 0;
	}
	if (!fresh)                             /* written already: in place */
		return spill_write(c, pg->data, c->page_size, slot);
	/* a new slot is the next after the pending ones (or the first) */
	if (c->pend_n == WBUF_CAP / c->page_size && spill_flush(c))
		return -1;
	c->pend_first = slot - c->pend_n;
	memcpy(c->pend + c->pend_n++ * c->page_size, pg->data, c->page_size);
	return 0;
}

static int on_page(void *ctx, const struct qs_info *info, const struct qs_page *pg)
{
	struct qc *c = ctx;

	if (!c->ent && !c->no_index && make_index(c, info))
		return -1;
	if (c->no_index)
		return 0;
	if (pg->kind == QS_PAGE_XBZRLE || pg->kind == QS_PAGE_COMPRESS)
		return not_whole(c, pg);
	uint64_t *e = &c->ent[c->block_first[pg->block] + pg->addr / c->page_size];
	c->records++;
	if (*e) {
		c->resent++;
		*e |= ENT_AGAIN;
	}
	if (pg->kind == QS_PAGE_ZERO) {
		*e = ENT_ZERO | (*e & (ENT_SLOT_MASK | ENT_AGAIN)) | pg->fill;
		return 0;
	}
	return spill(c, e, pg);
}

/* ---- setup ------------------------------------------------------------------ */

int qc_init(struct qc *c, int spill_fd, int raw_fd)
{
	memset(c, 0, sizeof *c);
	c->spill_fd = spill_fd;
	c->raw_fd = raw_fd;
	c->source_fd = -1;
	c->refuse = raw_fd >= 0;
	c->pages_at = UINT64_MAX;
	c->hooks.ctx = c;
	c->hooks.bytes = on_bytes;
	c->hooks.page = on_page;
	c->hooks.item = on_item;
	if (raw_fd >= 0 && !(c->wbuf = malloc(WBUF_CAP)))
		return -1;
	if (spill_fd >= 0 && !(c->pend = malloc(WBUF_CAP)))
		return -1;
	return 0;
}

void qc_use_source(struct qc *c, int fd, uint64_t base)
{
	c->source_fd = fd;
	c->source_base = base;
}

void qc_free(struct qc *c)
{
	free(c->block_first);
	free(c->ent);
	free(c->wbuf);
	free(c->pend);
	c->block_first = c->ent = NULL;
	c->wbuf = c->pend = NULL;
}

int qc_check(struct qc *c, const struct qs_info *info)
{
	if (info->multifd_flushes && c->refuse)
		return stop(c, MIG_EXIT_DATA, "unsupported: %llu MULTIFD_FLUSH "
			    "records (multifd): the pages went on other "
			    "channels and are not in this stream",
			    (ull)info->multifd_flushes);
	if (info->multifd_flushes && !c->not_compactable[0])
		snprintf(c->not_compactable, sizeof c->not_compactable,
			 "MULTIFD_FLUSH records (multifd)");
	if (c->pages_at == UINT64_MAX || (!c->ent && c->refuse))
		return stop(c, MIG_EXIT_DATA, "the ram section has no pages "
			    "to compact");
	if (c->raw_fd >= 0 && raw_flush(c))
		return -1;
	if (c->spill_fd >= 0 && c->source_fd < 0 && spill_flush(c))
		return -1;
	return 0;
}

int qc_page_ref(const struct qc *c, uint64_t i, uint8_t *fill,
		uint64_t *offset)
{
	uint64_t e = c->ent ? c->ent[i] : 0;

	if (!e)
		return 0;
	if (e & ENT_ZERO) {
		*fill = (uint8_t)(e & 0xff);
		return 1;
	}
	uint64_t loc = ((e & ENT_SLOT_MASK) >> 8) - 1;
	*offset = c->source_fd >= 0 ? loc : loc * c->page_size;
	return 2;
}

void qc_page_set_zero(struct qc *c, uint64_t i)
{
	c->ent[i] = ENT_ZERO | (c->ent[i] & (ENT_SLOT_MASK | ENT_AGAIN));
}

bool qc_input_seekable(int fd, uint64_t *at)
{
	struct stat st;
	off_t o;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (o = lseek(fd, 0, SEEK_CUR)) < 0)
		return false;
	*at = (uint64_t)o;
	return true;
}

int qc_temp_file(const char *what)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		mig_warn("%s: cannot make a temporary file for the %s: %s", dir,
			 what, strerror(errno));
	return fd;
}

uint64_t qc_pages_sent(const struct qc *c)
{
	uint64_t n = 0;
	for (uint64_t i = 0; c->ent && i < c->npages; i++)
		n += c->ent[i] != 0;
	return n;
}

uint64_t qc_pages_sent_again(const struct qc *c)
{
	uint64_t n = 0;
	for (uint64_t i = 0; c->ent && i < c->npages; i++)
		n += (c->ent[i] & ENT_AGAIN) != 0;
	return n;
}

/* ---- output ----------------------------------------------------------------- */

/* Bytes of the pages' PART section: header, records, EOS, footer. */
static uint64_t part_bytes(const struct qc *c, const struct qs_info *info)
{
	uint64_t n = 5 + 8 + (info->section_footers ? 5 : 0);
	for (size_t b = 0; c->ent && b < c->nblocks; b++) {
		bool named = false;
		for (uint64_t i = c->block_first[b]; i < c->block_first[b + 1]; i++) {
			if (!c->ent[i] || (c->keep && !c->keep(c->keep_ctx, i)))
				continue;
			n += 8 + (c->ent[i] & ENT_ZERO ? 1 : c->page_size);
			if (!named)
				n += 1 + strlen(info->blocks[b].id);
			named = true;
		}
	}
	return n;
}

uint64_t qc_output_bytes(const struct qc *c, const struct qs_info *info)
{
	return c->kept_bytes + part_bytes(c, info);
}

struct out {
	qc_write_fn write;
	void *ctx;
	unsigned char *buf;
	size_t len;
	struct mig_err *e;
	/* a window of the file the pages are read from: pages written one
	 * after the other mostly lie one after the other there too */
	unsigned char *win;
	off_t win_at;
	size_t win_len;
	unsigned char *page, *xb; /* c->rewrite's page and its encoding */
};

static int out_flush(struct out *o)
{
	int rc = o->len ? o->write(o->ctx, o->buf, o->len, o->e) : 0;
	o->len = 0;
	return rc;
}

/* Room for n more bytes (n <= WBUF_CAP) at o->buf + o->len. */
static int out_room(struct out *o, size_t n)
{
	return WBUF_CAP - o->len < n ? out_flush(o) : 0;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void out_be64(struct out *o, uint64_t v)
{
	put_be32(o->buf + o->len, (uint32_t)(v >> 32));
	put_be32(o->buf + o->len + 4, (uint32_t)v);
	o->len += 8;
}

/* what: "temporary file", or "input" (a source file, which must not
 * change while we run: then it may end early) */
static int read_at(int fd, void *buf, size_t n, off_t at, const char *what,
		   struct mig_err *e)
{
	ssize_t r = mig_pread_full(fd, buf, n, at);

	if (r == (ssize_t)n)
		return 0;
	return mig_err_set(e, MIG_EXIT_IO, "%s: %s", what, r < 0 ? strerror(errno) :
			   "ends early: it changed while read");
}

/* n bytes of the page file at `at` into dst, through the window. */
static int page_bytes(struct qc *c, struct out *o, void *dst, size_t n, off_t at)
{
	int fd = c->source_fd >= 0 ? c->source_fd : c->spill_fd;
	const char *what = c->source_fd >= 0 ? "input" : "temporary file";

	if (at < o->win_at || at + (off_t)n > o->win_at + (off_t)o->win_len) {
		ssize_t r;
		do
			r = pread(fd, o->win, WBUF_CAP, at);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return mig_err_set(o->e, MIG_EXIT_IO, "%s: %s", what,
					   strerror(errno));
		o->win_at = at;
		o->win_len = (size_t)r;
		if (o->win_len < n)
			return mig_err_set(o->e, MIG_EXIT_IO, "%s: ends early: "
					   "it changed while read", what);
	}
	memcpy(dst, o->win + (at - o->win_at), n);
	return 0;
}

/* Kept bytes [from, to) to the output. */
static int copy_kept(struct qc *c, struct out *o, uint64_t from, uint64_t to)
{
	while (from < to) {
		if (out_room(o, 1))
			return -1;
		size_t k = WBUF_CAP - o->len;
		if (k > to - from)
			k = (size_t)(to - from);
		if (read_at(c->raw_fd, o->buf + o->len, k, (off_t)from,
			    "temporary file", o->e))
			return -1;
		o->len += k;
		from += k;
	}
	return 0;
}

/* Page i's data, from where its entry says it lies, into dst. */
static int page_data(struct qc *c, struct out *o, uint64_t ent, void *dst)
{
	uint64_t loc = ((ent & ENT_SLOT_MASK) >> 8) - 1;
	off_t at = (off_t)(c->source_fd >= 0 ? loc : loc * c->page_size);
	return page_bytes(c, o, dst, c->page_size, at);
}

/* Page i's data as c->rewrite would have it: the length of an XBZRLE
 * encoding of it in o->xb, or 0 to write it whole (then in o->page). */
static long rewritten(struct qc *c, struct out *o, uint64_t i, uint64_t ent)
{
	if (page_data(c, o, ent, o->page))
		return -1;
	return c->rewrite(c->rewrite_ctx, i, o->page, o->xb, c->page_size, o->e);
}

/* Page i's final record (its block b, at addr in it); *named: its block
 * was named already. */
static int put_page(struct qc *c, struct out *o, const struct qs_ramblock *b,
		    uint64_t i, uint64_t addr, bool *named)
{
	uint64_t ent = c->ent[i];
	size_t idlen = strlen(b->id);
	bool zero = ent & ENT_ZERO;
	long xb = !zero && c->rewrite ? rewritten(c, o, i, ent) : 0;

	if (xb < 0)
		return -1;
	uint64_t hdr = addr | (zero ? RF_ZERO : xb ? RF_XBZRLE : RF_PAGE) |
		       (*named ? RF_CONTINUE : 0);
	if (out_room(o, 8 + 1 + idlen + 1))
		return -1;
	out_be64(o, hdr);
	if (!*named) {
		o->buf[o->len++] = (unsigned char)idlen;
		memcpy(o->buf + o->len, b->id, idlen);
		o->len += idlen;
		*named = true;
	}
	if (zero) {
		o->buf[o->len++] = (unsigned char)(ent & 0xff);
		return 0;
	}
	if (xb) {
		if (out_room(o, 3 + (size_t)xb))
			return -1;
		o->buf[o->len++] = XBZRLE_ENCODING;
		o->buf[o->len++] = (unsigned char)(xb >> 8);
		o->buf[o->len++] = (unsigned char)xb;
		memcpy(o->buf + o->len, o->xb, (size_t)xb);
		o->len += (size_t)xb;
		return 0;
	}
	if (out_room(o, c->page_size))
		return -1;
	if (c->rewrite)
		memcpy(o->buf + o->len, o->page, c->page_size);
	else if (page_data(c, o, ent, o->buf + o->len))
		return -1;
	o->len += c->page_size;
	return 0;
}

/* The one PART section: every page sent, in block order. */
static int put_part(struct qc *c, const struct qs_info *info, struct out *o)
{
	if (out_room(o, 5))
		return -1;
	o->buf[o->len++] = 0x02;
	put_be32(o->buf + o->len, info->ram_section_id);
	o->len += 4;
	for (size_t b = 0; b < c->nblocks; b++) {
		bool named = false;
		for (uint64_t i = c->block_first[b]; i < c->block_first[b + 1]; i++)
			if (c->ent[i] && (!c->keep || c->keep(c->keep_ctx, i)) &&
			    put_page(c, o, &info->blocks[b], i,
				     (i - c->block_first[b]) * c->page_size,
				     &named))
				return -1;
	}
	if (out_room(o, 8 + 5))
		return -1;
	out_be64(o, RF_EOS);
	if (info->section_footers) {
		o->buf[o->len++] = 0x7e;
		put_be32(o->buf + o->len, info->ram_section_id);
		o->len += 4;
	}
	return 0;
}

static int write_fd(void *ctx, const void *p, size_t n, struct mig_err *e)
{
	return mig_write_all(*(int *)ctx, p, n, e);
}

int qc_write(struct qc *c, const struct qs_info *info, int fd, struct mig_err *e)
{
	return qc_write_to(c, info, write_fd, &fd, e);
}

int qc_write_to(struct qc *c, const struct qs_info *info, qc_write_fn write,
		void *ctx, struct mig_err *e)
{
	struct out o = { .write = write, .ctx = ctx, .e = e };
	int rc = -1;

	if (c->page_size > WBUF_CAP / 2)
		return mig_err_set(e, MIG_EXIT_DATA, "page size %llu too large",
				   (ull)c->page_size);
	if (!(o.buf = malloc(WBUF_CAP)) || !(o.win = malloc(WBUF_CAP)) ||
	    (c->rewrite && (!(o.page = malloc(c->page_size)) ||
			    !(o.xb = malloc(c->page_size))))) {
		rc = mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto out;
	}
	if (!copy_kept(c, &o, 0, c->pages_at) && !put_part(c, info, &o) &&
	    !copy_kept(c, &o, c->pages_at, c->kept_bytes))
		rc = out_flush(&o);
out:
	free(o.buf);
	free(o.win);
	free(o.page);
	free(o.xb);
	return rc;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-compact: rebuild a QEMU migration stream (savevm format 3,
 * precopy, QEMU 7.2 to 10.x: mig-compact(1), "QEMU versions") so that
 * each RAM page appears once, with its final content.  It runs as the hooks of qs_scan_hooks (qemu-stream.h):
 *
 *   - a page index: for every page of every RAM block (from the ram
 *     setup's block list) 8 bytes saying where its final content is:
 *     never sent, a ZERO record with its fill byte, or a slot of the
 *     spill file holding the page.  A page sent again reuses its slot,
 *     so the spill file never holds more than the RAM's size.
 *   - the stream's other bytes (header, configuration, commands, the
 *     ram START with its block list, the ram END without its pages,
 *     device state, EOF, VMDESCRIPTION), appended to a second file;
 *     the ram PART sections, which hold nothing but pages, EOS and a
 *     footer, are dropped.
 *
 * Once the whole input is read and verified, qc_write writes the kept
 * bytes up to the first item after the ram START, then ONE ram PART
 * section with every page sent, in block order, with its final record,
 * then the rest of the kept bytes.  QEMU loads PART sections of any size;
 * the first record names its block, later records of the same block
 * carry CONTINUE.
 *
 * Without files (count-only mode, for mig-info) the same hooks give the
 * re-sent page count and the exact size of the compacted stream.
 */
#ifndef MIGKIT_QEMU_COMPACT_H
#define MIGKIT_QEMU_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mig.h"
#include "qemu-stream.h"

/* Bytes of index per page of guest RAM (the memory bound, mig-compact(1)). */
#define QC_INDEX_BYTES_PER_PAGE 8u

struct qc {
	int spill_fd;          /* page slots; -1: count only, or source_fd */
	int raw_fd;            /* the kept bytes; -1: count only */
	int source_fd;         /* >= 0: the input itself, a regular file */
	uint64_t source_base;  /* its offset where the stream starts */

	/* the index, made at the first page record */
	uint64_t page_size;
	size_t nblocks;
	uint64_t *block_first; /* [nblocks + 1]: first entry of each block */
	uint64_t *ent;         /* one per page, see qemu-compact.c */
	uint64_t npages;       /* pages of RAM (the index's length) */
	uint64_t nslots;       /* slots of the spill file in use */

	/* what was read */
	uint64_t records;      /* page records */
	uint64_t resent;       /* records for a page already sent */
	uint64_t kept_bytes;   /* bytes kept as they are */
	uint64_t pages_at;     /* kept-bytes offset of the pages' PART */
	bool seen_start, drop;

	/* why the scan was stopped, if a hook stopped it */
	int code;              /* MIG_EXIT_* */
	char why[240];
	bool refuse;           /* refuse what cannot be compacted (not count-only) */
	bool no_index;         /* count-only: the index did not fit in memory */
	char not_compactable[160]; /* count-only: the first reason found */

	unsigned char *wbuf;   /* raw_fd's write buffer */
	size_t wlen;
	unsigned char *pend;   /* new spill slots not yet written */
	uint64_t pend_first, pend_n;
	struct qs_hooks hooks;

	/* qc_write: only the pages keep(keep_ctx, page) says (NULL: all);
	 * page is the index's entry number (qc_page_ref) */
	bool (*keep)(void *ctx, uint64_t page);
	void *keep_ctx;
	/* qc_write: a data page written as an XBZRLE record instead
	 * (xbzrle.h) where rewrite(rewrite_ctx, page, data, out, cap, e)
	 * puts an encoding of data in out (at most cap, the page size) and
	 * gives its length; 0 writes the page whole, -1 fails with e set */
	long (*rewrite)(void *ctx, uint64_t page, const unsigned char *data,
			unsigned char *out, size_t cap, struct mig_err *e);
	void *rewrite_ctx;
};

/* spill_fd and raw_fd both >= 0 (compaction), or both -1 (count only).
 * 0, or -1 out of memory; call qc_free either way. */
int qc_init(struct qc *c, int spill_fd, int raw_fd);
void qc_free(struct qc *c);

/*
 * The input is a regular file read from offset base on, which stays as it
 * is until qc_write: the index then holds each page's offset in it, and
 * qc_write reads the pages from there; no spill file is needed.
 */
void qc_use_source(struct qc *c, int fd, uint64_t base);

/* After a successful scan: what the hooks could not see (multifd).
 * 0, or -1 with c->code and c->why set. */
int qc_check(struct qc *c, const struct qs_info *info);

/* The exact length of the compacted stream. */
uint64_t qc_output_bytes(const struct qc *c, const struct qs_info *info);

/* Pages of RAM sent at least once (the records of the compacted PART). */
uint64_t qc_pages_sent(const struct qc *c);
/* Pages sent more than once (c->resent counts the records that re-sent). */
uint64_t qc_pages_sent_again(const struct qc *c);

/* Page i of the index (0 to npages - 1, block by block): 0 never sent;
 * 1 a ZERO record (*fill); 2 data, at *offset of the page file (the
 * source file with qc_use_source). */
int qc_page_ref(const struct qc *c, uint64_t i, uint8_t *fill,
		uint64_t *offset);
/* Make page i a ZERO record with fill 0 (a page that must be written as
 * such: a fresh destination's RAM is zero, so it loads as not sent). */
void qc_page_set_zero(struct qc *c, uint64_t i);

/* fd is a regular file to read the pages again from (qc_use_source):
 * true, with *at its offset now (stdin may come positioned). */
bool qc_input_seekable(int fd, uint64_t *at);

/* An unnamed temporary file in $TMPDIR (default /tmp), gone when closed;
 * -1 after a message naming what it was for. */
int qc_temp_file(const char *what);

/* Write the compacted stream to fd.  0, or -1 with e set. */
int qc_write(struct qc *c, const struct qs_info *info, int fd, struct mig_err *e);

/* The same through write(ctx, p, n, e): 0, or -1 with e set. */
typedef int (*qc_write_fn)(void *ctx, const void *p, size_t n, struct mig_err *e);
int qc_write_to(struct qc *c, const struct qs_info *info, qc_write_fn write,
		void *ctx, struct mig_err *e);

#endif /* MIGKIT_QEMU_COMPACT_H */

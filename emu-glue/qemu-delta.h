/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-delta: a checkpoint as the pages that differ from a base checkpoint
 * (mig-delta(1), the delta layer of mig-stream(5)).
 *
 * The base and the new stream are read by the stream reader with the
 * compactor's hooks (qemu-compact.h), which index each page's final
 * record; on top of them every page gets a key: XXH3-128 of its content
 * (of its fill byte, seeded apart, for a ZERO record).  A page is carried
 * in the delta where its key differs from the base's.
 *
 * The delta is a mig layer of kind 5: tagged frames as the checksum layer
 * (XXH3-64 per frame bound to its place, XXH3-128 of the inner bytes in
 * END), whose parameters bind the base (the digest of its state, the
 * length of its compacted stream, a digest of its RAM block layout) and
 * the rebuilt stream (its page records and a digest of them).  Its inner
 * bytes are the new stream compacted (each page once), keeping only the
 * pages that differ.
 *
 * A state's digest is made of digests that exist without reading a page
 * again (qd_state_digest): its layout's, its page records' (each page's
 * number and key), and that of its bytes outside the ram PART sections.
 * So a chain's state (a base and deltas) is known from the base's keys,
 * the keys of the pages its deltas carried and the last delta's bytes:
 * the base's pages are read once, for the output.
 *
 * Rebuilding (qd_decode) merges the base's pages into that stream's one ram
 * PART as it passes, each base page checked against its key; everything
 * after the pages (the ram END, device state, EOF) is held back until the
 * layer's END and the rebuilt pages' digest are verified, so a cut or
 * altered delta never gives a stream QEMU completes loading.
 */
#ifndef MIGKIT_QEMU_DELTA_H
#define MIGKIT_QEMU_DELTA_H

#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>

#include "delta-layer.h"
#include "mig.h"
#include "qemu-compact.h"
#include "qemu-stream.h"

/* Memory per page of guest RAM: an index entry and a key, for the base
 * and (encoding) for the new stream. */
#define QD_BYTES_PER_PAGE (QC_INDEX_BYTES_PER_PAGE + QD_DIGEST)
/* What follows the pages (ram END, device state, EOF, VMDESCRIPTION) is
 * held in memory until verified: at most this much. */
#define QD_TAIL_MAX (64u << 20)

/* A page's key: XXH3-128 of its data, or of its fill byte (seed "ZERO"). */
XXH128_hash_t qd_page_key(unsigned kind, uint8_t fill, const void *data,
			  size_t page_size);
/* XXH3-128 of a RAM block layout: le64 page size, then per block u8 id
 * length, id, le64 size. */
void qd_layout_digest(const struct qs_info *info, uint8_t out[QD_DIGEST]);
/* One page record into the digest of the rebuilt records: le64 page
 * number in the index, then the key in canonical (big-endian) form. */
void qd_digest_record(XXH3_state_t *s, uint64_t page, XXH128_hash_t key);
/* A state's digest: XXH3-128 of its layout's digest, its page records'
 * digest (qd_digest_record over its records in page order) and the
 * digest of its bytes outside the ram PART sections, 48 bytes. */
void qd_state_digest(const uint8_t layout[QD_DIGEST],
		     const uint8_t pages[QD_DIGEST],
		     const uint8_t other[QD_DIGEST], uint8_t out[QD_DIGEST]);

/* A stream read with page keys: the base, or the new stream. */
struct qd_stream {
	const char *name;         /* a chain's state: its last delta's */
	const char *file;         /* the base file's (or the new stream's) */
	int fd;                   /* the base file (-1 for the new stream) */
	int page_fd;              /* where its pages are read again: fd, or
	                             a temporary file (a base in envelopes) */
	struct qc qc;             /* each page's final record */
	struct qs_info info;
	XXH128_hash_t *key;       /* one per page of the index */
	uint8_t digest[QD_DIGEST];/* of its state (qd_state_digest) */
	uint64_t bytes;           /* of its compacted stream */
	uint8_t layout[QD_DIGEST];
	XXH3_state_t *other;      /* while read: the bytes outside the ram
	                             PART sections (qc's kept bytes) */
	struct qs_hooks hooks;    /* qc's, with the keys added */

	/* a chain's state (qd_chain_absorb): the records its deltas carried,
	 * over the base's: per page 0 (the base's), QD_OVER_ZERO | fill, or
	 * 1 + the offset of the page in absorb_fd */
	uint64_t *over;
	int absorb_fd;            /* -1: none yet */
	uint64_t absorb_at;
	bool absorbing;
};
#define QD_OVER_ZERO (1ull << 63)

/* The base: a regular file holding a raw QEMU stream (maybe compacted),
 * or one in envelopes (a checkpoint of mig-qemu: its pages are then
 * spilled to a temporary file), read once whole, its pages to be read
 * again by offset. 0, or -1 with e
 * set (the message names path). Call qd_stream_free either way. */
int qd_base_open(struct qd_stream *b, const char *path, struct mig_err *e);
/* The same from an open descriptor (fuzzing), not closed by qd_stream_free. */
int qd_base_open_fd(struct qd_stream *b, int fd, const char *name,
		    struct mig_err *e);

/* The new stream, read from src through a compactor qc already made
 * (spill and kept-bytes files, or qc_use_source): s->qc must be set up by
 * qd_stream_init_new. A stream in envelopes is taken out of them (their
 * END verified; their META is not kept): qc must then spill.
 * 0 or -1 with e set. */
void qd_stream_init_new(struct qd_stream *s, const char *name);
int qd_stream_scan_new(struct qd_stream *s, struct mig_src *src,
		       struct mig_err *e);
void qd_stream_free(struct qd_stream *s);

/* Where a state's final record of page i is: 0 never sent, 1 ZERO
 * (*fill), 2 data at *off of s->page_fd, or (*absorbed) of s->absorb_fd,
 * the pages a chain's deltas carried. */
int qd_page_where(const struct qd_stream *s, uint64_t i, uint8_t *fill,
		  uint64_t *off, bool *absorbed);

/* Encoding: compare the new stream's pages with the base's, choose the
 * pages to carry (s->qc.keep) and fill id. 0, or -1 with e set (a layout
 * that differs from the base's). */
struct qd_plan {
	uint8_t *changed;         /* bitmap over the index */
	struct qd_stream *base, *now;
	unsigned char *old;       /* a base page, to encode against */
	uint64_t xbzrle;          /* pages carried as XBZRLE records */
};
int qd_plan(struct qd_plan *p, struct qd_stream *base, struct qd_stream *now,
	    struct qd_ident *id, struct mig_err *e);
void qd_plan_free(struct qd_plan *p);

/* Write the planned delta layer to fd. 0, or -1 with e set. */
int qd_encode(struct qd_plan *p, const struct qd_ident *id, int fd,
	      struct mig_err *e);

/* A chain: base, then deltas, each made against the state before it.
 * Take the state after the delta read from in, without writing it and
 * without reading the base's pages: the pages the delta carried go to a
 * temporary file and stand in for the base's (their keys for the base's
 * keys), and the state's digest and length (which bind the next delta)
 * are made from the keys and the delta's other bytes. Every check of
 * qd_decode on the delta is made; the base's pages are checked against
 * their keys when the last delta is decoded. name: the delta's, for the
 * message of a next delta that does not belong. 0, or -1 with e set. */
int qd_chain_absorb(struct qd_stream *state, struct mig_src *in,
		    const char *name, struct mig_err *e);

/* Rebuilding: what was done, for -v. */
struct qd_stats {
	uint64_t records, from_delta, xbzrle, bytes_out, held;
};
/* Read a delta layer (maybe in envelopes) from in and write the rebuilt
 * raw QEMU stream through write(ctx, ...) (none while base->absorbing:
 * qd_chain_absorb): see the top of this file for what is written before
 * the end is verified. 0, or -1 with e set; its
 * message names what is wrong, not the input (the caller does). */
int qd_decode(struct qd_stream *base, struct mig_src *in, qc_write_fn write,
	      void *ctx, struct qd_stats *st, struct mig_err *e);

#endif /* MIGKIT_QEMU_DELTA_H */

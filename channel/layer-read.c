/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * layer-read.c - peeling one layer.
 *
 * The layer source hands out a frame's inner bytes only after the filter
 * has verified that frame, so whatever reaches the output is a prefix of
 * what the encoder was given, even when the stream turns out to be bad.
 *
 * Frames are read into a ring of slots in order; with a filter that has
 * frame contexts and threads > 1, several are decoded at once on worker
 * threads. They are handed out in order, and an error found while reading
 * ahead is reported only after every frame before it has been handed out.
 */
#include <stdlib.h>
#include <string.h>

#include "header.h"
#include "pool.h"
#include "source-private.h"

struct rslot {
	struct mig_job job; /* first: the job is the slot */
	const struct mig_filter *f;
	void *ctx;
	struct mig_frame fr;
	uint64_t at; /* offset of the frame in the layer's input */
	uint8_t *payload;
	size_t cap;
	const uint8_t *plain;
	size_t plen;
	int rc;
	struct mig_err err;
};

struct layer_src {
	struct mig_src base;
	struct mig_src *in;
	const struct mig_filter *f;
	void *st;
	bool opened, done;
	uint8_t params[MIG_PARAMS_MAX];
	size_t params_len;
	struct mig_pool *pool;
	struct rslot *slots;
	size_t nslots;
	uint64_t read, consumed; /* frames read into slots, and handed on */
	bool read_stop;          /* END read, or reading failed */
	bool read_failed;
	struct mig_err read_err; /* reported once the frames before are out */
	struct mig_layer_totals t;
	uint64_t start; /* offset of the header in `in` */
	struct mig_meta *meta;
	size_t nmeta, meta_bytes;
};

int mig_layer_open(struct mig_src *s, struct mig_err *e)
{
	struct layer_src *l = (struct layer_src *)s;

	if (l->opened)
		return 0;
	l->start = mig_src_offset(l->in);
	if (mig_header_read(l->in, l->f->kind, NULL, l->params, &l->params_len,
			    e) < 0)
		return -1;
	if (l->f->decode_init(l->st, l->params, l->params_len, e) < 0)
		return mig_err_prefix(e, "layer header: ");
	/* frames that depend on the ones before: one at a time */
	if (l->pool && l->f->max_threads && l->f->max_threads(l->st) == 1) {
		mig_pool_free(l->pool);
		l->pool = NULL;
		l->nslots = 1;
	}
	/* contexts are made from st once it knows the layer's parameters */
	for (size_t i = 0; l->f->frame_ctx_create && i < l->nslots; i++)
		if (!(l->slots[i].ctx = l->f->frame_ctx_create(l->st, e)))
			return -1;
	l->opened = true;
	return 0;
}

static int keep_meta(struct layer_src *l, const uint8_t *p, size_t n,
		     struct mig_err *e)
{
	struct mig_meta m, *grown;

	if (l->meta_bytes + n > MIG_META_TOTAL_MAX)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "META frames exceed %u bytes in all",
				   MIG_META_TOTAL_MAX);
	if (mig_meta_parse(p, n, &m, e) < 0)
		return -1;
	grown = realloc(l->meta, (l->nmeta + 1) * sizeof *grown);
	if (!grown) {
		mig_meta_clear(&m);
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	}
	l->meta = grown;
	l->meta[l->nmeta++] = m;
	l->meta_bytes += n;
	return 0;
}

static int check_end(struct layer_src *l, const uint8_t *p, size_t n,
		     struct mig_err *e)
{
	if (n < MIG_END_TOTALS)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "END frame too short for its totals");
	uint64_t bytes = mig_get_le64(p), frames = mig_get_le64(p + 8);
	if (frames != l->t.frames)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "END says %llu frames, the layer has %llu",
				   (unsigned long long)frames,
				   (unsigned long long)l->t.frames);
	if (bytes != l->t.bytes)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "END says %llu bytes, the layer carried %llu",
				   (unsigned long long)bytes,
				   (unsigned long long)l->t.bytes);
	if (!l->f->decode_trailer) /* a kind without a trailer */
		return n == MIG_END_TOTALS ? 0
		       : mig_err_set(e, MIG_EXIT_DATA, "unexpected trailer of "
				     "%zu bytes in END", n - MIG_END_TOTALS);
	return l->f->decode_trailer(l->st, p + MIG_END_TOTALS,
				    n - MIG_END_TOTALS, e);
}

/* Read the next frame into s and check its framing; 0 or -1. */
static int read_frame(struct layer_src *l, struct rslot *s, struct mig_err *e)
{
	uint32_t len;

	s->at = mig_src_offset(l->in);
	if (mig_frame_header_read(l->in, l->read, &s->fr, &len, e) < 0)
		return -1;
	if (mig_frame_flags_check(&s->fr, l->f->frame_flags, l->f->kind, s->at,
				  e) < 0)
		return -1;
	if (len > s->cap) {
		uint8_t *p = realloc(s->payload, len);
		if (!p)
			return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		s->payload = p;
		s->cap = len;
	}
	long n = mig_src_read(l->in, s->payload, len, e);
	if (n < 0)
		return -1;
	if ((size_t)n < len)
		return mig_err_frame_truncated(e, l->read, s->at);
	s->fr.data = s->payload;
	s->fr.len = len;
	l->read++;
	return 0;
}

static void decode_job(struct mig_job *j)
{
	struct rslot *s = (struct rslot *)j;

	s->rc = s->f->decode(s->ctx, &s->fr, &s->plain, &s->plen, &s->err);
}

/* Read ahead while there is a free slot and input to read without
 * waiting; wait for input only when nothing is in flight. */
static void read_ahead(struct layer_src *l)
{
	while (!l->read_stop && l->read - l->consumed < l->nslots &&
	       (l->read == l->consumed || mig_src_ready(l->in))) {
		struct rslot *s = &l->slots[l->read % l->nslots];
		if (read_frame(l, s, &l->read_err) < 0) {
			l->read_stop = l->read_failed = true;
			break;
		}
		if (s->fr.type == MIG_FRAME_END)
			l->read_stop = true;
		mig_pool_submit(l->pool, &s->job, decode_job);
	}
}

/* Hand out the next frame that carries inner bytes. */
static int layer_next(struct mig_src *src, const uint8_t **out,
		      size_t *outlen, struct mig_err *e)
{
	struct layer_src *l = (struct layer_src *)src;

	if (mig_layer_open(src, e) < 0)
		return -1;
	if (l->done)
		return 0;
	for (;;) {
		read_ahead(l);
		if (l->read == l->consumed) {
			/* nothing in flight: reading must have failed */
			*e = l->read_err;
			return -1;
		}
		struct rslot *s = &l->slots[l->consumed % l->nslots];
		mig_pool_wait(l->pool, &s->job);
		l->consumed++;
		if (s->rc < 0) {
			*e = s->err;
			goto context;
		}
		switch (s->fr.type) {
		case MIG_FRAME_DATA:
			if (s->plen > MIG_FRAME_DATA_MAX) {
				mig_err_set(e, MIG_EXIT_DATA,
					    "frame decodes to more than %u bytes",
					    MIG_FRAME_DATA_MAX);
				goto context;
			}
			l->t.frames++;
			l->t.data_frames++;
			l->t.bytes += s->plen;
			if (s->plen == 0)
				continue;
			*out = s->plain;
			*outlen = s->plen;
			return 1;
		case MIG_FRAME_META:
			if (keep_meta(l, s->plain, s->plen, e) < 0)
				goto context;
			l->t.frames++;
			continue;
		default: /* END: read_ahead stopped after it */
			if (check_end(l, s->plain, s->plen, e) < 0)
				goto context;
			if (mig_expect_end(l->in, e) < 0)
				return -1;
			l->done = true;
			return 0;
		}
context:
		return mig_err_prefix(e, "frame %llu (offset %llu): ",
				      (unsigned long long)s->fr.index,
				      (unsigned long long)s->at);
	}
}

static bool layer_ready(struct mig_src *src)
{
	struct layer_src *l = (struct layer_src *)src;

	return l->done || mig_src_ready(l->in);
}

static void layer_free(struct mig_src *src)
{
	struct layer_src *l = (struct layer_src *)src;

	mig_pool_free(l->pool); /* finishes jobs still running */
	for (size_t i = 0; l->slots && i < l->nslots; i++) {
		if (l->f->frame_ctx_create && l->slots[i].ctx)
			l->f->frame_ctx_destroy(l->slots[i].ctx);
		free(l->slots[i].payload);
	}
	free(l->slots);
	for (size_t i = 0; i < l->nmeta; i++)
		mig_meta_clear(&l->meta[i]);
	free(l->meta);
	free(l);
}

static const struct mig_src_ops layer_ops = {
	.next = layer_next,
	.ready = layer_ready,
	.free = layer_free,
};

int mig_layer_threads(int threads, uint64_t memory)
{
	uint64_t frames = memory / MIG_FRAME_MEMORY;

	if (threads > 1 && (uint64_t)threads * 2 > frames)
		threads = frames >= 4 ? (int)(frames / 2) : 1;
	return threads < 1 ? 1 : threads;
}

struct mig_src *mig_src_layer(struct mig_src *inner, const struct mig_filter *f,
			      void *st, int threads, struct mig_err *e)
{
	return mig_src_layer_bounded(inner, f, st, threads, MIG_MEMORY_DEFAULT,
				     e);
}

struct mig_src *mig_src_layer_bounded(struct mig_src *inner,
				      const struct mig_filter *f, void *st,
				      int threads, uint64_t memory,
				      struct mig_err *e)
{
	struct layer_src *l;

	if (mig_filter_check(f, e) < 0)
		return NULL;
	if (!(l = calloc(1, sizeof *l))) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		return NULL;
	}
	mig_src_init(&l->base, &layer_ops, mig_src_name(inner));
	l->in = inner;
	l->f = f;
	l->st = st;
	threads = mig_layer_threads(threads, memory);
	if (f->frame_ctx_create && threads > 1)
		l->pool = mig_pool_new(threads);
	l->nslots = l->pool ? 2 * (size_t)threads : 1;
	if (!(l->slots = calloc(l->nslots, sizeof *l->slots))) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < l->nslots; i++) {
		l->slots[i].f = f;
		l->slots[i].ctx = f->frame_ctx_create ? NULL : st;
	}
	return &l->base;
fail:
	layer_free(&l->base);
	return NULL;
}

const uint8_t *mig_layer_params(const struct mig_src *s, size_t *len)
{
	const struct layer_src *l = (const struct layer_src *)s;

	*len = l->params_len;
	return l->params;
}

size_t mig_layer_meta_count(const struct mig_src *s)
{
	return ((const struct layer_src *)s)->nmeta;
}

const struct mig_meta *mig_layer_meta(const struct mig_src *s, size_t i)
{
	return &((const struct layer_src *)s)->meta[i];
}

void mig_layer_totals(const struct mig_src *s, struct mig_layer_totals *t)
{
	const struct layer_src *l = (const struct layer_src *)s;

	*t = l->t;
	t->encoded = l->opened ? mig_src_offset(l->in) - l->start : 0;
}

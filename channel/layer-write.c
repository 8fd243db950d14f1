/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * layer-write.c - writing one layer: header, frames, END.
 *
 * DATA frames go through a ring of slots: the caller fills a slot's
 * buffer, the filter encodes it (on a worker thread when the filter has
 * frame contexts and threads > 1), and slots are written strictly in the
 * order they were filled. Memory is the ring: slots x frame size.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "header.h"
#include "pool.h"

struct slot {
	struct mig_job job; /* first: the job is the slot */
	const struct mig_filter *f;
	void *ctx;
	uint8_t *buf;
	struct mig_frame in;
	size_t tailroom;
	const uint8_t *out;
	size_t outlen;
	uint8_t flags;
	int rc;
	struct mig_err err;
};

struct mig_sink {
	int fd;
	const struct mig_filter *f;
	void *st;
	size_t frame_size;
	uint64_t index;
	struct mig_layer_totals t;
	uint8_t *scratch; /* META and END frames are built here */
	size_t scratch_cap;
	struct mig_pool *pool;
	struct slot *slots;
	size_t nslots;
	uint64_t filled, written; /* slots handed to the filter, and written */
	double output_wait; /* seconds spent writing frames: the back-pressure */
	struct mig_rate *rate; /* --rate, NULL: none */
	uint8_t *part;      /* mig_sink_write's frame being filled, NULL: none */
	size_t part_len;
};

static void encode_job(struct mig_job *j)
{
	struct slot *s = (struct slot *)j;

	s->flags = 0;
	s->rc = s->f->encode(s->ctx, &s->in, s->tailroom, &s->out, &s->outlen,
			     &s->flags, &s->err);
}

static int write_frame(struct mig_sink *k, struct slot *s, struct mig_err *e)
{
	uint8_t h[MIG_FRAME_HEADER];

	if (s->rc < 0) {
		*e = s->err;
		return mig_err_prefix(e, "frame %llu: ",
				      (unsigned long long)s->in.index);
	}
	if (s->outlen > MIG_FRAME_PAYLOAD_MAX)
		return mig_err_set(e, MIG_EXIT_SYS,
				   "frame %llu: filter made %zu bytes, over the "
				   "limit of %u", (unsigned long long)s->in.index,
				   s->outlen, MIG_FRAME_PAYLOAD_MAX);
	h[0] = s->in.type;
	h[1] = s->flags;
	mig_put_le16(h + 2, 0);
	mig_put_le32(h + 4, (uint32_t)s->outlen);
	double t0 = mig_now();
	/* waiting for --rate's tokens counts as back-pressure too: the
	 * output is that slow */
	if (mig_rate_writev(k->rate, k->fd, h, sizeof h, s->out, s->outlen, e) < 0)
		return -1;
	k->output_wait += mig_now() - t0;
	k->t.encoded += sizeof h + s->outlen;
	return 0;
}

/* Write the oldest slot, waiting for it if it is still being encoded. */
static int write_oldest(struct mig_sink *k, struct mig_err *e)
{
	struct slot *s = &k->slots[k->written % k->nslots];

	mig_pool_wait(k->pool, &s->job);
	k->written++;
	return write_frame(k, s, e);
}

/* The frame mig_sink_write was filling, if any, handed over as it is. */
static int hand_over_part(struct mig_sink *k, struct mig_err *e)
{
	size_t len = k->part_len;

	k->part = NULL;
	k->part_len = 0;
	return len ? mig_sink_data(k, len, e) : 0;
}

static int flush(struct mig_sink *k, struct mig_err *e)
{
	if (hand_over_part(k, e) < 0)
		return -1;
	while (k->written < k->filled)
		if (write_oldest(k, e) < 0)
			return -1;
	return 0;
}

/* META and END: encoded here, in order, after every DATA frame before. */
static int emit_now(struct mig_sink *k, uint8_t type, uint8_t *buf, size_t len,
		    size_t tailroom, struct mig_err *e)
{
	struct slot *s;

	if (flush(k, e) < 0)
		return -1;
	s = &k->slots[k->filled % k->nslots];
	s->in = (struct mig_frame){
		.type = type, .index = k->index++, .data = buf, .len = len,
	};
	s->tailroom = tailroom;
	encode_job(&s->job);
	return write_frame(k, s, e);
}

struct mig_sink *mig_sink_open(int fd, const struct mig_filter *f, void *st,
			       size_t frame_size, int threads,
			       struct mig_err *e)
{
	uint8_t params[MIG_PARAMS_MAX], h[MIG_HEADER_MAX];
	size_t plen = sizeof params, hlen;
	struct mig_sink *k = calloc(1, sizeof *k);

	if (mig_filter_check(f, e) < 0) {
		free(k);
		return NULL;
	}
	if (!k) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		return NULL;
	}
	k->fd = fd;
	k->f = f;
	k->st = st;
	/* the parameters first: they may choose the frame size, and say how
	 * many frames go at once */
	struct stat out;
	struct mig_encode_args a = {
		.frame_size = frame_size      ? frame_size
			      : f->frame_size ? f->frame_size
					      : MIG_FRAME_DATA_DEFAULT,
		.frame_size_given = frame_size != 0, .threads = threads,
		.output_is_file = fstat(fd, &out) == 0 && S_ISREG(out.st_mode),
		.output_wait = &k->output_wait,
	};
	if (f->encode_init(st, &a, params, &plen, e) < 0)
		goto fail;
	k->frame_size = a.frame_size;
	if (k->frame_size == 0 || k->frame_size > MIG_FRAME_DATA_MAX) {
		mig_err_set(e, MIG_EXIT_USAGE, "frame size not from 1 to %u bytes",
			    MIG_FRAME_DATA_MAX);
		goto fail;
	}
	if (f->max_threads && f->max_threads(st) > 0 && threads > f->max_threads(st))
		threads = f->max_threads(st);
	if (f->frame_ctx_create && threads > 1)
		k->pool = mig_pool_new(threads);
	/* two slots a thread: one being encoded, one being filled or written */
	k->nslots = k->pool ? 2 * (size_t)threads : 1;
	k->scratch_cap = MIG_META_KEY_MAX + 1 + MIG_META_VALUE_MAX +
			 f->max_overhead;
	if (!(k->slots = calloc(k->nslots, sizeof *k->slots)) ||
	    !(k->scratch = malloc(k->scratch_cap))) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < k->nslots; i++) {
		struct slot *s = &k->slots[i];
		s->f = f;
		s->ctx = st;
		if (f->frame_ctx_create && !(s->ctx = f->frame_ctx_create(st, e)))
			goto fail;
		if (!(s->buf = malloc(k->frame_size + f->max_overhead))) {
			mig_err_set(e, MIG_EXIT_SYS, "out of memory");
			goto fail;
		}
	}
	hlen = mig_header_build(h, f->kind, params, plen);
	if (mig_write_all(fd, h, hlen, e) < 0)
		goto fail;
	k->t.encoded = hlen;
	return k;
fail:
	mig_sink_free(k);
	return NULL;
}

int mig_sink_meta(struct mig_sink *k, const char *key, const char *value,
		  struct mig_err *e)
{
	size_t kl = strlen(key), vl = strlen(value);
	struct mig_meta m;

	if (kl > MIG_META_KEY_MAX || vl > MIG_META_VALUE_MAX)
		return mig_err_set(e, MIG_EXIT_USAGE, "META %s is too long",
				   kl > MIG_META_KEY_MAX ? "key" : "value");
	memcpy(k->scratch, key, kl);
	k->scratch[kl] = '=';
	memcpy(k->scratch + kl + 1, value, vl);
	/* refuse here what a decoder would refuse */
	if (mig_meta_parse(k->scratch, kl + 1 + vl, &m, e) < 0) {
		e->code = MIG_EXIT_USAGE;
		return -1;
	}
	mig_meta_clear(&m);
	if (emit_now(k, MIG_FRAME_META, k->scratch, kl + 1 + vl,
		     k->scratch_cap - (kl + 1 + vl), e) < 0)
		return -1;
	k->t.frames++;
	return 0;
}

int mig_sink_meta_line(struct mig_sink *k, const char *kv, struct mig_err *e)
{
	const char *eq = strchr(kv, '=');
	char key[MIG_META_KEY_MAX + 1];

	if (!eq)
		return mig_err_set(e, MIG_EXIT_USAGE, "'%s' is not KEY=VALUE", kv);
	if ((size_t)(eq - kv) > MIG_META_KEY_MAX)
		return mig_err_set(e, MIG_EXIT_USAGE, "META key is too long");
	snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
	return mig_sink_meta(k, key, eq + 1, e);
}

uint8_t *mig_sink_buffer(struct mig_sink *k, struct mig_err *e)
{
	if (hand_over_part(k, e) < 0) /* bytes written before go first */
		return NULL;
	/* the slot to fill last held frame filled - nslots: write up to it */
	while (k->filled - k->written >= k->nslots)
		if (write_oldest(k, e) < 0)
			return NULL;
	return k->slots[k->filled % k->nslots].buf;
}

int mig_sink_data(struct mig_sink *k, size_t len, struct mig_err *e)
{
	struct slot *s = &k->slots[k->filled % k->nslots];

	if (len > k->frame_size)
		return mig_err_set(e, MIG_EXIT_SYS, "frame of %zu bytes is "
				   "over the frame size of %zu", len,
				   k->frame_size);
	s->in = (struct mig_frame){
		.type = MIG_FRAME_DATA, .index = k->index++, .data = s->buf,
		.len = len,
	};
	s->tailroom = k->f->max_overhead;
	mig_pool_submit(k->pool, &s->job, encode_job);
	k->filled++;
	k->t.frames++;
	k->t.data_frames++;
	k->t.bytes += len;
	/* write what is ready, without waiting */
	while (k->written < k->filled &&
	       mig_pool_done(k->pool, &k->slots[k->written % k->nslots].job))
		if (write_oldest(k, e) < 0)
			return -1;
	return 0;
}

int mig_sink_write(struct mig_sink *k, const void *p, size_t n,
		   struct mig_err *e)
{
	const uint8_t *b = p;

	while (n) {
		if (!k->part && !(k->part = mig_sink_buffer(k, e)))
			return -1;
		size_t m = k->frame_size - k->part_len < n ?
			   k->frame_size - k->part_len : n;
		memcpy(k->part + k->part_len, b, m);
		k->part_len += m;
		b += m;
		n -= m;
		if (k->part_len == k->frame_size && hand_over_part(k, e) < 0)
			return -1;
	}
	return 0;
}

int mig_sink_flush(struct mig_sink *k, struct mig_err *e)
{
	return flush(k, e);
}

int mig_sink_end(struct mig_sink *k, struct mig_err *e)
{
	uint8_t *p = k->scratch;
	size_t tlen = MIG_TRAILER_MAX;

	if (flush(k, e) < 0)
		return -1;
	mig_put_le64(p, k->t.bytes);
	mig_put_le64(p + 8, k->index);
	if (!k->f->encode_trailer) /* a kind without a trailer */
		tlen = 0;
	else if (k->f->encode_trailer(k->st, p + MIG_END_TOTALS, &tlen, e) < 0)
		return -1;
	return emit_now(k, MIG_FRAME_END, p, MIG_END_TOTALS + tlen,
			k->scratch_cap - (MIG_END_TOTALS + tlen), e);
}

size_t mig_sink_frame_size(const struct mig_sink *k)
{
	return k->frame_size;
}

void mig_sink_rate(struct mig_sink *k, struct mig_rate *r)
{
	k->rate = r;
	mig_rate_take(r, (size_t)k->t.encoded); /* the header, sent already */
}

void mig_sink_totals(const struct mig_sink *k, struct mig_layer_totals *t)
{
	*t = k->t;
}

void mig_sink_free(struct mig_sink *k)
{
	if (!k)
		return;
	mig_pool_free(k->pool); /* finishes jobs still running */
	for (size_t i = 0; k->slots && i < k->nslots; i++) {
		if (k->f->frame_ctx_create && k->slots[i].ctx &&
		    k->slots[i].ctx != k->st)
			k->f->frame_ctx_destroy(k->slots[i].ctx);
		free(k->slots[i].buf);
	}
	free(k->slots);
	free(k->scratch);
	free(k);
}

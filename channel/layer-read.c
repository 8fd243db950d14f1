/*
 * layer-read.c - peeling one layer.
 *
 * The layer source hands out a frame's inner bytes only after the filter
 * has verified that frame, so whatever reaches the output is a prefix of
 * what the encoder was given, even when the stream turns out to be bad.
 */
#include <stdlib.h>
#include <string.h>

#include "header.h"
#include "source-private.h"

struct layer_src {
	struct mig_src base;
	struct mig_src *in;
	const struct mig_filter *f;
	void *st;
	bool opened;
	uint8_t params[MIG_PARAMS_MAX];
	size_t params_len;
	uint8_t *payload;
	size_t payload_cap;
	uint64_t index;
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
	if (mig_header_read(l->in, l->f->kind, l->params, &l->params_len, e) < 0)
		return -1;
	if (l->f->decode_init(l->st, l->params, l->params_len, e) < 0)
		return mig_err_prefix(e, "layer header: ");
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
	if (frames != l->index)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "END says %llu frames, the layer has %llu",
				   (unsigned long long)frames,
				   (unsigned long long)l->index);
	if (bytes != l->t.bytes)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "END says %llu bytes, the layer carried %llu",
				   (unsigned long long)bytes,
				   (unsigned long long)l->t.bytes);
	return l->f->decode_trailer(l->st, p + MIG_END_TOTALS,
				    n - MIG_END_TOTALS, e);
}

/* Nothing may follow END: not garbage, not a second stream. */
static int expect_eof(struct layer_src *l, struct mig_err *e)
{
	const uint8_t *p;
	size_t n;
	uint64_t at = mig_src_offset(l->in);
	int r = mig_src_chunk(l->in, &p, &n, 1, e);

	if (r < 0)
		return -1;
	if (r > 0)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "data after the END frame at offset %llu",
				   (unsigned long long)at);
	return 0;
}

/* Read, check and decode frames until one carries inner bytes. */
static int layer_next(struct mig_src *s, const uint8_t **out, size_t *outlen,
		      struct mig_err *e)
{
	struct layer_src *l = (struct layer_src *)s;

	if (mig_layer_open(s, e) < 0)
		return -1;
	for (;;) {
		uint8_t h[MIG_FRAME_HEADER];
		uint64_t at = mig_src_offset(l->in);
		long n = mig_src_read(l->in, h, sizeof h, e);

		if (n < 0)
			return -1;
		if (n == 0)
			return mig_err_set(e, MIG_EXIT_DATA,
					   "truncated: the stream ends after "
					   "frame %llu (offset %llu) with no "
					   "END frame",
					   (unsigned long long)l->index,
					   (unsigned long long)at);
		if (n < MIG_FRAME_HEADER)
			goto truncated;

		struct mig_frame fr = {
			.type = h[0], .flags = h[1], .index = l->index,
		};
		uint32_t len = mig_get_le32(h + 4);
		if (fr.type < MIG_FRAME_DATA || fr.type > MIG_FRAME_END) {
			mig_err_set(e, MIG_EXIT_DATA, "unknown frame type 0x%02x",
				    fr.type);
			goto context;
		}
		if (mig_get_le16(h + 2) != 0) {
			mig_err_set(e, MIG_EXIT_DATA,
				    "reserved bytes are not zero");
			goto context;
		}
		if (len > MIG_FRAME_PAYLOAD_MAX) {
			mig_err_set(e, MIG_EXIT_DATA,
				    "frame length %u exceeds the limit of %u",
				    len, MIG_FRAME_PAYLOAD_MAX);
			goto context;
		}
		if (len > l->payload_cap) {
			uint8_t *p = realloc(l->payload, len);
			if (!p)
				return mig_err_set(e, MIG_EXIT_SYS,
						   "out of memory");
			l->payload = p;
			l->payload_cap = len;
		}
		n = mig_src_read(l->in, l->payload, len, e);
		if (n < 0)
			return -1;
		if ((size_t)n < len)
			goto truncated;

		fr.data = l->payload;
		fr.len = len;
		const uint8_t *plain;
		size_t plen;
		if (l->f->decode(l->st, &fr, &plain, &plen, e) < 0)
			goto context;

		switch (fr.type) {
		case MIG_FRAME_DATA:
			if (plen > MIG_FRAME_DATA_MAX) {
				mig_err_set(e, MIG_EXIT_DATA,
					    "frame decodes to more than %u bytes",
					    MIG_FRAME_DATA_MAX);
				goto context;
			}
			l->index++;
			l->t.frames++;
			l->t.data_frames++;
			l->t.bytes += plen;
			if (plen == 0)
				continue;
			*out = plain;
			*outlen = plen;
			return 1;
		case MIG_FRAME_META:
			if (keep_meta(l, plain, plen, e) < 0)
				goto context;
			l->index++;
			l->t.frames++;
			continue;
		case MIG_FRAME_END:
			if (check_end(l, plain, plen, e) < 0)
				goto context;
			if (expect_eof(l, e) < 0)
				return -1;
			return 0;
		}
		continue;
truncated:
		return mig_err_set(e, MIG_EXIT_DATA,
				   "truncated: the stream ends inside frame "
				   "%llu (offset %llu)",
				   (unsigned long long)l->index,
				   (unsigned long long)at);
context:
		return mig_err_prefix(e, "frame %llu (offset %llu): ",
				      (unsigned long long)l->index,
				      (unsigned long long)at);
	}
}

static void layer_free(struct mig_src *s)
{
	struct layer_src *l = (struct layer_src *)s;

	for (size_t i = 0; i < l->nmeta; i++)
		mig_meta_clear(&l->meta[i]);
	free(l->meta);
	free(l->payload);
	free(l);
}

static const struct mig_src_ops layer_ops = {
	.next = layer_next,
	.free = layer_free,
};

struct mig_src *mig_src_layer(struct mig_src *inner, const struct mig_filter *f,
			      void *st, struct mig_err *e)
{
	struct layer_src *l = calloc(1, sizeof *l);

	if (!l) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		return NULL;
	}
	mig_src_init(&l->base, &layer_ops, mig_src_name(inner));
	l->in = inner;
	l->f = f;
	l->st = st;
	return &l->base;
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

/* layer-write.c - writing one layer: header, frames, END. */
#include <stdlib.h>
#include <string.h>

#include "header.h"

struct mig_sink {
	int fd;
	const struct mig_filter *f;
	void *st;
	uint64_t index;
	struct mig_layer_totals t;
	uint8_t *scratch; /* META and END frames are built here */
	size_t scratch_cap;
};

static int emit(struct mig_sink *k, uint8_t type, uint8_t *buf, size_t len,
		size_t tailroom, struct mig_err *e)
{
	struct mig_frame in = {
		.type = type, .index = k->index, .data = buf, .len = len,
	};
	const uint8_t *out;
	size_t outlen;
	uint8_t flags = 0;
	uint8_t h[MIG_FRAME_HEADER];

	if (k->f->encode(k->st, &in, tailroom, &out, &outlen, &flags, e) < 0)
		return mig_err_prefix(e, "frame %llu: ",
				      (unsigned long long)k->index);
	if (outlen > MIG_FRAME_PAYLOAD_MAX)
		return mig_err_set(e, MIG_EXIT_SYS,
				   "frame %llu: filter made %zu bytes, over the "
				   "limit of %u", (unsigned long long)k->index,
				   outlen, MIG_FRAME_PAYLOAD_MAX);
	h[0] = type;
	h[1] = flags;
	mig_put_le16(h + 2, 0);
	mig_put_le32(h + 4, (uint32_t)outlen);
	if (mig_writev_all(k->fd, h, sizeof h, out, outlen, e) < 0)
		return -1;
	k->index++;
	k->t.encoded += sizeof h + outlen;
	return 0;
}

struct mig_sink *mig_sink_open(int fd, const struct mig_filter *f, void *st,
			       struct mig_err *e)
{
	uint8_t params[MIG_PARAMS_MAX], h[MIG_HEADER_MAX];
	size_t plen = sizeof params, hlen;
	struct mig_sink *k = calloc(1, sizeof *k);

	if (!k) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		return NULL;
	}
	k->fd = fd;
	k->f = f;
	k->st = st;
	k->scratch_cap = MIG_META_KEY_MAX + 1 + MIG_META_VALUE_MAX +
			 f->max_overhead;
	if (!(k->scratch = malloc(k->scratch_cap))) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto fail;
	}
	if (f->encode_init(st, params, &plen, e) < 0)
		goto fail;
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
	if (emit(k, MIG_FRAME_META, k->scratch, kl + 1 + vl,
		 k->scratch_cap - (kl + 1 + vl), e) < 0)
		return -1;
	k->t.frames++;
	return 0;
}

int mig_sink_data(struct mig_sink *k, uint8_t *buf, size_t len,
		  struct mig_err *e)
{
	if (len > MIG_FRAME_DATA_MAX)
		return mig_err_set(e, MIG_EXIT_SYS, "frame of %zu bytes is "
				   "over the limit of %u", len,
				   MIG_FRAME_DATA_MAX);
	if (emit(k, MIG_FRAME_DATA, buf, len, k->f->max_overhead, e) < 0)
		return -1;
	k->t.frames++;
	k->t.data_frames++;
	k->t.bytes += len;
	return 0;
}

int mig_sink_end(struct mig_sink *k, struct mig_err *e)
{
	uint8_t *p = k->scratch;
	size_t tlen = MIG_TRAILER_MAX;

	mig_put_le64(p, k->t.bytes);
	mig_put_le64(p + 8, k->index);
	if (k->f->encode_trailer(k->st, p + MIG_END_TOTALS, &tlen, e) < 0)
		return -1;
	return emit(k, MIG_FRAME_END, p, MIG_END_TOTALS + tlen,
		    k->scratch_cap - (MIG_END_TOTALS + tlen), e);
}

void mig_sink_totals(const struct mig_sink *k, struct mig_layer_totals *t)
{
	*t = k->t;
}

void mig_sink_free(struct mig_sink *k)
{
	if (!k)
		return;
	free(k->scratch);
	free(k);
}

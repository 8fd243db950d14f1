/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * walk.c - follow a layer's framing to its END without decoding it.
 *
 * For stages that pass a layer on without peeling it and only need to
 * know that it ended where its writer ended it: mig-tee, and every
 * encoder wrapping a layer (which then withholds its own END). Checked:
 * the header's check, every frame's framing (with the flags the kind
 * defines, for the kinds in the registry), END, then nothing. Content
 * is not verified; the decoders do that. Bytes are pushed in as they
 * pass, in pieces of any size.
 */
#include <string.h>

#include "header.h"

enum { W_HEADER, W_FRAME, W_PAYLOAD, W_DONE, W_FAILED };

void mig_watch_init(struct mig_watch *w)
{
	memset(w, 0, sizeof *w);
	w->state = W_HEADER;
	w->need = MIG_HEADER_FIXED;
}

/* Collect bytes into w->buf up to w->need; true once there. */
static bool gather(struct mig_watch *w, const uint8_t **p, size_t *n)
{
	size_t take = w->need - w->have;

	if (take > *n)
		take = *n;
	memcpy(w->buf + w->have, *p, take);
	w->have += take;
	w->offset += take;
	*p += take;
	*n -= take;
	return w->have == w->need;
}

static int fail(struct mig_watch *w)
{
	w->state = W_FAILED;
	return -1;
}

int mig_watch_feed(struct mig_watch *w, const uint8_t *p, size_t n)
{
	while (n > 0) {
		switch (w->state) {
		case W_HEADER:
			if (!gather(w, &p, &n))
				return 0;
			if (w->need == MIG_HEADER_FIXED) {
				uint32_t plen;
				static const uint8_t magic[4] = {
					MIG_MAGIC_0, MIG_MAGIC_1, MIG_MAGIC_2,
					MIG_MAGIC_3 };
				if (memcmp(w->buf, magic, 4) != 0 ||
				    w->buf[4] != MIG_FORMAT_VERSION) {
					mig_err_set(&w->err, MIG_EXIT_DATA,
						    "not a mig layer of format "
						    "version %u", MIG_FORMAT_VERSION);
					return fail(w);
				}
				if (mig_header_check_fixed(w->buf, &plen, &w->err) < 0)
					return fail(w);
				w->kind = w->buf[5];
				w->need += plen + MIG_HEADER_CHECK;
				continue;
			}
			if (mig_header_check_sum(w->buf, (uint32_t)(w->need -
					MIG_HEADER_FIXED - MIG_HEADER_CHECK),
					&w->err) < 0)
				return fail(w);
			w->state = W_FRAME;
			w->have = 0;
			w->need = MIG_FRAME_HEADER;
			w->frame_at = w->offset;
			continue;
		case W_FRAME: {
			struct mig_frame fr;
			uint32_t len;
			if (!gather(w, &p, &n))
				return 0;
			if (mig_frame_header_check(w->buf, w->frames, w->frame_at,
						   &fr, &len, &w->err) < 0)
				return fail(w);
			/* flags, for the kinds we know (others pass on) */
			const struct mig_kind *k = mig_kind_by_id(w->kind);
			if (k && mig_frame_flags_check(&fr, k->frame_flags, w->kind,
						       w->frame_at, &w->err) < 0)
				return fail(w);
			w->in_end = fr.type == MIG_FRAME_END;
			w->skip = len;
			w->state = W_PAYLOAD;
			continue;
		}
		case W_PAYLOAD: {
			size_t take = w->skip < n ? (size_t)w->skip : n;
			w->skip -= take;
			w->offset += take;
			p += take;
			n -= take;
			if (w->skip > 0)
				return 0;
			if (w->in_end) {
				w->state = W_DONE;
			} else {
				w->frames++;
				w->state = W_FRAME;
				w->have = 0;
				w->frame_at = w->offset;
			}
			continue;
		}
		case W_DONE:
			mig_err_after_end(&w->err, w->offset);
			return fail(w);
		default:
			return -1;
		}
	}
	return 0;
}

int mig_watch_end(struct mig_watch *w, struct mig_err *e)
{
	switch (w->state) {
	case W_DONE:
		return 0;
	case W_FAILED:
		*e = w->err;
		return -1;
	case W_HEADER:
		return mig_err_header_truncated(e);
	case W_FRAME:
		if (w->have == 0)
			return mig_err_no_end(e, w->frames, w->frame_at);
		/* fall through */
	default:
		return mig_err_frame_truncated(e, w->frames, w->frame_at);
	}
}

int mig_layer_walk(struct mig_src *in, struct mig_walk *out, struct mig_err *e)
{
	struct mig_watch w;
	struct mig_detect d;
	const uint8_t *p;
	size_t n;
	int r;

	/* what is not a layer at all is named as such */
	if (mig_detect(in, &d, e) < 0)
		return -1;
	if (d.type != MIG_INPUT_LAYER) {
		uint8_t params[MIG_PARAMS_MAX];
		size_t plen;
		return mig_header_read(in, 0, NULL, params, &plen, e);
	}
	mig_watch_init(&w);
	while ((r = mig_src_chunk(in, &p, &n, SIZE_MAX, e)) > 0)
		if (mig_watch_feed(&w, p, n) < 0)
			break;
	if (r < 0)
		return -1;
	out->kind = w.kind;
	out->frames = w.frames;
	return mig_watch_end(&w, e);
}

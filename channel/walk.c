/*
 * walk.c - follow a layer's framing to its END without decoding it.
 *
 * For stages that pass a stream on untouched and only need to know that
 * it ended where its writer ended it (mig-tee): the header's check, every
 * frame's framing, END, then nothing. Content is not verified; the
 * decoders do that.
 */
#include "header.h"

int mig_layer_walk(struct mig_src *in, struct mig_walk *w, struct mig_err *e)
{
	uint8_t params[MIG_PARAMS_MAX];
	size_t plen;

	*w = (struct mig_walk){ 0 };
	if (mig_header_read(in, 0, &w->kind, params, &plen, e) < 0)
		return -1;
	for (;;) {
		struct mig_frame fr;
		uint32_t len;
		uint64_t at = mig_src_offset(in);

		if (mig_frame_header_read(in, w->frames, &fr, &len, e) < 0)
			return -1;
		for (uint32_t left = len; left > 0;) {
			const uint8_t *p;
			size_t n;
			int r = mig_src_chunk(in, &p, &n, left, e);
			if (r < 0)
				return -1;
			if (r == 0)
				return mig_err_frame_truncated(e, w->frames, at);
			left -= (uint32_t)n;
		}
		if (fr.type == MIG_FRAME_END)
			break;
		w->frames++;
	}
	return mig_expect_end(in, e);
}

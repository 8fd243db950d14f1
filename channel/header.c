/* SPDX-License-Identifier: BSD-2-Clause */
/* header.c - the layer header: build it, and read and check it. */
#include <string.h>
#include <xxhash.h>

#include "mig.h"
#include "header.h"

size_t mig_header_build(uint8_t *out, uint8_t kind, const uint8_t *params,
			size_t plen)
{
	out[0] = MIG_MAGIC_0;
	out[1] = MIG_MAGIC_1;
	out[2] = MIG_MAGIC_2;
	out[3] = MIG_MAGIC_3;
	out[4] = MIG_FORMAT_VERSION;
	out[5] = kind;
	mig_put_le16(out + 6, 0);
	mig_put_le32(out + 8, (uint32_t)plen);
	if (plen) /* a kind without parameters may pass NULL */
		memcpy(out + MIG_HEADER_FIXED, params, plen);
	size_t n = MIG_HEADER_FIXED + plen;
	mig_put_le64(out + n, XXH3_64bits(out, n));
	return n + MIG_HEADER_CHECK;
}

/* Say what the input is when it is not the layer we peel. */
static int wrong_input(const struct mig_detect *d, uint8_t want,
		       struct mig_err *e)
{
	const struct mig_kind *wk = mig_kind_by_id(want);
	const struct mig_kind *k;
	const char *wname = wk ? wk->name : "mig";

	switch (d->type) {
	case MIG_INPUT_EMPTY:
		return mig_err_set(e, MIG_EXIT_DATA,
				   "input is empty, not %s %s layer",
				   mig_article(wname), wname);
	case MIG_INPUT_QEMU:
		return mig_err_set(e, MIG_EXIT_DATA,
				   "input is a raw QEMU stream, not %s %s layer: "
				   "nothing to decode", mig_article(wname), wname);
	case MIG_INPUT_LAYER:
		if (d->version != MIG_FORMAT_VERSION)
			return mig_err_set(e, MIG_EXIT_DATA,
					   "input is a mig stream of format "
					   "version %u; this program reads "
					   "version %u", d->version,
					   MIG_FORMAT_VERSION);
		if ((k = mig_kind_by_id(d->kind)))
			return mig_err_set(e, MIG_EXIT_DATA,
					   "input is %s %s layer; run %s first",
					   mig_article(k->name), k->name,
					   k->peeler);
		return mig_err_set(e, MIG_EXIT_DATA,
				   "input is a mig layer of unknown kind %u",
				   d->kind);
	case MIG_INPUT_UNKNOWN:
	default: {
		char what[128];
		mig_detect_describe(d, what, sizeof what);
		return mig_err_set(e, MIG_EXIT_DATA, "input is %s", what);
	}
	}
}

int mig_err_header_truncated(struct mig_err *e)
{
	return mig_err_set(e, MIG_EXIT_DATA,
			   "truncated: the stream ends inside the layer header");
}

int mig_header_check_fixed(const uint8_t *h, uint32_t *plen, struct mig_err *e)
{
	if (mig_get_le16(h + 6) != 0)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "layer header: unknown flags 0x%04x",
				   mig_get_le16(h + 6));
	*plen = mig_get_le32(h + 8);
	if (*plen > MIG_PARAMS_MAX)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "layer header: parameter length %u exceeds "
				   "the limit of %u", *plen, MIG_PARAMS_MAX);
	return 0;
}

int mig_header_check_sum(const uint8_t *h, uint32_t plen, struct mig_err *e)
{
	size_t covered = MIG_HEADER_FIXED + plen;

	if (XXH3_64bits(h, covered) != mig_get_le64(h + covered))
		return mig_err_set(e, MIG_EXIT_DATA,
				   "layer header is corrupt (check mismatch)");
	return 0;
}

int mig_header_read(struct mig_src *in, uint8_t want_kind, uint8_t *kind,
		    uint8_t *params, size_t *plen, struct mig_err *e)
{
	uint8_t h[MIG_HEADER_FIXED + MIG_PARAMS_MAX + MIG_HEADER_CHECK];
	struct mig_detect d;
	long n;

	if (mig_detect(in, &d, e) < 0)
		return -1;
	if (d.type != MIG_INPUT_LAYER || d.version != MIG_FORMAT_VERSION ||
	    (want_kind && d.kind != want_kind)) {
		/* a magic alone, cut before its kind, is a truncated header */
		if (d.type == MIG_INPUT_LAYER && d.headlen < 6)
			goto truncated;
		return wrong_input(&d, want_kind, e);
	}
	n = mig_src_read(in, h, MIG_HEADER_FIXED, e);
	if (n < 0)
		return -1;
	if (n < MIG_HEADER_FIXED)
		goto truncated;
	uint32_t p;
	if (mig_header_check_fixed(h, &p, e) < 0)
		return -1;
	n = mig_src_read(in, h + MIG_HEADER_FIXED, p + MIG_HEADER_CHECK, e);
	if (n < 0)
		return -1;
	if ((size_t)n < p + MIG_HEADER_CHECK)
		goto truncated;
	if (mig_header_check_sum(h, p, e) < 0)
		return -1;
	memcpy(params, h + MIG_HEADER_FIXED, p);
	*plen = p;
	if (kind)
		*kind = d.kind;
	return 0;
truncated:
	return mig_err_set(e, MIG_EXIT_DATA,
			   "truncated: the stream ends inside the layer header");
}

int mig_err_frame_truncated(struct mig_err *e, uint64_t index, uint64_t at)
{
	return mig_err_set(e, MIG_EXIT_DATA,
			   "truncated: the stream ends inside frame %llu "
			   "(offset %llu)", (unsigned long long)index,
			   (unsigned long long)at);
}

int mig_frame_header_check(const uint8_t *h, uint64_t index, uint64_t at,
			   struct mig_frame *fr, uint32_t *len,
			   struct mig_err *e)
{
	*fr = (struct mig_frame){ .type = h[0], .flags = h[1], .index = index };
	*len = mig_get_le32(h + 4);
	if (fr->type < MIG_FRAME_DATA || fr->type > MIG_FRAME_END)
		mig_err_set(e, MIG_EXIT_DATA, "unknown frame type 0x%02x",
			    fr->type);
	else if (mig_get_le16(h + 2) != 0)
		mig_err_set(e, MIG_EXIT_DATA, "reserved bytes are not zero");
	else if (*len > MIG_FRAME_PAYLOAD_MAX)
		mig_err_set(e, MIG_EXIT_DATA,
			    "frame length %u exceeds the limit of %u", *len,
			    MIG_FRAME_PAYLOAD_MAX);
	else
		return 0;
	return mig_err_prefix(e, "frame %llu (offset %llu): ",
			      (unsigned long long)index, (unsigned long long)at);
}

int mig_frame_flags_check(const struct mig_frame *fr, uint8_t defined,
			  uint8_t kind, uint64_t at, struct mig_err *e)
{
	const struct mig_kind *k = mig_kind_by_id(kind);
	uint8_t unknown = fr->flags & (uint8_t)~defined;

	if (!unknown)
		return 0;
	mig_err_set(e, MIG_EXIT_DATA, "flags 0x%02x: bit%s 0x%02x not defined "
		    "for %s %s layer", fr->flags,
		    (unknown & (unknown - 1)) ? "s" : "", unknown,
		    k ? mig_article(k->name) : "a", k ? k->name : "mig");
	return mig_err_prefix(e, "frame %llu (offset %llu): ",
			      (unsigned long long)fr->index,
			      (unsigned long long)at);
}

int mig_err_no_end(struct mig_err *e, uint64_t index, uint64_t at)
{
	return mig_err_set(e, MIG_EXIT_DATA,
			   "truncated: the stream ends after frame %llu "
			   "(offset %llu) with no END frame",
			   (unsigned long long)index, (unsigned long long)at);
}

int mig_frame_header_read(struct mig_src *in, uint64_t index,
			  struct mig_frame *fr, uint32_t *len, struct mig_err *e)
{
	uint8_t h[MIG_FRAME_HEADER];
	uint64_t at = mig_src_offset(in);
	long n = mig_src_read(in, h, sizeof h, e);

	if (n < 0)
		return -1;
	if (n == 0)
		return mig_err_no_end(e, index, at);
	if (n < MIG_FRAME_HEADER)
		return mig_err_frame_truncated(e, index, at);
	return mig_frame_header_check(h, index, at, fr, len, e);
}

int mig_expect_end(struct mig_src *in, struct mig_err *e)
{
	const uint8_t *p;
	size_t n;
	uint64_t at = mig_src_offset(in);
	int r = mig_src_chunk(in, &p, &n, 1, e);

	if (r < 0)
		return -1;
	if (r > 0)
		return mig_err_after_end(e, at);
	return 0;
}

int mig_err_after_end(struct mig_err *e, uint64_t at)
{
	return mig_err_set(e, MIG_EXIT_DATA,
			   "data after the END frame at offset %llu",
			   (unsigned long long)at);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/* header.h - the layer header (private to the channel library). */
#ifndef MIG_HEADER_H
#define MIG_HEADER_H

#include "mig.h"

#define MIG_HEADER_MAX (MIG_HEADER_FIXED + MIG_PARAMS_MAX + MIG_HEADER_CHECK)

/* Writes the header into out (MIG_HEADER_MAX bytes); returns its length. */
size_t mig_header_build(uint8_t *out, uint8_t kind, const uint8_t *params,
			size_t plen);
/* Reads and checks a header of the wanted kind (0: any, then *kind says
 * which); params must hold MIG_PARAMS_MAX bytes. A different input is
 * reported as what it is. */
int mig_header_read(struct mig_src *in, uint8_t want_kind, uint8_t *kind,
		    uint8_t *params, size_t *plen, struct mig_err *e);
/* Reads and checks the framing of frame `index`: type, reserved bytes,
 * the length bound. A clean end here means a missing END. */
int mig_frame_header_read(struct mig_src *in, uint64_t index,
			  struct mig_frame *fr, uint32_t *len, struct mig_err *e);
/* Nothing may follow END: not garbage, not a second stream. */
int mig_expect_end(struct mig_src *in, struct mig_err *e);
int mig_frame_header_check(const uint8_t *h, uint64_t index, uint64_t at,
			   struct mig_frame *fr, uint32_t *len,
			   struct mig_err *e);
/* A frame's flags against those its kind defines: any other bit set is
 * refused (the tagged layers do not cover the flags byte, so nothing else
 * would notice it changed). 0 or -1. */
int mig_frame_flags_check(const struct mig_frame *fr, uint8_t defined,
			  uint8_t kind, uint64_t at, struct mig_err *e);
/* The header's first MIG_HEADER_FIXED bytes (magic and kind already
 * recognised): flags and parameter length; then its check. */
int mig_header_check_fixed(const uint8_t *h, uint32_t *plen, struct mig_err *e);
int mig_header_check_sum(const uint8_t *h, uint32_t plen, struct mig_err *e);
/* The messages every reader gives for the same trouble. */
int mig_err_header_truncated(struct mig_err *e);
int mig_err_frame_truncated(struct mig_err *e, uint64_t index, uint64_t at);
int mig_err_no_end(struct mig_err *e, uint64_t index, uint64_t at);
int mig_err_after_end(struct mig_err *e, uint64_t at);

/* "a" or "an" before a kind's name: "an encrypt layer". */
static inline const char *mig_article(const char *word)
{
	return word[0] == 'a' || word[0] == 'e' || word[0] == 'i' ||
			       word[0] == 'o' || word[0] == 'u'
		       ? "an"
		       : "a";
}

#endif

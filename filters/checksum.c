/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * checksum.c - mig-checksum: detect any change to a stream.
 *
 * The transform is the channel's tagged frames (channel/tagged.c), which
 * the envelope layer shares: a per-frame XXH3-64 bound to the frame's
 * position and an XXH3-128 digest of the whole stream in END.
 */
#include "tagged.h"

MIG_FILTER(checksum) {
	.name = "checksum",
	.kind = MIG_KIND_CHECKSUM,
	.summary = "Wrap a stream in a checksum layer, or verify and unwrap "
		   "one (-d).",
	MIG_TAGGED_CALLBACKS,
};

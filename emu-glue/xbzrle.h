/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xbzrle: QEMU's XBZRLE page encoding (docs/devel/migration/xbzrle.rst),
 * a page as the runs in which it differs from the page it replaces.
 *
 * An encoding is a sequence of pairs: a run of unchanged bytes (its
 * length, ULEB128), then a run of changed bytes (its length, ULEB128,
 * non-zero, then the new bytes themselves). Unchanged bytes at the end
 * of the page need no run. Only the first unchanged run may be empty. An
 * encoding of no pair would leave the page as it was: QEMU never sends
 * one, and it is refused here.
 *
 * mig-delta carries a page that changed in few places as an XBZRLE record
 * against the base's page at the same address, the page QEMU holds there
 * once the base is loaded: what QEMU's xbzrle capability does against
 * its cache of pages sent.
 */
#ifndef MIGKIT_XBZRLE_H
#define MIGKIT_XBZRLE_H

#include <stddef.h>
#include <stdint.h>

/* The encoding of page now against page old (n bytes each) into out (cap
 * bytes): its length; 0 if the pages are equal; -1 if it needs more than
 * cap bytes (the page is then better sent whole). */
long xbzrle_encode(const uint8_t *old, const uint8_t *now, size_t n,
		   uint8_t *out, size_t cap);

/* Apply encoding enc (len bytes) to page (n bytes) in place. 0, or -1
 * with *why saying what is wrong (page then partly changed). */
int xbzrle_decode(const uint8_t *enc, size_t len, uint8_t *page, size_t n,
		  const char **why);

#endif /* MIGKIT_XBZRLE_H */

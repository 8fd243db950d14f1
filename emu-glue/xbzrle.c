/* SPDX-License-Identifier: BSD-2-Clause */
/* xbzrle.c - QEMU's XBZRLE page encoding (xbzrle.h). */
#include "xbzrle.h"

#include <string.h>

/* v as ULEB128 at out[*d], if it fits in cap. */
static int put_uleb(uint8_t *out, size_t cap, size_t *d, size_t v)
{
	do {
		if (*d == cap)
			return -1;
		out[(*d)++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return 0;
}

/* A ULEB128 of at most 4 bytes (a run is at most a page: 2^28 is more
 * than any page QEMU has) at enc[*i]. */
static int get_uleb(const uint8_t *enc, size_t len, size_t *i, size_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 28; shift += 7) {
		if (*i == len)
			return -1;
		uint8_t b = enc[(*i)++];
		*v |= (size_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

long xbzrle_encode(const uint8_t *old, const uint8_t *now, size_t n,
		   uint8_t *out, size_t cap)
{
	size_t i = 0, d = 0;

	while (i < n) {
		size_t z = i;
		while (i < n && old[i] == now[i])
			i++;
		if (i == n)
			break; /* unchanged to the end: no run needed */
		size_t c = i;
		/* a changed run ends at the first byte equal again (a short
		 * equal run costs a pair: this matches QEMU's own encoder) */
		while (i < n && old[i] != now[i])
			i++;
		if (put_uleb(out, cap, &d, c - z) || put_uleb(out, cap, &d, i - c) ||
		    cap - d < i - c)
			return -1;
		memcpy(out + d, now + c, i - c);
		d += i - c;
	}
	return (long)d;
}

int xbzrle_decode(const uint8_t *enc, size_t len, uint8_t *page, size_t n,
		  const char **why)
{
	size_t i = 0, at = 0, run;

	if (!len) {
		*why = "an empty XBZRLE encoding";
		return -1;
	}
	while (i < len) {
		if (get_uleb(enc, len, &i, &run) < 0) {
			*why = "a cut or overlong run length";
			return -1;
		}
		if (run == 0 && at != 0) {
			*why = "an empty unchanged run after the first";
			return -1;
		}
		if (run > n - at) {
			*why = "an unchanged run past the end of the page";
			return -1;
		}
		at += run;
		if (get_uleb(enc, len, &i, &run) < 0) {
			*why = "a cut or overlong run length";
			return -1;
		}
		if (run == 0) {
			*why = "an empty changed run";
			return -1;
		}
		if (run > n - at || run > len - i) {
			*why = run > n - at ? "a changed run past the end of "
			       "the page" : "a changed run cut short";
			return -1;
		}
		memcpy(page + at, enc + i, run);
		at += run;
		i += run;
	}
	return 0;
}

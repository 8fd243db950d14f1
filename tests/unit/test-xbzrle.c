/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit test of emu-glue/xbzrle.c: round trips over changes of every
 * shape, the exact bytes of a known encoding, and every malformed
 * encoding refused with its reason, the page never written past its end.
 */
#include "xbzrle.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PS 4096

static uint32_t rng = 2463534242u;
static uint8_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return (uint8_t)rng;
}

/* Encode now against old and decode it onto a copy of old: now again. */
static int round_trip(const uint8_t *old, const uint8_t *now, long *len)
{
	static uint8_t enc[PS], page[PS];
	const char *why = NULL;

	*len = xbzrle_encode(old, now, PS, enc, sizeof enc);
	if (*len <= 0)
		return *len == 0 && !memcmp(old, now, PS) ? 0 : -1;
	memcpy(page, old, PS);
	if (xbzrle_decode(enc, (size_t)*len, page, PS, &why) < 0)
		return -1;
	return memcmp(page, now, PS) ? -1 : 0;
}

static void test_round_trips(void)
{
	static uint8_t old[PS], now[PS];
	long len;

	for (size_t i = 0; i < PS; i++)
		old[i] = rnd();
	memcpy(now, old, PS);
	ok(round_trip(old, now, &len) == 0 && len == 0, "equal pages: length 0");

	now[0] ^= 1;
	ok(round_trip(old, now, &len) == 0 && len == 3,
	   "first byte changed: runs 0 and 1, the byte (3 bytes)");
	memcpy(now, old, PS);
	now[PS - 1] ^= 1;
	ok(round_trip(old, now, &len) == 0 && len == 4,
	   "last byte changed: run 4095 in two bytes, run 1, the byte");

	memcpy(now, old, PS);
	for (size_t i = 0; i < 64; i++)
		now[1000 + i] ^= 0x55;
	ok(round_trip(old, now, &len) == 0 && len == 2 + 1 + 64,
	   "64 bytes changed mid-page: 67 bytes");

	int bad = 0;
	for (int k = 0; k < 200; k++) {
		memcpy(now, old, PS);
		int runs = 1 + rnd() % 40;
		for (int r = 0; r < runs; r++) {
			size_t at = ((size_t)rnd() << 4 | rnd() % 16) % PS;
			size_t n = 1 + rnd() % 100;
			for (size_t i = at; i < PS && i < at + n; i++)
				now[i] = (uint8_t)(old[i] + 1 + rnd() % 255);
		}
		bad += round_trip(old, now, &len) != 0;
	}
	ok(bad == 0, "200 pages changed in 1 to 40 random runs: each decodes "
	   "to the new page (%d did not)", bad);

	for (size_t i = 0; i < PS; i++)
		now[i] = (uint8_t)~old[i];
	static uint8_t enc[PS];
	ok(xbzrle_encode(old, now, PS, enc, PS / 2) == -1,
	   "every byte changed: does not fit in half a page");
	ok(xbzrle_encode(old, now, PS, enc, PS) == -1,
	   "nor in a page (it needs 3 bytes more)");
}

static void test_exact_bytes(void)
{
	uint8_t old[16] = { 0 }, now[16] = { 0 }, enc[16];

	now[2] = 'a';
	now[3] = 'b';
	now[10] = 'c';
	long n = xbzrle_encode(old, now, 16, enc, sizeof enc);
	static const uint8_t want[] = { 2, 2, 'a', 'b', 6, 1, 'c' };
	ok(n == (long)sizeof want && !memcmp(enc, want, sizeof want),
	   "the encoding's exact bytes: 02 02 'ab' 06 01 'c'");
	uint8_t big_old[300] = { 0 }, big_now[300] = { 0 };
	big_now[200] = 1;
	n = xbzrle_encode(big_old, big_now, 300, enc, sizeof enc);
	ok(n == 4 && enc[0] == 0xc8 && enc[1] == 0x01 && enc[2] == 1 &&
	   enc[3] == 1, "run 200 as ULEB128: c8 01");
}

/* enc must be refused with why, nothing written past the page. */
static void refused(const uint8_t *enc, size_t len, const char *want,
		    const char *what)
{
	uint8_t buf[16 + 4];
	const char *why = "";

	memset(buf, 0xee, sizeof buf);
	int rc = xbzrle_decode(enc, len, buf, 16, &why);
	ok(rc == -1 && !strcmp(why, want) && buf[16] == 0xee && buf[19] == 0xee,
	   "refused: %s (%s)", what, why);
}

static void test_malformed(void)
{
	refused((const uint8_t[]){ 0 }, 0, "an empty XBZRLE encoding", "no byte");
	refused((const uint8_t[]){ 4 }, 1, "a cut or overlong run length",
		"an unchanged run alone");
	refused((const uint8_t[]){ 0x80 }, 1, "a cut or overlong run length",
		"a run length cut");
	refused((const uint8_t[]){ 0x80, 0x80, 0x80, 0x80, 0x01 }, 5,
		"a cut or overlong run length", "a run length of 5 bytes");
	refused((const uint8_t[]){ 17, 1, 'x' }, 3,
		"an unchanged run past the end of the page", "17 of 16");
	refused((const uint8_t[]){ 10, 7, 'x', 'x', 'x', 'x', 'x', 'x', 'x' },
		9, "a changed run past the end of the page", "10 + 7 of 16");
	refused((const uint8_t[]){ 1, 0 }, 2, "an empty changed run",
		"a changed run of 0");
	refused((const uint8_t[]){ 1, 5, 'x', 'y' }, 4,
		"a changed run cut short", "5 bytes announced, 2 there");
	refused((const uint8_t[]){ 1, 1, 'x', 0, 1, 'y' }, 6,
		"an empty unchanged run after the first", "a second run of 0");
}

int main(void)
{
	test_round_trips();
	test_exact_bytes();
	test_malformed();
	return tap_done();
}

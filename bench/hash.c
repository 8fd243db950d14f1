/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * hash.c - the throughput of the hashes mig-checksum could use, on one
 * core, over 1 MiB frames (the default frame size), median of runs.
 * Built and run by bench/run; prints "NAME MB/s" lines.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

#include "timing.h"

#define FRAME (1u << 20)
#define FRAMES 512 /* 512 MiB a run */
#define RUNS 7

static volatile uint64_t sink;

static void h_xxh3_64(const uint8_t *p, size_t n) { sink ^= XXH3_64bits_withSeed(p, n, 1); }
static void h_xxh3_128(const uint8_t *p, size_t n) { sink ^= XXH3_128bits(p, n).low64; }
static void h_xxh64(const uint8_t *p, size_t n) { sink ^= XXH64(p, n, 1); }
static void h_crc32(const uint8_t *p, size_t n) { sink ^= crc32(0, p, (uInt)n); }
static void h_blake2b(const uint8_t *p, size_t n)
{
	uint8_t out[32];
	crypto_generichash(out, sizeof out, p, n, NULL, 0);
	sink ^= out[0];
}
static void h_sha256(const uint8_t *p, size_t n)
{
	uint8_t out[32];
	crypto_hash_sha256(out, p, n);
	sink ^= out[0];
}

int main(void)
{
	static const struct { const char *name; void (*fn)(const uint8_t *, size_t); } hs[] = {
		{ "xxh3-64", h_xxh3_64 }, { "xxh3-128", h_xxh3_128 },
		{ "xxh64", h_xxh64 }, { "crc32-zlib", h_crc32 },
		{ "blake2b-libsodium", h_blake2b }, { "sha256-libsodium", h_sha256 },
	};
	uint8_t *buf = malloc(FRAME);

	if (!buf || sodium_init() < 0)
		return 1;
	randombytes_buf(buf, FRAME);
	for (size_t h = 0; h < sizeof hs / sizeof hs[0]; h++) {
		double r[RUNS];
		for (int i = 0; i < RUNS; i++) {
			double t = bench_now();
			for (int f = 0; f < FRAMES; f++)
				hs[h].fn(buf, FRAME);
			r[i] = (double)FRAMES * FRAME / 1e6 / (bench_now() - t);
		}
		printf("%-18s %8.0f MB/s\n", hs[h].name, bench_median(r, RUNS));
	}
	free(buf);
	return 0;
}

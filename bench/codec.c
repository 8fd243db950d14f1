/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * codec.c - the codecs mig-compress could use, on one core, compressing
 * a file (a real QEMU stream) in independent frames: output size and
 * MB/s of input, compressing and decompressing, best of RUNS passes.
 * Built and run by bench/compress: codec.c FILE FRAME_SIZE...
 * prints "CODEC FRAME bytes MB/s-compress MB/s-decompress" lines.
 */
#include <libdeflate.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "timing.h"

#define RUNS 3

static ZSTD_CCtx *zc;
static ZSTD_DCtx *zd;
static struct libdeflate_compressor *dc;
static struct libdeflate_decompressor *dd;

static size_t c_zstd(const void *s, size_t n, void *d, size_t cap)
{
	size_t r = ZSTD_compressCCtx(zc, d, cap, s, n, 1);
	return ZSTD_isError(r) ? 0 : r;
}
static size_t d_zstd(const void *s, size_t n, void *d, size_t cap)
{
	return ZSTD_decompressDCtx(zd, d, cap, s, n);
}
static size_t c_deflate(const void *s, size_t n, void *d, size_t cap)
{
	return libdeflate_zlib_compress(dc, s, n, d, cap);
}
static size_t d_deflate(const void *s, size_t n, void *d, size_t cap)
{
	size_t out = 0;
	libdeflate_zlib_decompress(dd, s, n, d, cap, &out);
	return out;
}
static size_t c_zlib(const void *s, size_t n, void *d, size_t cap)
{
	uLongf out = cap;
	return compress2(d, &out, s, n, 1) == Z_OK ? out : 0;
}
static size_t d_zlib(const void *s, size_t n, void *d, size_t cap)
{
	uLongf out = cap;
	return uncompress(d, &out, s, n) == Z_OK ? out : 0;
}
static size_t c_lz4(const void *s, size_t n, void *d, size_t cap)
{
	return (size_t)LZ4_compress_default(s, d, (int)n, (int)cap);
}
static size_t d_lz4(const void *s, size_t n, void *d, size_t cap)
{
	int r = LZ4_decompress_safe(s, d, (int)n, (int)cap);
	return r < 0 ? 0 : (size_t)r;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		size_t (*c)(const void *, size_t, void *, size_t);
		size_t (*d)(const void *, size_t, void *, size_t);
	} cs[] = {
		{ "zstd-1", c_zstd, d_zstd },
		{ "libdeflate-1", c_deflate, d_deflate },
		{ "zlib-1", c_zlib, d_zlib },
		{ "lz4-1", c_lz4, d_lz4 },
	};
	FILE *f;
	long len;
	uint8_t *in;

	if (argc < 3 || !(f = fopen(argv[1], "rb")))
		return 2;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	if (!(in = malloc((size_t)len)) || fread(in, 1, (size_t)len, f) != (size_t)len)
		return 1;
	fclose(f);
	zc = ZSTD_createCCtx();
	zd = ZSTD_createDCtx();
	dc = libdeflate_alloc_compressor(1);
	dd = libdeflate_alloc_decompressor();
	for (int a = 2; a < argc; a++) {
		size_t fs = strtoul(argv[a], NULL, 0), nf = ((size_t)len + fs - 1) / fs;
		size_t cap = fs + fs / 8 + 1024;
		uint8_t *out = malloc(nf * cap), *back = malloc(fs);
		size_t *clen = malloc(nf * sizeof *clen);
		for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
			double bc = 1e9, bd = 1e9;
			size_t total = 0;
			for (int r = 0; r < RUNS; r++) {
				double t = bench_now();
				total = 0;
				for (size_t i = 0; i < nf; i++) {
					size_t n = (size_t)len - i * fs < fs ? (size_t)len - i * fs : fs;
					clen[i] = cs[c].c(in + i * fs, n, out + i * cap, cap);
					total += clen[i];
				}
				if ((t = bench_now() - t) < bc)
					bc = t;
				t = bench_now();
				for (size_t i = 0; i < nf; i++)
					cs[c].d(out + i * cap, clen[i], back, fs);
				if ((t = bench_now() - t) < bd)
					bd = t;
			}
			printf("%-13s %8zu %10zu %6.0f %6.0f\n", cs[c].name, fs, total,
			       (double)len / 1e6 / bc, (double)len / 1e6 / bd);
			fflush(stdout);
		}
		free(out);
		free(back);
		free(clen);
	}
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * compress.c - mig-compress / mig-decompress: make a stream smaller, fast.
 *
 * Every frame is compressed on its own (zstd, zlib or lz4), so frames are
 * compressed and decompressed on several threads at once and still come
 * out in order (frame contexts, see mig.h); memory is a few frames per
 * thread whatever the stream's length. A frame that does not shrink is
 * stored as is, so incompressible data grows only by the framing.
 *
 * Each frame ends with an 8-byte XXH3-64 tag of its plain bytes, seeded
 * with the frame's index and type as in the checksum layer (and, for a
 * compressed frame, of its compressed bytes too), checked after
 * decompressing: a corrupt frame, or a dropped, repeated or moved one,
 * fails there, stored and compressed frames alike. The codecs' own
 * checksums would add nothing (they do not bind a frame to its place) and
 * are left out where they are optional (zstd); zlib's Adler-32 is part of
 * its format. A frame never decodes to more than the layer's frame size,
 * which the parameters record: a small frame cannot expand into a bomb.
 *
 * zlib mode writes the zlib format (RFC 1950) with libdeflate, which is
 * about twice as fast as zlib itself at level 1 (README, bench/compress).
 *
 * zstd-long, the default, is the exception to independent frames: one
 * zstd stream runs through the DATA frames, each frame a flushed piece of
 * it, with long-distance matching over a 128 MiB window, so a page that
 * repeats anywhere in the last 128 MiB costs a few bytes (a migration
 * stream is full of them: 45 % smaller than independent frames on the
 * bench stream). It runs on one core whatever -T (more zstd workers
 * were slower): in this thread, until an adapting level first changes,
 * and from then on in one zstd worker (zlong_restart); the layer's frames
 * go one at a time (max_threads), and a decoder follows the stream in order,
 * still checking each frame's tag before a byte of it is written. Where
 * the output is not a file, its level adapts to the link, as zstd --adapt
 * does: up while writing the output waits and the machine has CPU to
 * spare (a slow link), down while it does not wait or the CPU is all
 * taken (the compressor, or stages starved of CPU, set the pace).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <lz4.h>
#include <lz4hc.h>
#include <xxhash.h>
/* for ZSTD_customMem, zstd's allocator hook (stable since 1.0, still
 * filed under its experimental API) */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "mig.h"
#include "tagged.h"

#define FLAG_STORED 0x01
#define TAG_LEN 8
#define PARAMS_LEN 8
#define META_PLAIN_MAX (MIG_META_KEY_MAX + 1 + MIG_META_VALUE_MAX)
#define END_PLAIN_MAX (MIG_END_TOTALS + MIG_TRAILER_MAX)
/* Chosen by measurement (bench/compress, 1 GiB guest): 1 MiB frames
 * compress within 0.2 % of zstd -1 -T0 with 11 MiB of memory at -T 2;
 * 4 MiB frames gain 0.2 % for three times the memory; at 256 KiB zstd
 * switches to its small-input parameters, 10-20 % slower. */
#define DEFAULT_FRAME_SIZE (1u << 20)
#define LZ4_HC_MIN 3 /* as the lz4 command: lower levels are the fast mode */

#define LONG_WINDOW_LOG 27 /* 128 MiB: zstd --long's, and the bound a decoder takes */
#define LONG_FRAME_SIZE (4u << 20) /* a flush every 4 MiB: zstd's jobs run in parallel within */
#define ADAPT_MAX 9 /* above it zstd with long matching falls below 100 MB/s a core */
#define ADAPT_PERIOD 0.25 /* seconds between two looks at the encoder's load */
/* Spare CPUs (cpu.c) a level up needs, and below which a level goes: a
 * level up takes about half a core more at zstd-long's levels, and on a
 * machine whose CPUs are all busy it is taken from the stages after. */
#define ADAPT_SPARE_UP 0.5
#define ADAPT_SPARE_DOWN 0.2

/* The level of an adaptive encoder: where it may go, the levels it used,
 * and what it measured when it last looked (the clock, the seconds the
 * layer's writes had waited by then, the machine's CPU times). */
struct adapt {
	bool on;
	int min, max, low, high;
	const double *output_wait;
	double since, waited;
	struct mig_cpu_mark cpu;
};

/* A frame context: one codec's state and one output buffer. */
struct fctx {
	const struct codec *codec;
	int level;
	bool decoding;
	size_t frame_size;
	void *state; /* the codec's: made by its open, freed by its close */
	uint8_t *buf;
	size_t cap;
	struct adapt adapt;
	/* zstd-long's encoder: its level is to change and the zstd frame to
	 * end with the next piece (restart, to restart_level), or it has
	 * (in_worker; -v tells with the first piece after: announce); level
	 * is always the one the next piece goes at */
	bool restart, in_worker, announce;
	int restart_level;
};

/* What a codec's state is opened for. */
struct codec_args {
	int level;
	bool decoding;
	int window_log; /* zstd-long */
};

/*
 * A codec is one row of the table below and four functions: open (the
 * state for compressing or for decompressing), close, squeeze (compress n
 * bytes into x->buf, at most cap bytes: *clen 0 if they do not fit) and
 * expand (decompress into x->buf, at most limit bytes, refusing more).
 * Its number is written in the layer's parameters (mig-stream(5)). A
 * stream codec's frames depend on the ones before (one at a time).
 */
struct codec {
	uint8_t id;
	const char *name;
	int min, max, def; /* levels */
	const char *levels;
	bool stream;
	void *(*open)(const struct codec_args *a);
	void (*close)(void *state, bool decoding);
	int (*squeeze)(struct fctx *x, const uint8_t *p, size_t n, size_t cap,
		       size_t *clen, struct mig_err *e);
	int (*expand)(struct fctx *x, const uint8_t *body, size_t blen,
		      size_t limit, size_t *plen, struct mig_err *e);
};

/* ---- zstd ------------------------------------------------------------------ */

static void *zstd_open(const struct codec_args *a)
{
	if (a->decoding)
		return ZSTD_createDCtx();
	ZSTD_CCtx *z = ZSTD_createCCtx();
	if (z && (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, a->level)) ||
		  ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0)))) {
		ZSTD_freeCCtx(z);
		return NULL;
	}
	return z;
}

static void zstd_close(void *state, bool decoding)
{
	if (decoding)
		ZSTD_freeDCtx(state);
	else
		ZSTD_freeCCtx(state);
}

static int zstd_squeeze(struct fctx *x, const uint8_t *p, size_t n, size_t cap,
			size_t *clen, struct mig_err *e)
{
	size_t r = ZSTD_compress2(x->state, x->buf, cap, p, n);

	if (ZSTD_isError(r)) {
		if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
			return 0;
		return mig_err_set(e, MIG_EXIT_SYS, "zstd: %s", ZSTD_getErrorName(r));
	}
	*clen = r;
	return 0;
}

static int zstd_expand(struct fctx *x, const uint8_t *body, size_t blen,
		       size_t limit, size_t *plen, struct mig_err *e)
{
	unsigned long long cs = ZSTD_getFrameContentSize(body, blen);

	if (cs == ZSTD_CONTENTSIZE_ERROR)
		return mig_err_set(e, MIG_EXIT_DATA, "zstd: not a zstd frame");
	if (cs == ZSTD_CONTENTSIZE_UNKNOWN)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "zstd: the frame does not say its size");
	if (cs > limit)
		return mig_err_set(e, MIG_EXIT_DATA, "frame decodes to %llu bytes, "
				   "over the limit of %zu", cs, limit);
	size_t fl = ZSTD_findFrameCompressedSize(body, blen);
	if (ZSTD_isError(fl))
		return mig_err_set(e, MIG_EXIT_DATA, "zstd: %s", ZSTD_getErrorName(fl));
	if (fl != blen)
		return mig_err_set(e, MIG_EXIT_DATA, "zstd: %zu bytes after the "
				   "zstd frame", blen - fl);
	size_t r = ZSTD_decompressDCtx(x->state, x->buf, (size_t)cs, body, blen);
	if (ZSTD_isError(r))
		return mig_err_set(e, MIG_EXIT_DATA, "zstd: %s", ZSTD_getErrorName(r));
	*plen = r;
	return 0;
}

/* ---- zlib (RFC 1950), written and read by libdeflate ------------------------ */

static void *zlib_open(const struct codec_args *a)
{
	if (a->decoding)
		return libdeflate_alloc_decompressor();
	return libdeflate_alloc_compressor(a->level);
}

static void zlib_close(void *state, bool decoding)
{
	if (decoding)
		libdeflate_free_decompressor(state);
	else
		libdeflate_free_compressor(state);
}

static int zlib_squeeze(struct fctx *x, const uint8_t *p, size_t n, size_t cap,
			size_t *clen, struct mig_err *e)
{
	(void)e;
	*clen = libdeflate_zlib_compress(x->state, p, n, x->buf, cap);
	return 0;
}

static int zlib_expand(struct fctx *x, const uint8_t *body, size_t blen,
		       size_t limit, size_t *plen, struct mig_err *e)
{
	size_t used = 0;
	enum libdeflate_result r = libdeflate_zlib_decompress_ex(
		x->state, body, blen, x->buf, limit, &used, plen);

	if (r == LIBDEFLATE_INSUFFICIENT_SPACE)
		return mig_err_set(e, MIG_EXIT_DATA, "frame decodes to more than "
				   "the limit of %zu bytes", limit);
	if (r != LIBDEFLATE_SUCCESS)
		return mig_err_set(e, MIG_EXIT_DATA, "zlib: invalid compressed data");
	if (used != blen)
		return mig_err_set(e, MIG_EXIT_DATA, "zlib: %zu bytes after the "
				   "zlib stream", blen - used);
	return 0;
}

/* ---- lz4 (blocks; levels from LZ4_HC_MIN are LZ4 HC) ------------------------ */

/* Decompressing needs no state: a byte stands for "none needed". */
static void *lz4_open(const struct codec_args *a)
{
	if (a->decoding)
		return malloc(1);
	return malloc((size_t)(a->level < LZ4_HC_MIN ? LZ4_sizeofState()
						     : LZ4_sizeofStateHC()));
}

static void lz4_close(void *state, bool decoding)
{
	(void)decoding;
	free(state);
}

static int lz4_squeeze(struct fctx *x, const uint8_t *p, size_t n, size_t cap,
		       size_t *clen, struct mig_err *e)
{
	int r;

	(void)e;
	if (x->level < LZ4_HC_MIN)
		r = LZ4_compress_fast_extState(x->state, (const char *)p,
					       (char *)x->buf, (int)n, (int)cap, 1);
	else
		r = LZ4_compress_HC_extStateHC(x->state, (const char *)p,
					       (char *)x->buf, (int)n, (int)cap,
					       x->level);
	*clen = (size_t)r;
	return 0;
}

static int lz4_expand(struct fctx *x, const uint8_t *body, size_t blen,
		      size_t limit, size_t *plen, struct mig_err *e)
{
	int r = LZ4_decompress_safe((const char *)body, (char *)x->buf, (int)blen,
				    (int)limit);

	if (r < 0)
		return mig_err_set(e, MIG_EXIT_DATA, "lz4: invalid compressed data, "
				   "or it decodes to more than the limit of %zu "
				   "bytes", limit);
	*plen = (size_t)r;
	return 0;
}

/* ---- zstd-long: one zstd stream through the frames ---------------------------- */

/* zstd-long's window and tables in huge pages (hugemem.c) */
static const ZSTD_customMem huge_mem = { mig_huge_alloc, mig_huge_free, NULL };

static void *zlong_open(const struct codec_args *a)
{
	if (a->decoding) {
		ZSTD_DCtx *d = ZSTD_createDCtx_advanced(huge_mem);
		if (d && ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax,
							     a->window_log))) {
			ZSTD_freeDCtx(d);
			return NULL;
		}
		return d;
	}
	/* In this thread: a zstd worker would cost a third more CPU for the
	 * same bytes (the input copied into its buffer, wake-ups as it
	 * compresses, this thread taking its locks over and over while it
	 * waits; README, Real links). An adapting encoder gets one when its
	 * level first changes (zlong_restart). */
	ZSTD_CCtx *z = ZSTD_createCCtx_advanced(huge_mem);
	if (z && (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, a->level)) ||
		  ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0)) ||
		  ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_enableLongDistanceMatching, 1)) ||
		  ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, a->window_log)))) {
		ZSTD_freeCCtx(z);
		return NULL;
	}
	return z;
}

/* Only zstd's threaded mode changes a level within a zstd frame, so the
 * first change ends the frame (with this piece) and the next starts in
 * one zstd worker (more were slower: with a flush every frame and long
 * matching, which zstd runs serially, they only wait for each other, and
 * the pipeline's other stages want the second core). The new frame
 * starts without a window: repeats of what came before cost their bytes
 * once more, once in a stream, early (the level moves at the first look,
 * where the link is slow); where it never moves, on a fast link, no
 * worker ever costs its CPU. */
static int zlong_restart(struct fctx *x, struct mig_err *e)
{
	size_t r = ZSTD_CCtx_setParameter(x->state, ZSTD_c_nbWorkers, 1);

	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(x->state, ZSTD_c_compressionLevel,
					   x->restart_level);
	if (ZSTD_isError(r))
		return mig_err_set(e, MIG_EXIT_SYS, "zstd: %s", ZSTD_getErrorName(r));
	x->level = x->restart_level;
	x->restart = false;
	x->in_worker = x->announce = true;
	return 0;
}

/* The frame's bytes into the stream, flushed: the piece a decoder can
 * decode on its own once it has the pieces before. Never "does not fit":
 * cap is zstd's bound. */
static int zlong_squeeze(struct fctx *x, const uint8_t *p, size_t n, size_t cap,
			 size_t *clen, struct mig_err *e)
{
	ZSTD_inBuffer in = { p, n, 0 };
	ZSTD_outBuffer out = { x->buf, cap, 0 };
	ZSTD_EndDirective how = x->restart ? ZSTD_e_end : ZSTD_e_flush;
	size_t left;

	do {
		left = ZSTD_compressStream2(x->state, &out, &in, how);
		if (ZSTD_isError(left))
			return mig_err_set(e, MIG_EXIT_SYS, "zstd: %s",
					   ZSTD_getErrorName(left));
	} while (left != 0 && out.pos < out.size);
	if (left != 0)
		return mig_err_set(e, MIG_EXIT_SYS, "zstd: a flushed frame over "
				   "its bound");
	*clen = out.pos;
	return x->restart ? zlong_restart(x, e) : 0;
}

/* A frame's piece of the stream, decoded to at most limit bytes: all of
 * it comes out once all of the piece went in (the encoder flushed). */
static int zlong_expand(struct fctx *x, const uint8_t *body, size_t blen,
			size_t limit, size_t *plen, struct mig_err *e)
{
	ZSTD_inBuffer in = { body, blen, 0 };
	ZSTD_outBuffer out = { x->buf, limit, 0 };
	uint8_t extra;

	while (in.pos < in.size) {
		size_t r = ZSTD_decompressStream(x->state, &out, &in);
		if (ZSTD_isError(r))
			return mig_err_set(e, MIG_EXIT_DATA, "zstd: %s",
					   ZSTD_getErrorName(r));
		if (out.pos == out.size && in.pos < in.size)
			break;
	}
	/* what is left in the decoder, if anything, is over the limit */
	ZSTD_outBuffer more = { &extra, 1, 0 };
	ZSTD_inBuffer rest = { body + in.pos, blen - in.pos, 0 };
	size_t r = ZSTD_decompressStream(x->state, &more, &rest);
	if (!ZSTD_isError(r) && (more.pos || rest.pos < rest.size))
		return mig_err_set(e, MIG_EXIT_DATA, "frame decodes to more than "
				   "the limit of %zu bytes", limit);
	if (ZSTD_isError(r))
		return mig_err_set(e, MIG_EXIT_DATA, "zstd: %s", ZSTD_getErrorName(r));
	*plen = out.pos;
	return 0;
}

/* ---- The table --------------------------------------------------------------- */

static const struct codec codecs[] = {
	{ 4, "zstd-long", -7, 19, 1, "1 to 19, or -7 to -1 for faster ones", true,
	  zlong_open, zstd_close, zlong_squeeze, zlong_expand },
	{ 1, "zstd", -7, 19, 1, "1 to 19, or -7 to -1 for faster ones", false,
	  zstd_open, zstd_close, zstd_squeeze, zstd_expand },
	{ 2, "zlib", 1, 9, 1, "1 to 9", false,
	  zlib_open, zlib_close, zlib_squeeze, zlib_expand },
	{ 3, "lz4", 1, 12, 1, "1 to 12", false,
	  lz4_open, lz4_close, lz4_squeeze, lz4_expand },
};
#define NCODECS (sizeof codecs / sizeof codecs[0])

static const struct codec *codec_by_id(uint8_t id)
{
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i].id == id)
			return &codecs[i];
	return NULL;
}

static const struct codec *codec_by_name(const char *name)
{
	for (size_t i = 0; i < NCODECS; i++)
		if (!strcmp(codecs[i].name, name))
			return &codecs[i];
	return NULL;
}

/* "zstd, zlib or lz4", from the table */
static void codec_names(char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < NCODECS && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s",
				       i == 0 ? "" : i + 1 == NCODECS ? " or " : ", ",
				       codecs[i].name);
}

/* ---- The layer --------------------------------------------------------------- */

struct compress {
	const struct codec *codec;
	int level;
	bool level_set;
	bool decoding;
	size_t frame_size; /* most plain bytes of a DATA frame */
	int window_log;    /* zstd-long */
	int adapt;         /* --adapt 1, --no-adapt 0, -1: where output is no file */
	const double *output_wait; /* the library's: see mig_encode_args */
};

/* A compressed frame's tag covers its body too, so that every flipped
 * byte is reported, even one the codec would not notice (zstd's window
 * size, deflate's padding bits) and that decodes to the right bytes. */
static uint64_t body_tag(const uint8_t *body, size_t len, uint64_t plain_tag)
{
	return XXH3_64bits_withSeed(body, len, plain_tag);
}

static void *compress_create(void)
{
	struct compress *c = calloc(1, sizeof *c);

	if (c) {
		c->codec = &codecs[0]; /* zstd-long */
		c->level = c->codec->def;
		c->frame_size = DEFAULT_FRAME_SIZE;
		c->adapt = -1;
	}
	return c;
}

static void compress_destroy(void *st)
{
	free(st);
}

static int check_level(const struct compress *c, struct mig_err *e)
{
	const struct codec *k = c->codec;

	if (c->level < k->min || c->level > k->max || c->level == 0)
		return mig_err_set(e, MIG_EXIT_USAGE,
				   "-l: '%d' is not a level of %s (%s)",
				   c->level, k->name, k->levels);
	return 0;
}

static int compress_set_option(void *st, const struct mig_option *opt,
			       const char *arg, struct mig_err *e)
{
	struct compress *c = st;

	if (!strcmp(opt->long_name, "adapt") || !strcmp(opt->long_name, "no-adapt")) {
		c->adapt = !strcmp(opt->long_name, "adapt");
		return 0;
	}
	if (opt->short_name == 'a') {
		const struct codec *k = codec_by_name(arg);
		if (!k) {
			char names[64];
			codec_names(names, sizeof names);
			return mig_err_set(e, MIG_EXIT_USAGE, "-a: unknown codec "
					   "'%s' (%s)", arg, names);
		}
		c->codec = k;
		if (!c->level_set) {
			c->level = k->def;
			return 0;
		}
		return check_level(c, e); /* a -l given before -a */
	}
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < INT_MIN || v > INT_MAX)
		return mig_err_set(e, MIG_EXIT_USAGE,
				   "-l: '%s' is not a number", arg);
	c->level = (int)v;
	c->level_set = true;
	return check_level(c, e);
}

static int compress_encode_init(void *st, struct mig_encode_args *a,
				uint8_t *params, size_t *len, struct mig_err *e)
{
	struct compress *c = st;

	c->decoding = false;
	if (c->codec->stream && !a->frame_size_given)
		a->frame_size = LONG_FRAME_SIZE;
	c->frame_size = a->frame_size;
	c->output_wait = a->output_wait;
	if (c->adapt == 1 && !c->codec->stream)
		return mig_err_set(e, MIG_EXIT_USAGE, "--adapt is for zstd-long");
	if (c->adapt == -1) /* a pipe to a link adapts; a checkpoint file does not */
		c->adapt = c->codec->stream && !a->output_is_file && !c->level_set;
	c->window_log = c->codec->stream ? LONG_WINDOW_LOG : 0;
	params[0] = c->codec->id;
	params[1] = (uint8_t)(int8_t)c->level;
	params[2] = (uint8_t)c->window_log;
	params[3] = c->adapt > 0; /* informational: a decoder needs neither */
	mig_put_le32(params + 4, (uint32_t)c->frame_size);
	*len = PARAMS_LEN;
	return 0;
}

/* A stream codec's frames go one at a time. */
static int compress_max_threads(const void *st)
{
	return ((const struct compress *)st)->codec->stream ? 1 : 0;
}

static int compress_decode_init(void *st, const uint8_t *params, size_t len,
				struct mig_err *e)
{
	struct compress *c = st;

	c->decoding = true;
	if (len != PARAMS_LEN)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "unsupported compress parameters (%zu bytes, "
				   "not %u)", len, PARAMS_LEN);
	if (!(c->codec = codec_by_id(params[0])))
		return mig_err_set(e, MIG_EXIT_DATA, "unknown codec %u",
				   params[0]);
	if (!c->codec->stream && mig_get_le16(params + 2) != 0)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "reserved parameter bytes are not zero");
	if (c->codec->stream && (params[2] < 10 || params[2] > LONG_WINDOW_LOG ||
				 params[3] > 1))
		return mig_err_set(e, MIG_EXIT_DATA, "zstd-long window 2^%u is not "
				   "from 2^10 to 2^%u (or adapt byte %u)", params[2],
				   LONG_WINDOW_LOG, params[3]);
	c->window_log = params[2];
	uint32_t fs = mig_get_le32(params + 4);
	if (fs == 0 || fs > MIG_FRAME_DATA_MAX)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "frame size %u is not from 1 to %u", fs,
				   MIG_FRAME_DATA_MAX);
	c->level = (int8_t)params[1];
	c->frame_size = fs;
	return 0;
}

static void compress_ctx_destroy(void *ctx)
{
	struct fctx *x = ctx;

	if (!x)
		return;
	if (x->adapt.on && mig_verbose) /* -v: what the link made of it */
		mig_warn("zstd-long levels %d to %d, adapted to the output",
			 x->adapt.low, x->adapt.high);
	if (x->state)
		x->codec->close(x->state, x->decoding);
	free(x->buf);
	free(x);
}

static void *compress_ctx_create(void *st, struct mig_err *e)
{
	const struct compress *c = st;
	struct fctx *x = calloc(1, sizeof *x);

	if (!x)
		goto oom;
	x->codec = c->codec;
	x->level = c->level;
	x->decoding = c->decoding;
	x->frame_size = c->frame_size;
	/* the largest plain payload: a DATA frame, or a META frame */
	x->cap = c->frame_size > META_PLAIN_MAX ? c->frame_size : META_PLAIN_MAX;
	if (!c->decoding) /* compressed bytes and the tag; a stream's may grow */
		x->cap = (c->codec->stream ? ZSTD_compressBound(x->cap) : x->cap) + TAG_LEN;
	struct codec_args a = { c->level, c->decoding, c->window_log };
	if (!(x->buf = malloc(x->cap)) || !(x->state = x->codec->open(&a)))
		goto oom;
	x->adapt = (struct adapt){ .on = c->adapt > 0 && c->output_wait,
				   .min = c->level, .max = ADAPT_MAX,
				   .low = c->level, .high = c->level,
				   .output_wait = c->output_wait, .since = mig_now(),
				   .waited = c->output_wait ? *c->output_wait : 0 };
	if (x->adapt.on)
		mig_spare_cpus(&x->adapt.cpu); /* the mark the first look starts from */
	return x;
oom:
	compress_ctx_destroy(x);
	mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	return NULL;
}

/* Every ADAPT_PERIOD: one level up while writing the output waited for a
 * quarter of the time or more and the machine had CPU to spare (the link
 * is slower than the compressor, so CPU spent on ratio is time won on the
 * wire); one down while it hardly waited (the compressor sets the pace)
 * or the CPUs were all busy (the stages after it wait for CPU, not for
 * the link: a level up would slow them). Waiting for input says nothing
 * of the link, and moves nothing. Where the spare CPU is unknown (no
 * /proc), back-pressure alone decides. */
static void adapt_level(struct fctx *x)
{
	struct adapt *a = &x->adapt;
	double now = mig_now(), wait, spare;
	int level = x->level;

	if (now - a->since < ADAPT_PERIOD)
		return;
	wait = (*a->output_wait - a->waited) / (now - a->since);
	spare = mig_spare_cpus(&a->cpu);
	if (wait > 0.25 && level < a->max && (spare < 0 || spare >= ADAPT_SPARE_UP))
		level++;
	else if ((wait < 0.02 || (spare >= 0 && spare < ADAPT_SPARE_DOWN)) &&
		 level > a->min)
		level--;
	a->since = now;
	a->waited = *a->output_wait;
	if (level == x->level)
		return;
	if (!x->in_worker) { /* after the next piece (zlong_restart) */
		x->restart = true;
		x->restart_level = level;
	} else if (!ZSTD_isError(ZSTD_CCtx_setParameter(x->state,
							ZSTD_c_compressionLevel, level)))
		x->level = level;
}

/* A DATA frame of a stream codec: always its piece of the stream, however
 * large (the decoder's window must hold every byte). */
static int encode_stream(struct fctx *x, const struct mig_frame *in,
			 size_t *clen, struct mig_err *e)
{
	int level = x->level; /* this piece's, whatever the squeeze changes */

	if (x->announce && mig_verbose) /* where a decoder's window starts again */
		mig_warn("zstd-long: level %d from frame %" PRIu64 " on, in a zstd worker",
			 level, in->index);
	x->announce = false;
	if (x->codec->squeeze(x, in->data, in->len, x->cap - TAG_LEN, clen, e) < 0)
		return -1;
	/* -v's levels are the ones pieces went at: a change decided with
	 * the last piece is never used */
	x->adapt.low = level < x->adapt.low ? level : x->adapt.low;
	x->adapt.high = level > x->adapt.high ? level : x->adapt.high;
	if (x->adapt.on)
		adapt_level(x);
	return 0;
}

static int compress_encode(void *ctx, struct mig_frame *in, size_t tailroom,
			   const uint8_t **out, size_t *out_len,
			   uint8_t *flags, struct mig_err *e)
{
	struct fctx *x = ctx;
	uint8_t *plain = (uint8_t *)in->data;
	uint64_t tag = mig_frame_tag(in, plain, in->len);
	size_t clen = 0;

	if (x->codec->stream) {
		/* DATA into the stream; META and END stored, outside it */
		if (in->type == MIG_FRAME_DATA && encode_stream(x, in, &clen, e) < 0)
			return -1;
		if (in->type == MIG_FRAME_DATA) {
			mig_put_le64(x->buf + clen, body_tag(x->buf, clen, tag));
			*out = x->buf;
			*out_len = clen + TAG_LEN;
			return 0;
		}
	/* a few bytes never shrink: a frame header alone is more; and a
	 * frame must shrink to be kept compressed (cap n - 1) */
	} else if (in->len > 16 && in->len <= x->cap - TAG_LEN &&
		   x->codec->squeeze(x, plain, in->len, in->len - 1, &clen, e) < 0)
		return -1;
	if (clen > 0) {
		mig_put_le64(x->buf + clen, body_tag(x->buf, clen, tag));
		*out = x->buf;
		*out_len = clen + TAG_LEN;
		return 0;
	}
	if (tailroom < TAG_LEN)
		return mig_err_set(e, MIG_EXIT_SYS, "no room for the tag");
	mig_put_le64(plain + in->len, tag);
	*flags = FLAG_STORED;
	*out = plain;
	*out_len = in->len + TAG_LEN;
	return 0;
}

static size_t plain_limit(const struct fctx *x, uint8_t type)
{
	return type == MIG_FRAME_DATA   ? x->frame_size
	       : type == MIG_FRAME_META ? META_PLAIN_MAX
					: END_PLAIN_MAX;
}

static int compress_decode(void *ctx, const struct mig_frame *in,
			   const uint8_t **out, size_t *out_len,
			   struct mig_err *e)
{
	struct fctx *x = ctx;
	size_t limit = plain_limit(x, in->type), n, plen;
	const uint8_t *plain;

	if (in->flags & ~FLAG_STORED)
		return mig_err_set(e, MIG_EXIT_DATA, "unknown frame flags 0x%02x",
				   in->flags);
	if (in->len < TAG_LEN)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "frame too short to hold its content check");
	n = in->len - TAG_LEN;
	if ((in->flags & FLAG_STORED) && x->codec->stream && in->type == MIG_FRAME_DATA)
		return mig_err_set(e, MIG_EXIT_DATA, "a stored DATA frame in a "
				   "zstd-long layer (its DATA is one stream)");
	if (in->flags & FLAG_STORED) {
		if (n > limit)
			return mig_err_set(e, MIG_EXIT_DATA,
					   "stored frame of %zu bytes is over "
					   "the limit of %zu", n, limit);
		plain = in->data;
		plen = n;
	} else {
		if (x->codec->expand(x, in->data, n, limit, &plen, e) < 0)
			return -1;
		plain = x->buf;
	}
	uint64_t want = mig_get_le64(in->data + n), got = mig_frame_tag(in, plain, plen);
	if (!(in->flags & FLAG_STORED))
		got = body_tag(in->data, n, got);
	if (mig_frame_tag_check(want, got, "content check failed", e) < 0)
		return -1;
	*out = plain;
	*out_len = plen;
	return 0;
}

static void compress_describe(const uint8_t *params, size_t len, char *buf,
			      size_t buflen)
{
	const struct codec *k = len == PARAMS_LEN ? codec_by_id(params[0]) : NULL;
	uint32_t fs;
	char size[32];

	if (!k) {
		snprintf(buf, buflen, "codec=unknown");
		return;
	}
	fs = mig_get_le32(params + 4);
	if (fs % (1u << 20) == 0)
		snprintf(size, sizeof size, "%uM", fs >> 20);
	else if (fs % 1024 == 0)
		snprintf(size, sizeof size, "%uK", fs >> 10);
	else
		snprintf(size, sizeof size, "%u", fs);
	snprintf(buf, buflen, "codec=%s level=%d%s frame-size=%s%s", k->name,
		 (int8_t)params[1], k->stream && params[3] ? " (adaptive)" : "",
		 size, k->stream ? " window=" : "");
	if (k->stream)
		mig_format_bytes(1ull << params[2], buf + strlen(buf),
				 buflen - strlen(buf));
}

static const struct mig_option compress_options[] = {
	{ "algo", 'a', "ALGO", "zstd-long (default), zstd, zlib or lz4",
	  MIG_OPT_ENCODE },
	{ "level", 'l', "N", "level: zstd -7..19, zlib 1..9, lz4 1..12 "
			     "(default 1)", MIG_OPT_ENCODE },
	{ "adapt", 0, NULL, "zstd-long: the level follows the link (default "
	  "where the output is not a file)", MIG_OPT_ENCODE },
	{ "no-adapt", 0, NULL, "zstd-long: keep the level -l gives",
	  MIG_OPT_ENCODE },
	{ NULL, 0, NULL, NULL, MIG_OPT_BOTH },
};

MIG_FILTER(compress) {
	.name = "compress",
	.decode_name = "decompress",
	.kind = MIG_KIND_COMPRESS,
	.summary = "Compress a stream in a compress layer (zstd-long, zstd, zlib "
		   "or lz4), or decompress one (-d).",
	.max_overhead = TAG_LEN,
	.frame_size = DEFAULT_FRAME_SIZE,
	.frame_flags = FLAG_STORED, /* on any frame: META and END too */
	.options = compress_options,
	.create = compress_create,
	.destroy = compress_destroy,
	.set_option = compress_set_option,
	.frame_ctx_create = compress_ctx_create,
	.frame_ctx_destroy = compress_ctx_destroy,
	.max_threads = compress_max_threads,
	.encode_init = compress_encode_init,
	.encode = compress_encode,
	.decode_init = compress_decode_init,
	.decode = compress_decode,
	.describe = compress_describe,
};

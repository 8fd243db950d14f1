/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test-channel.c - unit tests of libmigchan: the format, framing, limits
 * and each error path, plus the checksum filter and the test vectors.
 * Run from the repository root (it reads tests/vectors/).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>
#include <xxhash.h>

#include "../../channel/header.h"
#include "../../channel/source-private.h"
#include "all.h"
#include "keyfile.h"
#include "tap.h"

extern const struct mig_filter mig_filter_checksum;
static const struct mig_filter *const CK = &mig_filter_checksum;

/* ---- A filter that does nothing, to craft layers the checksum would
 * refuse before the channel's own checks are reached. ---------------- */

static void *id_create(void) { return malloc(1); }
static void id_destroy(void *st) { free(st); }
static int id_init(void *st, struct mig_encode_args *a, uint8_t *p,
		   size_t *len, struct mig_err *e)
{
	(void)st, (void)a, (void)p, (void)e;
	*len = 0;
	return 0;
}
static int id_encode(void *st, struct mig_frame *in, size_t room,
		     const uint8_t **out, size_t *outlen, uint8_t *flags,
		     struct mig_err *e)
{
	(void)st, (void)room, (void)flags, (void)e;
	*out = in->data;
	*outlen = in->len;
	return 0;
}
static int id_dinit(void *st, const uint8_t *p, size_t len, struct mig_err *e)
{
	(void)st, (void)p, (void)len, (void)e;
	return 0;
}
static int id_decode(void *st, const struct mig_frame *in, const uint8_t **out,
		     size_t *outlen, struct mig_err *e)
{
	(void)st, (void)e;
	*out = in->data;
	*outlen = in->len;
	return 0;
}
static const struct mig_filter identity = {
	.name = "identity", .kind = 250, .summary = "test",
	.create = id_create, .destroy = id_destroy, .encode_init = id_init,
	.encode = id_encode,
	.decode_init = id_dinit, .decode = id_decode,
};

/* ---- A filter with frame contexts, whose frames finish out of order:
 * XOR with the frame index, an 8-byte tag of the index, random delays. -- */

static int par_ctx_live;

static void *par_ctx_create(void *st, struct mig_err *e)
{
	(void)st, (void)e;
	__atomic_add_fetch(&par_ctx_live, 1, __ATOMIC_SEQ_CST);
	return malloc(1);
}
static void par_ctx_destroy(void *ctx)
{
	__atomic_sub_fetch(&par_ctx_live, 1, __ATOMIC_SEQ_CST);
	free(ctx);
}
static void jitter(uint64_t index)
{
	struct timespec t = { 0, (long)((index * 7919) % 5) * 300000 };
	nanosleep(&t, NULL);
}
static int par_encode(void *ctx, struct mig_frame *in, size_t room,
		      const uint8_t **out, size_t *outlen, uint8_t *flags,
		      struct mig_err *e)
{
	uint8_t *p = (uint8_t *)in->data;
	(void)ctx, (void)room, (void)flags, (void)e;
	jitter(in->index);
	for (size_t i = 0; i < in->len; i++)
		p[i] ^= (uint8_t)in->index;
	mig_put_le64(p + in->len, in->index);
	*out = p;
	*outlen = in->len + 8;
	return 0;
}
static int par_decode(void *ctx, const struct mig_frame *in,
		      const uint8_t **out, size_t *outlen, struct mig_err *e)
{
	uint8_t *p = (uint8_t *)in->data;
	(void)ctx;
	jitter(in->index);
	if (in->len < 8 || mig_get_le64(p + in->len - 8) != in->index)
		return mig_err_set(e, MIG_EXIT_DATA, "tag mismatch");
	for (size_t i = 0; i < in->len - 8; i++)
		p[i] ^= (uint8_t)in->index;
	*out = p;
	*outlen = in->len - 8;
	return 0;
}
static const struct mig_filter parallel = {
	.name = "parallel", .kind = 251, .summary = "test", .max_overhead = 8,
	.create = id_create, .destroy = id_destroy,
	.frame_ctx_create = par_ctx_create, .frame_ctx_destroy = par_ctx_destroy,
	.encode_init = id_init, .encode = par_encode,
	.decode_init = id_dinit, .decode = par_decode,
};

static struct mig_src *mem_src(const void *p, size_t len, size_t chunk)
{
	return mig_src_mem(p, len, chunk, "memory");
}

/* ---- Encoding into memory, decoding from memory ----------------------- */

struct buf {
	uint8_t *p;
	size_t len;
};

static struct buf slurp_fd(int fd)
{
	struct buf b = { 0 };
	off_t end = lseek(fd, 0, SEEK_END);
	b.p = malloc((size_t)end + 1);
	b.len = (size_t)pread(fd, b.p, (size_t)end, 0);
	return b;
}

/* Encode data in frames of fs bytes with the given META pairs. */
static struct buf encode_t(const struct mig_filter *f, const void *data,
			   size_t len, size_t fs, const char *const *meta,
			   int threads)
{
	FILE *tmp = tmpfile();
	int fd = fileno(tmp);
	struct mig_err e = { 0 };
	void *st = f->create();
	struct mig_sink *k = mig_sink_open(fd, f, st, fs, threads, &e);
	struct buf b = { 0 };

	if (!k)
		goto out;
	for (; meta && meta[0]; meta += 2)
		if (mig_sink_meta(k, meta[0], meta[1], &e) < 0)
			goto out;
	for (size_t at = 0; at < len; at += fs) {
		size_t n = len - at < fs ? len - at : fs;
		uint8_t *frame = mig_sink_buffer(k, &e);
		if (!frame)
			goto out;
		memcpy(frame, (const uint8_t *)data + at, n);
		if (mig_sink_data(k, n, &e) < 0)
			goto out;
	}
	if (mig_sink_end(k, &e) == 0)
		b = slurp_fd(fd);
out:
	if (e.msg[0])
		printf("# encode: %s\n", e.msg);
	mig_sink_free(k);
	f->destroy(st);
	fclose(tmp);
	return b;
}

static struct buf encode(const struct mig_filter *f, const void *data,
			 size_t len, size_t fs, const char *const *meta)
{
	return encode_t(f, data, len, fs, meta, 1);
}

/* Decode; returns 0 or -1 with e set; out gets what was handed out. */
static int decode_t(const struct mig_filter *f, const void *p, size_t len,
		    size_t chunk, struct buf *out, struct mig_err *e,
		    size_t *nmeta, int threads)
{
	struct mig_src *in = mem_src(p, len, chunk);
	void *st = f->create();
	struct mig_src *l = mig_src_layer(in, f, st, threads, e);
	int r;

	out->p = malloc(len + 1);
	out->len = 0;
	memset(e, 0, sizeof *e);
	for (;;) {
		const uint8_t *c;
		size_t n;
		r = mig_src_chunk(l, &c, &n, SIZE_MAX, e);
		if (r <= 0)
			break;
		memcpy(out->p + out->len, c, n);
		out->len += n;
	}
	if (nmeta)
		*nmeta = mig_layer_meta_count(l);
	mig_src_free(l);
	mig_src_free(in);
	f->destroy(st);
	return r;
}

static int decode(const struct mig_filter *f, const void *p, size_t len,
		  size_t chunk, struct buf *out, struct mig_err *e,
		  size_t *nmeta)
{
	return decode_t(f, p, len, chunk, out, e, nmeta, 1);
}

static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len + 1);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* Append a raw frame to b (which has room). */
static void put_frame(struct buf *b, uint8_t type, const void *p, uint32_t len)
{
	uint8_t *h = b->p + b->len;
	h[0] = type, h[1] = 0, h[2] = h[3] = 0;
	mig_put_le32(h + 4, len);
	memcpy(h + 8, p, len);
	b->len += 8 + len;
}

static struct buf identity_layer(void)
{
	struct buf b = { malloc(1 << 16), 0 };
	b.len = mig_header_build(b.p, identity.kind, NULL, 0);
	return b;
}

static void put_end(struct buf *b, uint64_t bytes, uint64_t frames)
{
	uint8_t t[16];
	mig_put_le64(t, bytes);
	mig_put_le64(t + 8, frames);
	put_frame(b, MIG_FRAME_END, t, 16);
}

/* ---- The filter protocol (mig.h) ------------------------------------ */

/* Each mandatory member left out is refused, by name, before any call. */
static void test_filter_check(void)
{
	static const char *const members[] = {
		"name", "summary", "create", "destroy", "encode_init", "encode",
		"decode_init", "decode",
	};
	struct mig_err e = { 0 };

	ok(mig_filter_check(&identity, &e) == 0, "a filter with every mandatory "
	   "member and no optional one passes the check");
	for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
		struct mig_filter f = identity;
		void **slot[] = {
			(void **)&f.name, (void **)&f.summary, (void **)&f.create,
			(void **)&f.destroy, (void **)&f.encode_init,
			(void **)&f.encode, (void **)&f.decode_init,
			(void **)&f.decode,
		};
		char words[64];
		*slot[i] = NULL;
		memset(&e, 0, sizeof e);
		snprintf(words, sizeof words, "has no %s", members[i]);
		ok(mig_filter_check(&f, &e) < 0 && e.code == MIG_EXIT_SYS,
		   "a filter without %s is refused", members[i]);
		ok_msg(&e, words, "... naming the member");
		/* and the library never calls it: neither side opens */
		struct buf b = identity_layer();
		put_end(&b, 0, 0);
		struct mig_src *in = mem_src(b.p, b.len, 0);
		memset(&e, 0, sizeof e);
		ok(!mig_src_layer(in, &f, NULL, 1, &e) && strstr(e.msg, words),
		   "mig_src_layer refuses it too");
		mig_src_free(in);
		memset(&e, 0, sizeof e);
		ok(!mig_sink_open(1, &f, NULL, 0, 1, &e) && strstr(e.msg, words),
		   "mig_sink_open refuses it too");
		free(b.p);
	}
	struct mig_filter half = parallel;
	half.frame_ctx_destroy = NULL;
	memset(&e, 0, sizeof e);
	ok(mig_filter_check(&half, &e) < 0, "frame contexts come in pairs");
	ok_msg(&e, "only one of frame_ctx_create and frame_ctx_destroy", "... says so");
}

/* A kind without a trailer: END holds its totals and nothing else. */
static void test_no_trailer(void)
{
	struct buf b = identity_layer(), dec;
	struct mig_err e;
	uint8_t t[20] = { 0 };

	put_frame(&b, MIG_FRAME_END, t, sizeof t); /* totals, then 4 bytes */
	ok(decode(&identity, b.p, b.len, 0, &dec, &e, NULL) < 0 &&
	   e.code == MIG_EXIT_DATA, "a trailer where the kind has none is refused");
	ok_msg(&e, "unexpected trailer of 4 bytes in END", "... saying how long");
	free(dec.p);
	free(b.p);
	struct buf enc = encode(&identity, "abc", 3, 2, NULL);
	ok(enc.len && decode(&identity, enc.p, enc.len, 1, &dec, &e, NULL) == 0 &&
	   dec.len == 3 && !memcmp(dec.p, "abc", 3),
	   "a filter without trailer callbacks writes and reads its END");
	free(dec.p);
	free(enc.p);
}

/* One identity per kind: each filter's name, decoder and frame flags are
 * the registry's (channel/detect.c), which decoders name in messages. */
static void test_kinds_agree(void)
{
	size_t n = 0;

	for (unsigned id = 1; id < 256; id++) {
		const struct mig_filter *f = mig_filter_by_kind((uint8_t)id);
		const struct mig_kind *k = mig_kind_by_id((uint8_t)id);
		char peeler[64];
		struct mig_err e = { 0 };
		if (!f && !k)
			continue;
		n++;
		ok(f && k, "kind %u: a filter and a registry entry (%s)", id,
		   f ? f->name : k->name);
		if (!f || !k)
			continue;
		if (f->decode_name)
			snprintf(peeler, sizeof peeler, "mig-%s", f->decode_name);
		else
			snprintf(peeler, sizeof peeler, "mig-%s -d", f->name);
		ok(!strcmp(f->name, k->name), "kind %u: named %s in both", id, k->name);
		/* after the command, what it needs: mig-delta -d --base BASE */
		size_t pl = strlen(peeler);
		ok(!strncmp(peeler, k->peeler, pl) &&
		   (!k->peeler[pl] || k->peeler[pl] == ' '),
		   "kind %u: peeled by %s in both", id, k->peeler);
		ok(f->frame_flags == k->frame_flags, "kind %u: frame flags 0x%02x in "
		   "both", id, k->frame_flags);
		ok(mig_filter_check(f, &e) == 0, "kind %u: the filter follows the "
		   "protocol %s", id, e.msg);
	}
	ok(n == 5, "five kinds (checksum, compress, encrypt, envelope, delta): "
	   "%zu", n);
}

/* ---- Tests --------------------------------------------------------------- */

static void test_sizes(void)
{
	uint64_t v;
	ok(mig_parse_size("4096", &v) == 0 && v == 4096, "size 4096");
	ok(mig_parse_size("64K", &v) == 0 && v == 65536, "size 64K");
	ok(mig_parse_size("1MiB", &v) == 0 && v == 1 << 20, "size 1MiB");
	ok(mig_parse_size("2g", &v) == 0 && v == 2ull << 30, "size 2g");
	ok(mig_parse_size("", &v) < 0, "empty size refused");
	ok(mig_parse_size("-1", &v) < 0, "negative size refused");
	ok(mig_parse_size("1X", &v) < 0, "bad suffix refused");
	ok(mig_parse_size("99999999999999999999", &v) < 0, "overflow refused");
	ok(mig_parse_size("17179869184G", &v) < 0, "shift overflow refused");
	char s[32];
	mig_format_bytes(1536, s, sizeof s);
	ok(strcmp(s, "1.5 KiB") == 0, "format 1536 as 1.5 KiB (%s)", s);
}

static void test_rate_parse(void)
{
	uint64_t v = 0;
	ok(mig_rate_parse("10M", &v) == 0 && v == 10ull << 20, "rate 10M");
	ok(mig_rate_parse("800KiB", &v) == 0 && v == 800ull << 10, "rate 800KiB");
	ok(mig_rate_parse("1", &v) == 0 && v == 1, "rate 1 byte a second");
	ok(mig_rate_parse("0", &v) < 0, "rate 0 refused");
	ok(mig_rate_parse("0K", &v) < 0, "rate 0K refused");
	ok(mig_rate_parse("-5M", &v) < 0, "negative rate refused");
	ok(mig_rate_parse("fast", &v) < 0, "garbage rate refused");
	ok(mig_rate_parse("5Mbit", &v) < 0, "rate in bits refused");
	ok(mig_rate_parse("99999999999999999999", &v) < 0, "rate overflow refused");
	ok(mig_rate_parse("17179869184G", &v) < 0, "rate shift overflow refused");
}

static void test_rate_bucket(void)
{
	struct mig_rate r;
	const double M10 = 10 << 20;

	mig_rate_init(&r, 0, 5.0);
	ok(!mig_rate_on(&r) && !mig_rate_on(NULL), "rate 0 and NULL: off");
	ok(mig_rate_piece(&r, 123456789) == 123456789 &&
	   mig_rate_delay(&r, 123456789, 5.0) == 0, "off: any write, at once");
	mig_rate_init(&r, 10 << 20, 100.0);
	ok(r.depth == M10 / 20 && r.tokens == r.depth,
	   "10M: 1/20 s deep (%.0f), starts full", r.depth);
	ok(mig_rate_piece(&r, 4 << 20) == (size_t)(M10 / 80) &&
	   mig_rate_piece(&r, 100) == 100, "pieces of at most a quarter of the depth");
	ok(mig_rate_delay(&r, 4 << 20, 100.0) == 0, "the first piece goes at once");
	mig_rate_take(&r, (size_t)r.depth);
	double d = mig_rate_delay(&r, 4 << 20, 100.0);
	ok(d > 0.012499 && d < 0.012501, "empty: a quarter bucket in 1/80 s (%.6f)", d);
	ok(mig_rate_delay(&r, 4 << 20, 100.0475) == 0,
	   "a 35 ms overshoot keeps its tokens (%.0f)", r.tokens);
	ok(r.tokens > M10 * 0.0474 && r.tokens < M10 * 0.0476, "tokens of 47.5 ms");
	mig_rate_delay(&r, 1, 200.0);
	ok(r.tokens == r.depth, "after idle: never more than the depth");
	mig_rate_take(&r, (size_t)r.depth + (1 << 20));
	d = mig_rate_delay(&r, 1, 200.0);
	ok(d > 0.09999 && d < 0.10001, "1 MiB owed at 10M: 0.1 s (%.6f)", d);
	ok(mig_rate_delay(&r, 1, 199.0) > 0.0999, "the clock going back adds nothing");
	mig_rate_init(&r, 1ull << 40, 0);
	ok(r.depth == 1 << 20, "1T: 1 MiB deep");
	mig_rate_init(&r, 7, 0);
	ok(r.depth == 1 && mig_rate_piece(&r, 10) == 1, "7 bytes a second: 1 deep");
	mig_rate_init(&r, 100, 0);
	ok(r.depth == 5 && mig_rate_piece(&r, 10) == 1, "100 bytes a second: 5 deep, pieces of 1");
}

/* A writer of 1 MiB frames at 10M for 20 s of a clock that sleeps 0 to
 * 3 ms too long: the total is the rate within 0.5 %, and no 1-second
 * window carries more than 5 % over it. */
static void test_rate_windows(void)
{
	enum { MAXW = 4000 };
	static double at[MAXW];
	static size_t len[MAXW];
	struct mig_rate r;
	const double rate = 10 << 20;
	double t = 0, worst = 0;
	uint64_t total = 0;
	size_t n = 0;

	mig_rate_init(&r, 10 << 20, t);
	while (t < 20 && n < MAXW) {
		size_t left = 1 << 20;
		while (left && n < MAXW) {
			size_t p = mig_rate_piece(&r, left);
			double d = mig_rate_delay(&r, p, t);
			if (d > 0) {
				t += d + (double)(n % 4) * 0.001;
				continue;
			}
			mig_rate_take(&r, p);
			at[n] = t, len[n++] = p;
			total += p, left -= p;
		}
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t w = 0;
		for (size_t j = i; j < n && at[j] < at[i] + 1.0; j++)
			w += len[j];
		if ((double)w / rate > worst)
			worst = (double)w / rate;
	}
	ok(n < MAXW, "pieces: %zu", n);
	double share = (double)total / t / rate;
	ok(share > 0.995 && share < 1.005,
	   "20 s at 10M: %.4f of the rate", (double)total / t / rate);
	ok(worst <= 1.05, "the busiest 1-second window: %.4f of the rate", worst);
}

static void test_rate_write(void)
{
	struct mig_rate r;
	struct mig_err e = { 0 };
	int fds[2];
	static uint8_t buf[300000], back[300000];
	FILE *f = tmpfile();

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 7);
	ok(f != NULL, "a temporary file");
	if (!f)
		return;
	/* 1M: 52428 deep, pieces of 13107: (300000 - 52428) / 2^20 = 0.236 s */
	mig_rate_init(&r, 1 << 20, mig_now());
	double t0 = mig_now();
	int rc = mig_rate_writev(&r, fileno(f), buf, 1000, buf + 1000,
				 sizeof buf - 1000, &e);
	double dt = mig_now() - t0;
	ok(rc == 0, "written at the rate");
	ok(dt > 0.230 && dt < 0.40, "300000 bytes at 1M after a full bucket: %.3f s", dt);
	size_t got = pread(fileno(f), back, sizeof back, 0) == sizeof back &&
		     pread(fileno(f), back, 1, sizeof back) == 0 ? sizeof back : 0;
	ok(got == sizeof buf && memcmp(buf, back, sizeof buf) == 0,
	   "the bytes, whole and in order");
	fclose(f);
	signal(SIGPIPE, SIG_IGN);
	ok(pipe(fds) == 0, "pipe");
	close(fds[0]);
	ok(mig_rate_write(&r, fds[1], buf, 10, &e) < 0 && e.code == MIG_EXIT_IO,
	   "a reader gone: the write's error (%s)", e.msg);
	close(fds[1]);
}

static void test_detect(void)
{
	static const struct { const char *in; size_t len; int type; const char *says; } cases[] = {
		{ "", 0, MIG_INPUT_EMPTY, "empty" },
		{ "QEVM\0\0\0\3", 8, MIG_INPUT_QEMU, "a raw QEMU stream" },
		{ "\x89MIG\1\1", 6, MIG_INPUT_LAYER, "a checksum layer" },
		{ "\x89MI", 3, MIG_INPUT_LAYER, "a truncated mig layer header" },
		{ "\x89MIG\1\x77", 6, MIG_INPUT_LAYER, "unknown kind 119" },
		{ "\x89MIG\2\1", 6, MIG_INPUT_LAYER, "format version 2" },
		{ "hello", 5, MIG_INPUT_UNKNOWN, "it starts 68 65 6c 6c 6f" },
		{ "Q", 1, MIG_INPUT_UNKNOWN, "it starts 51" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (size_t chunk = 1; chunk <= 8; chunk += 7) {
			struct mig_src *s = mem_src(cases[i].in, cases[i].len, chunk);
			struct mig_detect d;
			struct mig_err e = { 0 };
			char what[128];
			int r = mig_detect(s, &d, &e);
			mig_detect_describe(&d, what, sizeof what);
			ok(r == 0 && (int)d.type == cases[i].type &&
			   strstr(what, cases[i].says),
			   "detect case %zu in chunks of %zu: %s", i, chunk, what);
			/* detection does not consume */
			uint8_t back[16];
			long n = mig_src_read(s, back, sizeof back, &e);
			ok(n == (long)cases[i].len &&
			   memcmp(back, cases[i].in, cases[i].len) == 0,
			   "detect case %zu leaves the bytes unread", i);
			mig_src_free(s);
		}
	}
}

/* mig_src_read_idle and mig_detect_idle on a pipe whose writer stays
 * open: what came goes back after the idle time, not before, and never
 * before the first byte; a memory source is never idle. */
static void test_read_idle(void)
{
	struct mig_err e = { 0 };
	uint8_t buf[64];
	bool idle = false;
	int p[2];

	ok(pipe(p) == 0, "pipe");
	struct mig_src *s = mig_src_fd(p[0], "pipe");
	ok(write(p[1], "QE", 2) == 2, "two bytes in");
	struct mig_detect d;
	double t0 = mig_now();
	int r = mig_detect_idle(s, &d, 30, &e);
	double dt = mig_now() - t0;
	ok(r == 0 && d.type == MIG_INPUT_UNKNOWN && d.headlen == 2,
	   "two bytes that start no magic, then idle: not a stream (%zu bytes)",
	   d.headlen);
	ok(dt >= 0.029 && dt < 0.5, "after the idle time: %.3f s", dt);
	t0 = mig_now();
	long n = mig_src_read_idle(s, buf, sizeof buf, 30, &idle, &e);
	dt = mig_now() - t0;
	ok(n == 2 && idle && memcmp(buf, "QE", 2) == 0,
	   "the peeked bytes, then idle: %ld", n);
	ok(dt >= 0.029 && dt < 0.5, "returned after the idle time: %.3f s", dt);
	ok(write(p[1], "abc", 3) == 3 && write(p[1], "def", 3) == 3, "more in");
	n = mig_src_read_idle(s, buf, 4, 30, &idle, &e);
	ok(n == 4 && !idle && memcmp(buf, "abcd", 4) == 0, "full: no idle");
	n = mig_src_read_idle(s, buf, sizeof buf, 30, &idle, &e);
	ok(n == 2 && idle && memcmp(buf, "ef", 2) == 0, "the rest, then idle");
	ok(write(p[1], "xyz", 3) == 3, "the last bytes");
	close(p[1]);
	n = mig_src_read_idle(s, buf, sizeof buf, 30, &idle, &e);
	ok(n == 3 && !idle && memcmp(buf, "xyz", 3) == 0, "the end is not idle");
	n = mig_src_read_idle(s, buf, sizeof buf, 30, &idle, &e);
	ok(n == 0 && !idle, "then the end");
	mig_src_free(s);
	close(p[0]);

	/* a magic cut short by a pause waits for the rest of a header */
	ok(pipe(p) == 0, "pipe");
	s = mig_src_fd(p[0], "pipe");
	ok(write(p[1], "\x89M", 2) == 2, "a magic's first bytes");
	pid_t child = fork();
	if (child == 0) {
		usleep(100000);
		_exit(write(p[1], "IG\1\1", 4) == 4 ? 0 : 1);
	}
	r = mig_detect_idle(s, &d, 10, &e);
	ok(r == 0 && d.type == MIG_INPUT_LAYER && d.headlen >= 4,
	   "a layer whose header came in two pieces: %zu bytes", d.headlen);
	int st;
	ok(waitpid(child, &st, 0) == child && st == 0, "the writer");
	close(p[1]);
	mig_src_free(s);
	close(p[0]);

	struct mig_src *m = mem_src("hello", 5, 2);
	n = mig_src_read_idle(m, buf, sizeof buf, 1, &idle, &e);
	ok(n == 5 && !idle, "memory is never idle: all of it at once");
	mig_src_free(m);
}

static void test_meta_parse(void)
{
	struct mig_meta m;
	struct mig_err e = { 0 };
	ok(mig_meta_parse((const uint8_t *)"vm.name=web-1", 13, &m, &e) == 0 &&
	   strcmp(m.key, "vm.name") == 0 && strcmp(m.value, "web-1") == 0,
	   "META vm.name=web-1 parses");
	mig_meta_clear(&m);
	ok(mig_meta_parse((const uint8_t *)"k=a=b", 5, &m, &e) == 0 &&
	   strcmp(m.value, "a=b") == 0, "META value may hold '='");
	mig_meta_clear(&m);
	ok(mig_meta_parse((const uint8_t *)"k=", 2, &m, &e) == 0 &&
	   m.value_len == 0, "META empty value");
	mig_meta_clear(&m);
	ok(mig_meta_parse((const uint8_t *)"novalue", 7, &m, &e) < 0,
	   "META without '=' refused");
	ok_msg(&e, "no '='", "  ... saying why");
	ok(mig_meta_parse((const uint8_t *)"=v", 2, &m, &e) < 0,
	   "META empty key refused");
	ok(mig_meta_parse((const uint8_t *)"a b=v", 5, &m, &e) < 0,
	   "META key with a space refused");
	ok(mig_meta_parse((const uint8_t *)".k=v", 4, &m, &e) < 0,
	   "META key starting with '.' refused");
	ok(mig_meta_parse((const uint8_t *)"k=a\0b", 5, &m, &e) < 0,
	   "META value with NUL refused");
	char key[80];
	memset(key, 'k', 65);
	strcpy(key + 65, "=v");
	ok(mig_meta_parse((const uint8_t *)key, strlen(key), &m, &e) < 0,
	   "META key of 65 characters refused");
}

static void test_roundtrips(void)
{
	static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 65536, 300000 };
	static const size_t frames[] = { 1, 4096, 65536, 1 << 20 };
	uint8_t *data = pattern(300000);

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		for (size_t j = 0; j < sizeof frames / sizeof frames[0]; j++) {
			if (frames[j] == 1 && sizes[i] > 5000)
				continue;
			struct buf enc = encode(CK, data, sizes[i], frames[j], NULL);
			struct buf dec;
			struct mig_err e;
			int r = decode(CK, enc.p, enc.len, 7919, &dec, &e, NULL);
			ok(r == 0 && dec.len == sizes[i] &&
			   memcmp(dec.p, data, sizes[i]) == 0,
			   "checksum round trip: %zu bytes in frames of %zu",
			   sizes[i], frames[j]);
			free(enc.p);
			free(dec.p);
		}
	free(data);
}

/* Decoding must hand out only a prefix of the original, and fail. */
static void expect_fail(const char *what, const struct buf *in,
			const uint8_t *orig, size_t origlen, const char *words)
{
	struct buf dec;
	struct mig_err e;
	int r = decode(CK, in->p, in->len, 65536, &dec, &e, NULL);
	ok(r < 0 && e.code == MIG_EXIT_DATA, "%s: refused", what);
	ok_msg(&e, words, "%s: says '%s'", what, words);
	ok(dec.len <= origlen && memcmp(dec.p, orig, dec.len) == 0,
	   "%s: output (%zu bytes) is a prefix of the original", what, dec.len);
	free(dec.p);
}

static void test_checksum_damage(void)
{
	size_t len = 10 * 4096, fs = 4096, fl = 8 + fs + 8;
	uint8_t *data = pattern(len);
	struct buf enc = encode(CK, data, len, fs, NULL);
	size_t hl = MIG_HEADER_FIXED + 1 + MIG_HEADER_CHECK;
	struct buf b = { malloc(enc.len + fl), 0 };

	ok(enc.len == hl + 10 * fl + 8 + 16 + 16 + 8,
	   "layer size is header + frames + END (%zu)", enc.len);

	/* every byte position of a frame, flipped in turn (sampled) */
	int all = 1;
	for (size_t at = hl; at < enc.len; at += 97) {
		memcpy(b.p, enc.p, enc.len);
		b.len = enc.len;
		b.p[at] ^= 0x01;
		struct buf dec;
		struct mig_err e;
		int r = decode(CK, b.p, b.len, 65536, &dec, &e, NULL);
		if (r == 0 || dec.len > len || memcmp(dec.p, data, dec.len) != 0) {
			printf("# flip at %zu not caught (%s)\n", at, e.msg);
			all = 0;
		}
		free(dec.p);
	}
	ok(all, "a flipped bit anywhere after the header is refused, prefix only");

	memcpy(b.p, enc.p, enc.len);
	b.len = enc.len;
	b.p[hl + 3 * fl + 100] ^= 0x80;
	expect_fail("flipped bit in frame 3", &b, data, len, "frame 3 (offset");
	expect_fail("flipped bit in frame 3", &b, data, len, "checksum mismatch");

	memcpy(b.p, enc.p, hl + 2 * fl);
	memcpy(b.p + hl + 2 * fl, enc.p + hl + 3 * fl, enc.len - hl - 3 * fl);
	b.len = enc.len - fl;
	expect_fail("dropped frame 2", &b, data, len, "frame 2");

	memcpy(b.p, enc.p, hl + 3 * fl);
	memcpy(b.p + hl + 3 * fl, enc.p + hl + 2 * fl, enc.len - hl - 2 * fl);
	b.len = enc.len + fl;
	expect_fail("repeated frame 2", &b, data, len, "checksum mismatch");

	memcpy(b.p, enc.p, enc.len);
	memcpy(b.p + hl + 4 * fl, enc.p + hl + 5 * fl, fl);
	memcpy(b.p + hl + 5 * fl, enc.p + hl + 4 * fl, fl);
	b.len = enc.len;
	expect_fail("frames 4 and 5 swapped", &b, data, len, "frame 4");

	for (size_t cut = 0; cut < enc.len; cut += 331) {
		struct buf c = { enc.p, cut };
		char what[64];
		snprintf(what, sizeof what, "cut at %zu", cut);
		expect_fail(what, &c, data, len,
			    cut == 0 ? "empty" : "truncated");
	}
	struct buf c = { enc.p, enc.len - 1 };
	expect_fail("last byte cut", &c, data, len, "truncated");

	memcpy(b.p, enc.p, enc.len);
	b.p[enc.len] = 0;
	b.len = enc.len + 1;
	expect_fail("a byte after END", &b, data, len, "data after the END frame");
	b.len = 2 * enc.len;
	b.p = realloc(b.p, b.len);
	memcpy(b.p, enc.p, enc.len);
	memcpy(b.p + enc.len, enc.p, enc.len);
	expect_fail("two layers back to back", &b, data, len, "data after the END");

	free(b.p);
	free(enc.p);
	free(data);
}

static void test_wrong_input(void)
{
	uint8_t *data = pattern(1000);
	struct buf ck = encode(CK, data, 1000, 4096, NULL);
	struct buf dec;
	struct mig_err e;

	int r = decode(&identity, ck.p, ck.len, 64, &dec, &e, NULL);
	ok(r < 0 && e.code == MIG_EXIT_DATA, "wrong layer refused");
	ok_msg(&e, "input is a checksum layer; run mig-checksum -d first",
	       "wrong layer names the command that peels it");
	ok(dec.len == 0, "wrong layer: nothing written");
	free(dec.p);

	r = decode(CK, "QEVM\0\0\0\3\7", 9, 64, &dec, &e, NULL);
	ok(r < 0, "raw QEMU stream refused");
	ok_msg(&e, "input is a raw QEMU stream, not a checksum layer",
	       "raw QEMU stream named as such");
	free(dec.p);

	ck.p[6] = 1; /* flags */
	r = decode(CK, ck.p, ck.len, 64, &dec, &e, NULL);
	ok(r < 0, "unknown header flags refused");
	ok_msg(&e, "unknown flags", "  ... saying so");
	free(dec.p);
	ck.p[6] = 0;

	ck.p[12] = 9; /* the hash parameter, check now wrong */
	r = decode(CK, ck.p, ck.len, 64, &dec, &e, NULL);
	ok_msg(&e, "layer header is corrupt", "corrupt header parameter refused");
	free(dec.p);
	/* same, with a valid header check: the filter refuses the value */
	uint8_t h[MIG_HEADER_MAX];
	uint8_t bad = 9;
	size_t hl = mig_header_build(h, 1, &bad, 1);
	memcpy(ck.p, h, hl);
	r = decode(CK, ck.p, ck.len, 64, &dec, &e, NULL);
	ok_msg(&e, "unsupported checksum parameters", "unknown hash refused");
	free(dec.p);

	mig_put_le32(ck.p + 8, MIG_PARAMS_MAX + 1);
	r = decode(CK, ck.p, ck.len, 64, &dec, &e, NULL);
	ok_msg(&e, "parameter length 4097 exceeds", "huge parameter length refused");
	free(dec.p);
	free(ck.p);
	free(data);
}

static void test_framing_limits(void)
{
	struct buf b, dec;
	struct mig_err e;
	size_t n;

	b = identity_layer();
	put_frame(&b, MIG_FRAME_DATA, "abc", 3);
	put_end(&b, 3, 1);
	ok(decode(&identity, b.p, b.len, 1, &dec, &e, NULL) == 0 &&
	   dec.len == 3 && memcmp(dec.p, "abc", 3) == 0,
	   "hand-made layer decodes, one byte at a time");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	uint8_t *h = b.p + b.len;
	put_frame(&b, MIG_FRAME_DATA, "", 0);
	mig_put_le32(h + 4, 0xffffffffu);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "frame length 0xffffffff refused");
	ok_msg(&e, "exceeds the limit of", "  ... before allocating it");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	h = b.p + b.len;
	put_frame(&b, MIG_FRAME_DATA, "abc", 3);
	mig_put_le32(h + 4, MIG_FRAME_PAYLOAD_MAX);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "frame at the limit but cut short refused");
	ok_msg(&e, "truncated: the stream ends inside frame 0", "  ... as truncated");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	put_frame(&b, 7, "abc", 3);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "unknown frame type refused");
	ok_msg(&e, "unknown frame type 0x07", "  ... naming the type");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	h = b.p + b.len;
	put_frame(&b, MIG_FRAME_DATA, "abc", 3);
	h[3] = 1;
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "non-zero reserved bytes refused");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	put_frame(&b, MIG_FRAME_DATA, "abc", 3);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "layer without END refused");
	ok_msg(&e, "truncated: the stream ends after frame 1", "  ... as truncated");
	ok(dec.len == 3, "  ... after handing out the verified frame");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	put_frame(&b, MIG_FRAME_DATA, "abc", 3);
	put_end(&b, 4, 1);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "END with the wrong byte total refused");
	ok_msg(&e, "END says 4 bytes, the layer carried 3", "  ... naming both");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	put_frame(&b, MIG_FRAME_DATA, "abc", 3);
	put_end(&b, 3, 2);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "END with the wrong frame count refused");
	ok_msg(&e, "END says 2 frames, the layer has 1", "  ... naming both");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	put_frame(&b, MIG_FRAME_END, "short", 5);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "END too short refused");
	free(dec.p);
	free(b.p);

	b = identity_layer();
	put_frame(&b, MIG_FRAME_META, "k=v", 3);
	put_frame(&b, MIG_FRAME_META, "x y=v", 5);
	put_end(&b, 0, 2);
	ok(decode(&identity, b.p, b.len, 64, &dec, &e, NULL) < 0,
	   "bad META key in a stream refused");
	ok_msg(&e, "frame 1 (offset", "  ... naming the frame");
	free(dec.p);
	free(b.p);

	/* the META bound: 17 values of 64 KiB exceed 1 MiB in all */
	b.p = malloc(18 * (MIG_META_VALUE_MAX + 16) + 1024);
	b.len = mig_header_build(b.p, identity.kind, NULL, 0);
	uint8_t *v = malloc(MIG_META_VALUE_MAX + 2);
	memset(v, 'x', MIG_META_VALUE_MAX + 2);
	v[0] = 'k', v[1] = '=';
	for (int i = 0; i < 17; i++)
		put_frame(&b, MIG_FRAME_META, v, MIG_META_VALUE_MAX + 2);
	put_end(&b, 0, 17);
	ok(decode(&identity, b.p, b.len, 65536, &dec, &e, &n) < 0,
	   "META beyond 1 MiB in all refused");
	ok_msg(&e, "META frames exceed", "  ... saying so");
	free(v);
	free(dec.p);
	free(b.p);
}

static void test_meta_roundtrip(void)
{
	const char *meta[] = { "vm.name", "web-1", "host", "a=b", NULL };
	struct buf enc = encode(CK, "xyz", 3, 4096, meta);
	struct mig_src *in = mem_src(enc.p, enc.len, 5);
	void *st = CK->create();
	struct mig_err e = { 0 };
	struct mig_src *l = mig_src_layer(in, CK, st, 1, &e);
	uint8_t out[8];
	long n = mig_src_read(l, out, sizeof out, &e);
	struct mig_layer_totals t;

	ok(n == 3 && memcmp(out, "xyz", 3) == 0, "META layer carries its data");
	ok(mig_layer_meta_count(l) == 2, "two META pairs read");
	ok(strcmp(mig_layer_meta(l, 1)->key, "host") == 0 &&
	   strcmp(mig_layer_meta(l, 1)->value, "a=b") == 0,
	   "META host=a=b read back");
	mig_layer_totals(l, &t);
	ok(t.frames == 3 && t.data_frames == 1 && t.bytes == 3 &&
	   t.encoded == enc.len, "totals: 3 frames, 1 data, 3 bytes, %zu encoded",
	   enc.len);
	mig_src_free(l);
	mig_src_free(in);
	CK->destroy(st);
	free(enc.p);

	FILE *tmp = tmpfile();
	void *st2 = CK->create();
	struct mig_sink *k = mig_sink_open(fileno(tmp), CK, st2, 0, 1, &e);
	ok(mig_sink_meta(k, "bad key", "v", &e) < 0 && e.code == MIG_EXIT_USAGE,
	   "encoder refuses a bad META key as a usage error");
	mig_sink_free(k);
	CK->destroy(st2);
	fclose(tmp);
}

static struct buf read_file(const char *path)
{
	struct buf b = { 0 };
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		b = slurp_fd(fd);
		close(fd);
	}
	return b;
}

/* The vectors in tests/vectors are the ones printed in mig-stream(5). */
static void test_vectors(void)
{
	const char *meta[] = { "vm", "demo", NULL };
	struct buf v = read_file("tests/vectors/checksum-hello.mig");
	struct buf enc = encode(CK, "hello\n", 6, 4, meta);
	ok(v.p && enc.len == v.len && memcmp(enc.p, v.p, v.len) == 0,
	   "vector checksum-hello.mig: encoder output is byte-exact");
	struct buf dec;
	struct mig_err e;
	size_t nmeta = 0;
	ok(v.p && decode(CK, v.p, v.len, 3, &dec, &e, &nmeta) == 0 &&
	   dec.len == 6 && memcmp(dec.p, "hello\n", 6) == 0 && nmeta == 1,
	   "vector checksum-hello.mig decodes to hello");
	free(dec.p);
	free(v.p);
	free(enc.p);

	v = read_file("tests/vectors/checksum-empty.mig");
	enc = encode(CK, "", 0, 4, NULL);
	ok(v.p && enc.len == v.len && memcmp(enc.p, v.p, v.len) == 0,
	   "vector checksum-empty.mig: encoder output is byte-exact");
	free(v.p);
	free(enc.p);
}

/* ---- The encrypt vectors, opened as mig-stream(5) says ---------------------
 * With libsodium and OpenSSL called here directly, not through
 * filters/encrypt.c: the file key from the key part (a key file, or the
 * age-style stanza opened with an identity), the check value, the header
 * MAC, then every frame under its own key. An encoder that drifted from
 * the page, or a page that drifted from the code, fails here. */

/* The 32 bytes of the key line of a migkit key file (after prefix). */
static int key_file_bytes(const char *path, const char *prefix,
			  uint8_t key[32])
{
	struct buf b = read_file(path);
	char text[512], *line;
	size_t n = 0;
	int rc = -1;

	if (!b.p || b.len >= sizeof text)
		goto out;
	memcpy(text, b.p, b.len);
	text[b.len] = '\0';
	if ((line = strstr(text, prefix)) &&
	    sodium_base642bin(key, 32, line + strlen(prefix),
			      strcspn(line + strlen(prefix), "\n"), NULL, &n,
			      NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    n == 32)
		rc = 0;
out:
	free(b.p);
	return rc;
}

static void spec_kdf(const uint8_t f[32], const char *label, const uint8_t *s,
		     uint8_t *out, size_t out_len)
{
	uint8_t msg[64 + 32];

	memcpy(msg, label, strlen(label));
	memcpy(msg + strlen(label), s, 32);
	crypto_generichash(out, out_len, msg, strlen(label) + 32, f, 32);
}

/* The file key from the first stanza that opens with identity id. */
static int spec_stanza(const uint8_t *st, unsigned n, const uint8_t id[32],
		       uint8_t f[32])
{
	uint8_t pub[32], shared[32], salt[64], wrap[32], nonce[12] = { 0 };

	crypto_scalarmult_base(pub, id);
	for (unsigned i = 0; i < n; i++, st += 80) {
		size_t wl = sizeof wrap;
		EVP_PKEY_CTX *h = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
		memcpy(salt, st, 32);
		memcpy(salt + 32, pub, 32);
		int got = crypto_scalarmult(shared, id, st) == 0 && h &&
			  EVP_PKEY_derive_init(h) > 0 &&
			  EVP_PKEY_CTX_set_hkdf_md(h, EVP_sha256()) > 0 &&
			  EVP_PKEY_CTX_set1_hkdf_key(h, shared, 32) > 0 &&
			  EVP_PKEY_CTX_set1_hkdf_salt(h, salt, 64) > 0 &&
			  EVP_PKEY_CTX_add1_hkdf_info(
				  h, (const uint8_t *)"mig-encrypt-2 X25519",
				  20) > 0 &&
			  EVP_PKEY_derive(h, wrap, &wl) > 0;
		EVP_PKEY_CTX_free(h);
		if (got && crypto_aead_chacha20poly1305_ietf_decrypt(
				   f, NULL, NULL, st + 32, 48, NULL, 0, nonce,
				   wrap) == 0)
			return 0;
	}
	return -1;
}

/* Open frame i in place (payload p of len bytes, type t, flags fl). */
static int spec_frame(int cipher, const uint8_t k[32], uint64_t i, uint8_t t,
		      uint8_t fl, const uint8_t *p, size_t len, uint8_t *out)
{
	uint8_t ki[32], nonce[12] = { 0 }, ad[10];
	unsigned long long n;

	crypto_kdf_derive_from_key(ki, 32, i, "migkit-f", k);
	mig_put_le64(nonce, i);
	nonce[8] = t;
	ad[0] = t;
	ad[1] = fl;
	mig_put_le64(ad + 2, i);
	if (cipher == 1)
		return crypto_aead_aes256gcm_decrypt(out, &n, NULL, p, len, ad,
						     10, nonce, ki);
	return crypto_aead_chacha20poly1305_ietf_decrypt(out, &n, NULL, p, len,
							 ad, 10, nonce, ki);
}

/* The plain DATA of vector v and its META (at most one), or -1. */
static int spec_open(struct buf v, const uint8_t key[32], bool identity,
		     char *plain, size_t plain_max, char *meta)
{
	const uint8_t *p = v.p + 12;
	size_t plen = mig_get_le32(v.p + 8), m, at, got = 0;
	uint8_t f[32], want[16], mac[32], k[32], out[64];

	if (v.len < 12 + plen + 8 || plen < 84 || p[0] != 2 || v.p[5] != 3)
		return -1;
	m = p[2] == 3 ? 80u * p[3] : 0;
	if (p[2] == 3 ? spec_stanza(p + 36, p[3], key, f) < 0
		      : (memcpy(f, key, 32), p[2] != 1))
		return -1;
	spec_kdf(f, "mig-encrypt-2 key check", p + 4, want, 16);
	spec_kdf(f, "mig-encrypt-1 header mac", p + 4, mac, 32);
	spec_kdf(f, "mig-encrypt-1 payload", p + 4, k, 32);
	if (!identity == (p[2] == 3) || plen != 36 + m + 16 + 32 ||
	    memcmp(want, p + 36 + m, 16) != 0 ||
	    crypto_auth_verify(p + 36 + m + 16, p, 36 + m + 16, mac) != 0)
		return -1;
	at = 12 + plen + 8;
	for (uint64_t i = 0; at + 8 <= v.len; i++) {
		uint8_t t = v.p[at];
		size_t len = mig_get_le32(v.p + at + 4);
		if (len < 16 || len - 16 > sizeof out - 1 || at + 8 + len > v.len ||
		    spec_frame(p[1], k, i, t, v.p[at + 1], v.p + at + 8, len,
			       out) != 0)
			return -1;
		len -= 16;
		if (t == 1 && got + len < plain_max) {
			memcpy(plain + got, out, len);
			got += len;
		} else if (t == 2) {
			memcpy(meta, out, len);
			meta[len] = '\0';
		} else if (t == 3) {
			plain[got] = '\0';
			return len == 16 && mig_get_le64(out) == got &&
				       mig_get_le64(out + 8) == i &&
				       at + 8 + 16 + 16 == v.len ? 0 : -1;
		}
		at += 8 + len + 16;
	}
	return -1;
}

static void test_encrypt_vectors(void)
{
	static const char *const names[] = {
		"chacha20poly1305", "aes256gcm", "recipient",
	};
	uint8_t key[32], id[32];
	bool aes = sodium_init() >= 0 && crypto_aead_aes256gcm_is_available();

	ok(key_file_bytes("tests/vectors/encrypt.key", "mig-key-1:", key) == 0 &&
	   key_file_bytes("tests/vectors/encrypt.identity", "mig-identity-1:",
			  id) == 0, "the vectors' key and identity files read");
	for (size_t i = 0; i < 3; i++) {
		char path[128], plain[64] = "", meta[64] = "";
		snprintf(path, sizeof path, "tests/vectors/encrypt-hello-%s.mig",
			 names[i]);
		if (i == 1 && !aes) { /* libsodium's AES-GCM needs AES-NI */
			ok(1, "# skip %s: no AES-NI for libsodium here", path);
			continue;
		}
		struct buf v = read_file(path);
		int r = v.p ? spec_open(v, i == 2 ? id : key, i == 2, plain,
					sizeof plain, meta) : -1;
		ok(r == 0 && strcmp(plain, "hello, sealed frames\n") == 0 &&
		   strcmp(meta, "vm=demo") == 0,
		   "vector encrypt-hello-%s.mig opens as mig-stream(5) says",
		   names[i]);
		free(v.p);
	}
}

static void test_parallel(void)
{
	size_t len = 40 * 4096 + 123, fs = 4096;
	uint8_t *data = pattern(len);
	const char *meta[] = { "k", "v", NULL };
	struct buf one = encode_t(&parallel, data, len, fs, meta, 1);
	struct buf four = encode_t(&parallel, data, len, fs, meta, 4);
	struct buf dec;
	struct mig_err e;
	size_t nmeta = 0;

	ok(one.len > len && one.len == four.len &&
	   memcmp(one.p, four.p, one.len) == 0,
	   "4 threads write the same bytes as 1 (frames in order)");
	ok(decode_t(&parallel, four.p, four.len, 5000, &dec, &e, &nmeta, 4) == 0 &&
	   dec.len == len && memcmp(dec.p, data, len) == 0 && nmeta == 1,
	   "4 threads decode in order");
	free(dec.p);

	/* frame 7 (the META is frame 0) fails its check */
	size_t fl = 8 + fs + 8, hl = MIG_HEADER_FIXED + MIG_HEADER_CHECK;
	size_t f7 = hl + (8 + 3 + 8) + 6 * fl;
	four.p[f7 + 8 + fs] ^= 1;
	ok(decode_t(&parallel, four.p, four.len, 5000, &dec, &e, NULL, 4) < 0,
	   "4 threads: a bad frame 7 is refused");
	ok_msg(&e, "frame 7 (offset", "  ... naming frame 7");
	ok(dec.len == 6 * fs && memcmp(dec.p, data, dec.len) == 0,
	   "  ... after exactly the 6 data frames before it (%zu bytes)", dec.len);
	free(dec.p);
	four.p[f7 + 8 + fs] ^= 1;

	ok(decode_t(&parallel, four.p, f7 + 20, 5000, &dec, &e, NULL, 4) < 0,
	   "4 threads: a cut inside frame 7 is refused");
	ok_msg(&e, "truncated: the stream ends inside frame 7", "  ... as truncated");
	ok(dec.len == 6 * fs && memcmp(dec.p, data, dec.len) == 0,
	   "  ... after the frames before it");
	free(dec.p);
	ok(par_ctx_live == 0, "every frame context was destroyed");
	free(one.p);
	free(four.p);
	free(data);
}

/* The push watcher agrees with the decoder on every cut, fed in any
 * piece size. */
static void test_watch(void)
{
	size_t len = 5 * 4096 + 7;
	uint8_t *data = pattern(len);
	const char *meta[] = { "k", "v", NULL };
	struct buf enc = encode(CK, data, len, 4096, meta);
	int agree = 1;

	for (size_t cut = 0; cut <= enc.len; cut++) {
		for (size_t piece = 1; piece <= 4099; piece += 4098) {
			struct mig_watch w;
			struct mig_err we = { 0 }, de = { 0 };
			struct buf dec;
			mig_watch_init(&w);
			for (size_t at = 0; at < cut; at += piece)
				if (mig_watch_feed(&w, enc.p + at,
						   cut - at < piece ? cut - at : piece) < 0)
					break;
			int wr = mig_watch_end(&w, &we);
			int dr = cut ? decode(CK, enc.p, cut, 100, &dec, &de, NULL) : -1;
			if (cut)
				free(dec.p);
			if (cut == 0)
				mig_err_header_truncated(&de);
			if ((wr == 0) != (dr == 0) ||
			    (wr < 0 && strcmp(we.msg, de.msg) != 0)) {
				printf("# cut %zu piece %zu: watch '%s', decoder '%s'\n",
				       cut, piece, we.msg, de.msg);
				agree = 0;
			}
		}
	}
	ok(agree, "watcher and decoder agree on all %zu cuts of a layer", enc.len + 1);

	struct mig_watch w;
	struct mig_err e;
	mig_watch_init(&w);
	mig_watch_feed(&w, enc.p, enc.len);
	ok(mig_watch_feed(&w, (const uint8_t *)"x", 1) < 0 &&
	   mig_watch_end(&w, &e) < 0, "watcher refuses data after END");
	ok_msg(&e, "data after the END frame at offset", "  ... naming the offset");
	free(enc.p);
	free(data);
}

static void test_write_errors(void)
{
	int p[2];
	struct mig_err e = { 0 };

	signal(SIGPIPE, SIG_IGN);
	ok(pipe(p) == 0, "pipe");
	close(p[0]);
	ok(mig_write_all(p[1], "x", 1, &e) < 0 && e.code == MIG_EXIT_IO,
	   "write to a pipe with no reader fails as an I/O error");
	ok_msg(&e, "Broken pipe", "  ... saying so");
	close(p[1]);
}

/* ---- Every field of the header and of each kind of frame ---------------- */

/* A filter's state ready to encode or decode: the encrypt layer gets the
 * fixed key file made by make_field_key(). */
static char field_key[64];

static void make_field_key(void)
{
	uint8_t bytes[MIG_KEY_BYTES];
	struct mig_key k;
	struct mig_err e;
	char text[MIG_KEY_TEXT_MAX];
	int fd;

	for (int i = 0; i < MIG_KEY_BYTES; i++)
		bytes[i] = (uint8_t)(7 * i);
	snprintf(field_key, sizeof field_key, "/tmp/test-channel-key.%ld",
		 (long)getpid());
	if (mig_crypto_init(&e) < 0 ||
	    mig_key_make(&k, MIG_KEY_SYMMETRIC, bytes, &e) < 0)
		abort();
	size_t n = mig_key_text(&k, text, sizeof text);
	mig_key_free(&k);
	fd = open(field_key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || close(fd) < 0)
		abort();
}

static void *field_state(const struct mig_filter *f)
{
	void *st = f->create();
	struct mig_err e;

	for (const struct mig_option *o = f->options; o && o->long_name; o++)
		if (!strcmp(o->long_name, "key") &&
		    f->set_option(st, o, field_key, &e) < 0)
			abort();
	return st;
}

/* META, then DATA frames of 1000 bytes, then END: frame i (i >= 1) is
 * preceded by (i - 1) * 1000 plain bytes. */
#define FIELD_FRAME 1000
#define FIELD_DATA 3
static struct buf field_layer(const struct mig_filter *f, const uint8_t *data)
{
	FILE *tmp = tmpfile();
	struct mig_err e = { 0 };
	void *st = field_state(f);
	struct mig_sink *k = mig_sink_open(fileno(tmp), f, st, FIELD_FRAME, 1, &e);
	struct buf b = { 0 };

	if (k && mig_sink_meta(k, "origin", "test", &e) == 0) {
		int r = 0;
		for (int i = 0; i < FIELD_DATA && r == 0; i++) {
			uint8_t *fr = mig_sink_buffer(k, &e);
			if (!fr)
				break;
			memcpy(fr, data + i * FIELD_FRAME, FIELD_FRAME);
			r = mig_sink_data(k, FIELD_FRAME, &e);
		}
		if (r == 0 && mig_sink_end(k, &e) == 0)
			b = slurp_fd(fileno(tmp));
	}
	if (e.msg[0])
		printf("# field layer: %s\n", e.msg);
	mig_sink_free(k);
	f->destroy(st);
	fclose(tmp);
	return b;
}

/* Offsets of the frames (META, DATA..., END) after the header. */
static size_t field_frames(const struct buf *b, size_t at[FIELD_DATA + 2])
{
	size_t o = MIG_HEADER_FIXED + mig_get_le32(b->p + 8) + MIG_HEADER_CHECK;
	size_t n = 0;

	while (o + MIG_FRAME_HEADER <= b->len && n < FIELD_DATA + 2) {
		at[n++] = o;
		o += MIG_FRAME_HEADER + mig_get_le32(b->p + o + 4);
	}
	return n;
}

/* Decoded, refused as bad data, and nothing beyond `before` bytes out;
 * with words, its message says them. The walker refuses it too. */
static bool field_refused(const struct mig_filter *f, const struct buf *b,
			  const uint8_t *data, size_t before, int threads,
			  bool walk, const char *words)
{
	struct mig_src *in = mem_src(b->p, b->len, 777);
	void *st = field_state(f);
	struct mig_err e = { 0 };
	struct mig_src *l = mig_src_layer(in, f, st, threads, &e);
	size_t out = 0;
	bool prefix = true;
	int r;
	const uint8_t *c;
	size_t n;

	while (l && (r = mig_src_chunk(l, &c, &n, SIZE_MAX, &e)) > 0) {
		prefix = prefix && out + n <= before &&
			 memcmp(c, data + out, n) == 0;
		out += n;
	}
	bool refused = l && r < 0 && e.code == MIG_EXIT_DATA && prefix &&
		       (!words || strstr(e.msg, words));
	if (!refused)
		printf("# %s: not refused as expected (%zu bytes out of %zu "
		       "allowed): %s\n", f->name, out, before, e.msg);
	mig_src_free(l);
	mig_src_free(in);
	f->destroy(st);
	if (walk) {
		struct mig_watch w;
		struct mig_err we;
		mig_watch_init(&w);
		mig_watch_feed(&w, b->p, b->len);
		if (mig_watch_end(&w, &we) == 0 ||
		    (words && !strstr(we.msg, words))) {
			printf("# %s: the walker let it pass (%s)\n", f->name,
			       we.msg);
			refused = false;
		}
	}
	return refused;
}

static void field_flip(const struct buf *enc, struct buf *b, size_t at,
		       uint8_t mask)
{
	memcpy(b->p, enc->p, enc->len);
	b->len = enc->len;
	b->p[at] ^= mask;
}

static void test_header_fields(const struct mig_filter *f, const struct buf *enc,
			       const uint8_t *data)
{
	struct buf b = { malloc(enc->len), 0 };
	size_t end = MIG_HEADER_FIXED + mig_get_le32(enc->p + 8) + MIG_HEADER_CHECK;
	bool all = true;

	/* magic, version, kind, both flags bytes, length, parameters, check:
	 * every bit of every byte */
	for (size_t at = 0; at < end; at++)
		for (int bit = 0; bit < 8; bit++) {
			field_flip(enc, &b, at, (uint8_t)(1 << bit));
			all &= field_refused(f, &b, data, 0, 1, at >= 4, NULL);
		}
	ok(all, "%s: a changed bit anywhere in the layer header is refused, "
	   "by the decoder and the walker", f->name);
	field_flip(enc, &b, 6, 0x01);
	ok(field_refused(f, &b, data, 0, 1, true, "layer header: unknown flags "
			 "0x0001"), "%s: header flags say so", f->name);
	free(b.p);
}

static void test_frame_fields(const struct mig_filter *f)
{
	uint8_t *data = pattern(FIELD_DATA * FIELD_FRAME);
	struct buf enc = field_layer(f, data);
	struct buf b = { malloc(enc.len + 1), 0 };
	size_t at[FIELD_DATA + 2];
	const char *names[] = { "META", "DATA", "DATA", "DATA", "END" };
	char want[64];

	ok(field_frames(&enc, at) == FIELD_DATA + 2,
	   "%s: a layer of META, %d DATA and END", f->name, FIELD_DATA);
	test_header_fields(f, &enc, data);
	snprintf(want, sizeof want, "not defined for %s %s layer",
		 f->name[0] == 'e' ? "an" : "a", f->name);
	for (size_t i = 0; i < FIELD_DATA + 2; i++) {
		size_t before = i ? (i - 1) * FIELD_FRAME : 0;
		bool flags = true, type = true, reserved = true, len = true,
		     body = true;
		for (int bit = 0; bit < 8; bit++) {
			uint8_t m = (uint8_t)(1 << bit);
			/* a flag the kind does not define: refused before
			 * decode, on one thread and on several, by the
			 * walker too, saying so */
			field_flip(&enc, &b, at[i] + 1, m);
			if (!(f->frame_flags & m))
				flags &= field_refused(f, &b, data, before, 1,
						       true, want) &&
					 field_refused(f, &b, data, before, 3,
						       true, want);
			else /* one it defines, changed: the frame's check */
				flags &= field_refused(f, &b, data, before, 3,
						       false, NULL);
			field_flip(&enc, &b, at[i], m);
			type &= field_refused(f, &b, data, before, 1,
					      (b.p[at[i]] < 1 || b.p[at[i]] > 3),
					      NULL);
			for (int r = 2; r < 4; r++) {
				field_flip(&enc, &b, at[i] + r, m);
				reserved &= field_refused(f, &b, data, before,
							  1, true, "reserved");
			}
			for (int l = 4; l < 8; l++) {
				field_flip(&enc, &b, at[i] + l, m);
				len &= field_refused(f, &b, data, before, 1,
						     false, NULL);
			}
			size_t flen = mig_get_le32(enc.p + at[i] + 4);
			field_flip(&enc, &b, at[i] + 8, m);
			body &= field_refused(f, &b, data, before, 1, false, NULL);
			field_flip(&enc, &b, at[i] + 8 + flen - 1, m);
			body &= field_refused(f, &b, data, before, 1, false, NULL);
		}
		ok(flags, "%s: %s frame %zu: changed flags are refused before "
		   "any of its bytes is out", f->name, names[i], i);
		ok(type, "%s: %s frame %zu: a changed type is refused", f->name,
		   names[i], i);
		ok(reserved, "%s: %s frame %zu: reserved bytes that are not "
		   "zero are refused", f->name, names[i], i);
		ok(len, "%s: %s frame %zu: a changed length is refused", f->name,
		   names[i], i);
		ok(body, "%s: %s frame %zu: a changed payload is refused",
		   f->name, names[i], i);
	}
	free(b.p);
	free(enc.p);
	free(data);
}

static void test_fields(void)
{
	const uint8_t kinds[] = { 1, 2, 3, 4 };

	make_field_key();
	for (size_t i = 0; i < sizeof kinds; i++) {
		const struct mig_filter *f = mig_filter_by_kind(kinds[i]);
		const struct mig_kind *k = mig_kind_by_id(kinds[i]);
		ok(f && k && f->frame_flags == k->frame_flags,
		   "%s: the filter defines the frame flags the registry says "
		   "(0x%02x)", k ? k->name : "?", k ? k->frame_flags : 0);
		if (f)
			test_frame_fields(f);
	}
	unlink(field_key);
}

/* The machine's spare CPUs: the first look only sets the mark; a look
 * after a busy spell on this thread sees at most the other CPUs spare. */
static void test_spare_cpus(void)
{
	struct mig_cpu_mark m = { 0 };
	volatile unsigned long spin = 0;
	double t0, spare;

	ok(mig_spare_cpus(&m) == -1 && m.valid, "spare CPUs: a first look sets the mark");
	for (t0 = mig_now(); mig_now() - t0 < 0.1;)
		spin++;
	spare = mig_spare_cpus(&m);
	ok(spare >= 0 && spare <= mig_cpus() - 0.5,
	   "spare CPUs: after 0.1 s of this thread's work, from 0 to the other CPUs (%.2f of %d)",
	   spare, mig_cpus());
}

/* The smaps line KEY of the mapping that holds P: its number, -1 if none. */
static long smaps_field(const void *p, const char *key)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	unsigned long lo, hi, at = (unsigned long)p;
	bool in = false;
	long v = -1;

	if (!f)
		return -1;
	while (v < 0 && fgets(line, sizeof line, f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = at >= lo && at < hi;
		else if (in && !strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	}
	fclose(f);
	return v;
}

/* Codec memory: a large block is mapped for huge pages wherever the
 * kernel gives them on request, a small one comes from malloc; both are
 * aligned as malloc's, writable throughout, and freed by one call. */
static void test_huge_alloc(void)
{
	char mode[64] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	bool thp;

	if (f) {
		if (!fgets(mode, sizeof mode, f))
			mode[0] = '\0';
		mode[strcspn(mode, "\n")] = '\0';
		fclose(f);
	}
	thp = strstr(mode, "[always]") || strstr(mode, "[madvise]");
	size_t big = 8u << 20, small = 4096;
	unsigned char *b = mig_huge_alloc(NULL, big), *sm = mig_huge_alloc(NULL, small);
	ok(b && sm && (uintptr_t)b % _Alignof(max_align_t) == 0 &&
	   (uintptr_t)sm % _Alignof(max_align_t) == 0,
	   "huge alloc: 8 MiB and 4 KiB blocks, aligned as malloc's");
	if (b && sm) {
		memset(b, 0xa5, big);
		memset(sm, 0x5a, small);
		ok(b[0] == 0xa5 && b[big - 1] == 0xa5 && sm[small - 1] == 0x5a,
		   "huge alloc: every byte writable");
		ok(smaps_field(b, "THPeligible:") == thp,
		   "huge alloc: the 8 MiB block %s for huge pages (THP mode: %s)",
		   thp ? "marked" : "not marked", mode[0] ? mode : "unknown");
	}
	mig_huge_free(NULL, b);
	mig_huge_free(NULL, sm);
	mig_huge_free(NULL, NULL);
	ok(mig_huge_alloc(NULL, SIZE_MAX - 4) == NULL, "huge alloc: a size past the address space: NULL");
}

/* pread in full: the bytes asked, fewer at the file's end, -1 on a bad
 * descriptor. */
static void test_pread_full(void)
{
	char path[] = "/tmp/mig-pread-XXXXXX", buf[16];
	int fd = mkstemp(path);

	ok(fd >= 0 && write(fd, "0123456789", 10) == 10, "pread full: a file of 10 bytes");
	ok(mig_pread_full(fd, buf, 4, 3) == 4 && !memcmp(buf, "3456", 4),
	   "pread full: 4 bytes at 3");
	ok(mig_pread_full(fd, buf, 8, 6) == 4 && !memcmp(buf, "6789", 4),
	   "pread full: 8 asked at 6, 4 before the end");
	ok(mig_pread_full(fd, buf, 8, 10) == 0, "pread full: at the end, 0");
	close(fd);
	unlink(path);
	errno = 0;
	ok(mig_pread_full(fd, buf, 4, 0) == -1 && errno == EBADF,
	   "pread full: a closed descriptor, -1 and EBADF");
}

int main(void)
{
	test_sizes();
	test_spare_cpus();
	test_huge_alloc();
	test_pread_full();
	test_rate_parse();
	test_rate_bucket();
	test_rate_windows();
	test_rate_write();
	test_detect();
	test_read_idle();
	test_meta_parse();
	test_roundtrips();
	test_checksum_damage();
	test_wrong_input();
	test_framing_limits();
	test_meta_roundtrip();
	test_vectors();
	test_encrypt_vectors();
	test_parallel();
	test_watch();
	test_write_errors();
	test_fields();
	test_filter_check();
	test_no_trailer();
	test_kinds_agree();
	return tap_done();
}

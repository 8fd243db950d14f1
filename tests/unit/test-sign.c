/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test-sign.c - signed envelopes against someone who can rewrite a
 * stream: every change below recomputes the XXH3 checks (frame tags,
 * header check, END digest), as an attacker would, so only the
 * signatures stand between it and the reader.
 */

#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "../../channel/tagged.h"
#include "tap.h"

#define HDR_FIXED 12

static char dir[] = "/tmp/mig-test-sign.XXXXXX";
static char key_a[64], pub_a[64], key_b[64], pub_b[64];

static void write_text(const char *path, const char *text, int mode)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || chmod(path, mode) < 0) {
		perror(path);
		exit(1);
	}
}

static void make_pair(char *key, char *pub, const char *name)
{
	char s[256], p[256], id[MIG_SIGNER_ID_HEX];
	struct mig_err e = { 0 };

	snprintf(key, 64, "%s/%s", dir, name);
	snprintf(pub, 64, "%s/%s.pub", dir, name);
	if (mig_signing_pair_text(s, sizeof s, p, sizeof p, id, &e) < 0) {
		printf("Bail out! %s\n", e.msg);
		exit(1);
	}
	write_text(key, s, 0600);
	write_text(pub, p, 0644);
}

struct stream {
	uint8_t *p;
	size_t len;
};

/* An envelope around len bytes of data, with two META, signed with key
 * (NULL: unsigned). */
static struct stream seal(const char *key, size_t len)
{
	struct mig_err e = { 0 };
	int fd = memfd_create("envelope", 0);
	void *st = mig_filter_envelope.create();
	struct mig_sink *k;
	struct stream s = { 0 };

	if (key && mig_envelope_sign(st, key, &e) < 0)
		goto fail;
	if (!(k = mig_sink_open(fd, &mig_filter_envelope, st, 4096, 1, &e)))
		goto fail;
	if (mig_sink_meta(k, "host", "src", &e) < 0 ||
	    mig_sink_meta(k, "qemu.argv", "[\"qemu-system-x86_64\"]", &e) < 0)
		goto fail;
	for (size_t done = 0; done < len;) {
		uint8_t *b = mig_sink_buffer(k, &e);
		size_t n = len - done < 4096 ? len - done : 4096;
		if (!b)
			goto fail;
		for (size_t i = 0; i < n; i++) /* no two frames alike */
			b[i] = (uint8_t)(((done + i) * 131 >> 3) + done / 4096);
		if (mig_sink_data(k, n, &e) < 0)
			goto fail;
		done += n;
	}
	if (mig_sink_end(k, &e) < 0)
		goto fail;
	mig_sink_free(k);
	mig_filter_envelope.destroy(st);
	s.len = (size_t)lseek(fd, 0, SEEK_END);
	s.p = malloc(s.len);
	if (!s.p || pread(fd, s.p, s.len, 0) != (ssize_t)s.len)
		goto fail;
	close(fd);
	return s;
fail:
	printf("Bail out! sealing: %s\n", e.msg);
	exit(1);
}

/* Decode s with the given trusted signer (NULL: any); returns the exit
 * code, with the message in e and the bytes written in *out. */
static int open_envelope(const struct stream *s, const char *signer,
			 struct mig_err *e, size_t *out, struct mig_seal_sig *sig)
{
	struct mig_signers trust = { 0 };
	void *st = mig_filter_envelope.create();
	struct mig_src *in = mig_src_mem(s->p, s->len, 1000, "memory"), *l;
	const uint8_t *p;
	size_t n;
	int got = -1;

	*out = 0;
	memset(e, 0, sizeof *e);
	if (signer) {
		if (mig_signers_add(&trust, signer, e) < 0)
			goto done;
		mig_envelope_trust(st, &trust);
	}
	if (!(l = mig_src_layer(in, &mig_filter_envelope, st, 1, e)))
		goto done;
	while ((got = mig_src_chunk(l, &p, &n, SIZE_MAX, e)) > 0)
		*out += n;
	mig_src_free(l);
done:
	if (sig)
		mig_envelope_signature(st, sig);
	mig_filter_envelope.destroy(st);
	mig_src_free(in);
	return got == 0 ? 0 : e->code ? e->code : -1;
}

/* ---- Walking and rewriting frames, checks recomputed ---------------- */

static size_t header_len(const struct stream *s)
{
	return HDR_FIXED + mig_get_le32(s->p + 8) + 8;
}

static void fix_header_check(struct stream *s)
{
	size_t n = HDR_FIXED + mig_get_le32(s->p + 8);
	mig_put_le64(s->p + n, XXH3_64bits(s->p, n));
}

/* Offset of frame i's 8-byte frame header. */
static size_t frame_at(const struct stream *s, uint64_t i)
{
	size_t at = header_len(s);
	while (i--)
		at += 8 + mig_get_le32(s->p + at + 4);
	return at;
}

/* Recompute frame i's tag after its payload changed. */
static void fix_tag(struct stream *s, uint64_t i)
{
	size_t at = frame_at(s, i), len = mig_get_le32(s->p + at + 4) - MIG_TAG_LEN;
	struct mig_frame f = { .type = s->p[at], .index = i };
	mig_put_le64(s->p + at + 8 + len, mig_frame_tag(&f, s->p + at + 8, len));
}

/* Recompute END's XXH3-128 of the inner bytes (frames 0..end-1), and
 * END's tag. */
static void fix_end_digest(struct stream *s, uint64_t end)
{
	XXH3_state_t *h = XXH3_createState();
	XXH128_canonical_t c;

	XXH3_128bits_reset(h);
	for (uint64_t i = 0; i < end; i++) {
		size_t at = frame_at(s, i);
		if (s->p[at] == MIG_FRAME_DATA)
			XXH3_128bits_update(h, s->p + at + 8,
					    mig_get_le32(s->p + at + 4) - MIG_TAG_LEN);
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h));
	XXH3_freeState(h);
	memcpy(s->p + frame_at(s, end) + 8 + MIG_END_TOTALS, c.digest, 16);
	fix_tag(s, end);
}

static struct stream copy(const struct stream *s)
{
	struct stream c = { malloc(s->len), s->len };
	memcpy(c.p, s->p, s->len);
	return c;
}

/* ---- The tests -------------------------------------------------------- */

#define FRAMES_DATA 3 /* 3 x 4096 bytes */
#define IDX_META2 1
#define IDX_DATA0 2
#define IDX_END (2 + FRAMES_DATA)

static void test_good(const struct stream *s)
{
	struct mig_err e;
	struct mig_seal_sig sig;
	size_t out;

	ok(open_envelope(s, pub_a, &e, &out, &sig) == 0 && out == 3 * 4096,
	   "a signed envelope opens for its signer (%zu bytes) %s", out, e.msg);
	ok(sig.is_signed && sig.trusted, "it says it is signed by a trusted signer");
	ok(time(NULL) - sig.created < 600 && sig.created <= time(NULL),
	   "its creation time is the writer's clock");
	ok(open_envelope(s, NULL, &e, &out, &sig) == 0 && sig.is_signed &&
	   !sig.trusted, "without a trusted signer it opens, signed but not trusted");
	ok(open_envelope(s, pub_b, &e, &out, NULL) == MIG_EXIT_DATA && out == 0,
	   "another signer's key refuses it, before a byte");
	ok_msg(&e, "which is not a trusted signer", "... saying the signer is not trusted");
}

static void test_unsigned(void)
{
	struct stream u = seal(NULL, 3 * 4096);
	struct mig_err e;
	size_t out;

	ok(open_envelope(&u, pub_a, &e, &out, NULL) == MIG_EXIT_DATA && out == 0,
	   "an unsigned envelope is refused where a signer is required");
	ok_msg(&e, "the envelope is not signed", "... saying it is not signed");
	free(u.p);
}

static void test_tampered(const struct stream *s)
{
	struct mig_err e;
	size_t out;
	struct stream t;

	t = copy(s); /* the configuration: qemu.argv's value */
	t.p[frame_at(&t, IDX_META2) + 8 + 12] ^= 0x20;
	fix_tag(&t, IDX_META2);
	ok(open_envelope(&t, pub_a, &e, &out, NULL) == MIG_EXIT_DATA && out == 0,
	   "a changed META (tags recomputed) is refused before any data");
	ok_msg(&e, "signature of a META frame does not verify", "... by its signature");
	free(t.p);

	t = copy(s); /* a DATA byte: found at END */
	t.p[frame_at(&t, IDX_DATA0) + 8 + 100] ^= 1;
	fix_tag(&t, IDX_DATA0);
	fix_end_digest(&t, IDX_END);
	ok(open_envelope(&t, pub_a, &e, &out, NULL) == MIG_EXIT_DATA,
	   "a changed DATA byte (tags and END digest recomputed) is refused");
	ok_msg(&e, "signature of END does not verify", "... at END, by its signature");
	free(t.p);

	t = copy(s); /* END's signature */
	t.p[frame_at(&t, IDX_END) + 8 + MIG_END_TOTALS + 16 + 5] ^= 4;
	fix_tag(&t, IDX_END);
	ok(open_envelope(&t, pub_a, &e, &out, NULL) == MIG_EXIT_DATA,
	   "a changed END signature is refused");
	ok_msg(&e, "signature of END does not verify", "... by its signature");
	free(t.p);

	t = copy(s); /* the creation time in the header: rollback */
	t.p[HDR_FIXED + 2 + 32] ^= 0x80;
	fix_header_check(&t);
	ok(open_envelope(&t, pub_a, &e, &out, NULL) == MIG_EXIT_DATA && out == 0,
	   "a changed creation time (header check recomputed) is refused");
	ok_msg(&e, "signature of the header does not verify", "... by the header's signature");
	free(t.p);
}

static void test_stripped(const struct stream *s)
{
	struct mig_err e;
	size_t out;
	struct stream t = copy(s);

	/* the signature cut off: END without it */
	size_t end = frame_at(&t, IDX_END);
	uint32_t l = mig_get_le32(t.p + end + 4) - 64;
	memmove(t.p + end + 8 + MIG_END_TOTALS + 16,
		t.p + end + 8 + MIG_END_TOTALS + 16 + 64, MIG_TAG_LEN);
	mig_put_le32(t.p + end + 4, l);
	t.len = end + 8 + l;
	fix_tag(&t, IDX_END);
	ok(open_envelope(&t, pub_a, &e, &out, NULL) == MIG_EXIT_DATA,
	   "END with its signature stripped is refused");
	ok_msg(&e, "END holds 16 bytes after its totals, not 80", "... as a short END");
	free(t.p);

	t = copy(s); /* cut before END */
	t.len = frame_at(&t, IDX_END);
	ok(open_envelope(&t, pub_a, &e, &out, NULL) == MIG_EXIT_DATA,
	   "a signed envelope cut before END is refused");
	ok_msg(&e, "truncated", "... as truncated");
	free(t.p);
}

/* The frames before END taken in the given order (original indices),
 * then END: every frame's tag recomputed for its new index, END's totals
 * and digest for what it now follows. Only the signature can tell. */
static struct stream reframe(const struct stream *s, const uint64_t *order,
			     size_t n)
{
	size_t hl = header_len(s), endlen = s->len - frame_at(s, IDX_END), o = hl;
	struct stream t = { malloc(s->len + 2 * 8192), 0 };
	uint64_t bytes = 0;

	memcpy(t.p, s->p, hl);
	for (size_t i = 0; i < n; i++) {
		size_t at = frame_at(s, order[i]), fl = 8 + mig_get_le32(s->p + at + 4);
		memcpy(t.p + o, s->p + at, fl);
		if (s->p[at] == MIG_FRAME_DATA)
			bytes += fl - 8 - MIG_TAG_LEN;
		o += fl;
	}
	memcpy(t.p + o, s->p + frame_at(s, IDX_END), endlen);
	t.len = o + endlen;
	for (size_t i = 0; i < n; i++)
		fix_tag(&t, i);
	size_t end = frame_at(&t, n);
	mig_put_le64(t.p + end + 8, bytes);
	mig_put_le64(t.p + end + 16, mig_get_le64(s->p + frame_at(s, IDX_END) + 16)
		     - IDX_END + n);
	fix_end_digest(&t, n);
	return t;
}

/* DATA frames dropped, swapped or repeated, with every unkeyed check made
 * to match: the signature over END refuses each. */
static void test_reframed(const struct stream *s)
{
	static const struct { uint64_t order[6]; size_t n; const char *what; } c[] = {
		{ { 0, 1, 2, 3, 4 }, 5, "the stream as it was (the rebuilding is exact)" },
		{ { 0, 1, 2, 4 }, 4, "a DATA frame dropped" },
		{ { 0, 1, 3, 2, 4 }, 5, "two DATA frames swapped" },
		{ { 0, 1, 2, 3, 3, 4 }, 6, "a DATA frame repeated" },
	};
	struct mig_err e;
	size_t out;

	for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
		struct stream t = reframe(s, c[i].order, c[i].n);
		int rc = open_envelope(&t, pub_a, &e, &out, NULL);
		if (i == 0)
			ok(rc == 0 && t.len == s->len && !memcmp(t.p, s->p, s->len),
			   "%s", c[i].what);
		else {
			ok(rc == MIG_EXIT_DATA, "%s (tags, totals, digest recomputed) "
			   "is refused", c[i].what);
			ok_msg(&e, "signature of END does not verify", "... at END, by its signature");
		}
		free(t.p);
	}
}

static void test_keys(void)
{
	struct mig_err e = { 0 };
	struct mig_signers s = { 0 };
	struct mig_signing_key *k;

	ok(mig_signers_add(&s, key_a, &e) < 0 && e.code == MIG_EXIT_USAGE,
	   "a signing key given as a signer is refused");
	ok_msg(&e, "is a signing key (secret), not a signer (public key) (give its public half, NAME.pub)", "... saying which half to give");
	memset(&e, 0, sizeof e);
	ok(mig_signing_key_load(&k, pub_a, &e) < 0, "a .pub given as a signing key is refused");
	ok_msg(&e, "not a signing key", "... saying so");
	chmod(key_a, 0644);
	memset(&e, 0, sizeof e);
	ok(mig_signing_key_load(&k, key_a, &e) < 0, "a signing key others can read is refused");
	ok_msg(&e, "permissions 0644 are too open", "... as OpenSSH does");
	chmod(key_a, 0600);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	make_pair(key_a, pub_a, "a");
	make_pair(key_b, pub_b, "b");
	struct stream s = seal(key_a, FRAMES_DATA * 4096);
	test_good(&s);
	test_unsigned();
	test_tampered(&s);
	test_stripped(&s);
	test_reframed(&s);
	test_keys();
	free(s.p);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}

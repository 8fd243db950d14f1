/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * encrypt.c - mig-encrypt / mig-decrypt: authenticated encryption of a
 * stream (layer kind 3, mig-stream(5)).
 *
 * Every frame (DATA, META, END) is sealed on its own with an AEAD under a
 * key of its own (derived from this stream's key and the frame's index),
 * with a nonce made of the frame's index and type and with type, flags
 * and index as associated data. Frames are therefore
 * independent (they are sealed and opened on -T threads) and still bound
 * to their place: a changed, dropped, repeated, reordered or moved frame
 * fails to open, and since END too is sealed, a stream cut short cannot be
 * made to look finished. The header carries cipher, key mode, the
 * passphrase's Argon2id parameters or the recipients' stanzas, a check
 * value of the file key and a MAC under a key derived from it, so a wrong
 * key is reported at the header, before any output. Nothing in it names a
 * key: the check value is keyed by the stream's random salt, and a
 * recipient stanza (as age's X25519 stanza) is an ephemeral share and the
 * wrapped file key, so a stream neither says whom it is for nor links to
 * other streams under the same key (mig-stream(5)).
 *
 * AES-256-GCM is the default where the CPU has AES-NI and PCLMUL: it
 * measured faster than ChaCha20-Poly1305 there (README, bench/encrypt);
 * elsewhere ChaCha20-Poly1305 is, but OpenSSL seals and opens AES-GCM
 * without them too (constant-time, slower), so either cipher works on
 * every CPU. The frames
 * are sealed and opened with OpenSSL's implementations of the two AEADs,
 * which measured 2.4 times as fast as libsodium's on this work (bench/aead:
 * its wide-vector AES-GCM and ChaCha20); the output is the same, byte for
 * byte (tests/vectors). HKDF-SHA-256 of the recipient stanzas is
 * OpenSSL's too; everything else -- key derivation, Argon2id, X25519, the
 * stanzas' ChaCha20-Poly1305, the MAC of the header, locked memory -- is
 * libsodium's.
 * Its key files are filters/keyfile.c's (keyfile.h), shared with mig-keygen.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"
#include "mig.h"

/* ---- The layer's parameters ------------------------------------------------ */

enum { CIPHER_AES256GCM = 1, CIPHER_CHACHA20POLY1305 = 2 };
enum { MODE_KEYFILE = 1, MODE_PASSPHRASE = 2, MODE_RECIPIENTS = 3 };

/* 2: no key ids; a keyed check value; age-style anonymous stanzas */
#define PARAMS_VERSION 2
#define SALT_BYTES 32
#define FIXED_BYTES (4 + SALT_BYTES) /* version, cipher, mode, n, salt */
#define CHECK_BYTES 16               /* the file key's check value */
#define MAC_BYTES crypto_auth_BYTES  /* HMAC-SHA-512-256 */
#define WRAP_TAG_BYTES crypto_aead_chacha20poly1305_ietf_ABYTES
#define STANZA_BYTES (crypto_scalarmult_BYTES + MIG_KEY_BYTES + WRAP_TAG_BYTES)
#define STANZA_INFO "mig-encrypt-2 X25519"
#define PW_BYTES (8 + 8 + crypto_pwhash_SALTBYTES)
#define MAX_RECIPIENTS 32
#define MAX_IDENTITIES 16
#define PASS_MAX 1024
#define TAG_BYTES 16 /* both ciphers */
#define NONCE_BYTES 12
#define AD_BYTES 10

/* the largest Argon2id cost a header may ask of a decoder */
#define PW_OPS_MAX 16
#define PW_MEM_MAX ((size_t)crypto_pwhash_MEMLIMIT_SENSITIVE)

struct cost {
	const char *name;
	unsigned long long ops;
	size_t mem;
};
static const struct cost costs[] = {
	{ "interactive", crypto_pwhash_OPSLIMIT_INTERACTIVE,
	  crypto_pwhash_MEMLIMIT_INTERACTIVE },
	{ "moderate", crypto_pwhash_OPSLIMIT_MODERATE,
	  crypto_pwhash_MEMLIMIT_MODERATE },
	{ "sensitive", crypto_pwhash_OPSLIMIT_SENSITIVE,
	  crypto_pwhash_MEMLIMIT_SENSITIVE },
};

/* Secrets of one stream, in locked memory that core dumps leave out. */
struct secrets {
	uint8_t payload[MIG_KEY_BYTES];
	uint8_t file[MIG_KEY_BYTES];
	uint8_t mac[crypto_auth_KEYBYTES];
	uint8_t eph[crypto_scalarmult_SCALARBYTES]; /* a stanza's */
	uint8_t shared[crypto_scalarmult_BYTES];
	uint8_t wrap[MIG_KEY_BYTES];
	char pass[PASS_MAX + 2];
	size_t pass_len;
};

struct enc {
	/* key sources, from the options */
	struct mig_key key;
	bool have_key, have_pass;
	struct mig_key rcpt[MAX_RECIPIENTS];
	size_t nrcpt;
	struct mig_key ident[MAX_IDENTITIES];
	size_t nident;
	int cipher_opt; /* 0: the fastest there is */
	const struct cost *cost;
	/* the stream */
	int cipher;
	struct secrets *s;
};

/* The key of one frame, in locked memory (sodium_malloc). OpenSSL keeps
 * its key schedule in the cipher context and wipes it when it is freed. */
struct frame_key {
	uint8_t key[MIG_KEY_BYTES];
};

struct frame_ctx {
	const struct enc *st;
	struct frame_key *k;
	EVP_CIPHER_CTX *evp;
	uint8_t *buf;
	size_t cap;
};

#define FRAME_KDF_CONTEXT "migkit-f" /* crypto_kdf: 8 characters */

static const char *cipher_name(int c)
{
	return c == CIPHER_AES256GCM		? "aes256gcm"
	       : c == CIPHER_CHACHA20POLY1305 ? "chacha20poly1305"
					      : "unknown";
}

static void *enc_create(void)
{
	struct mig_err e;
	struct enc *c;

	if (mig_crypto_init(&e) < 0 || !(c = calloc(1, sizeof *c)))
		return NULL;
	if (!(c->s = mig_locked_malloc(sizeof *c->s))) {
		free(c);
		return NULL;
	}
	sodium_memzero(c->s, sizeof *c->s);
	c->cost = &costs[1];
	return c;
}

static void enc_destroy(void *st)
{
	struct enc *c = st;

	mig_key_free(&c->key);
	for (size_t i = 0; i < c->nrcpt; i++)
		mig_key_free(&c->rcpt[i]);
	for (size_t i = 0; i < c->nident; i++)
		mig_key_free(&c->ident[i]);
	sodium_free(c->s);
	free(c);
}

static const struct mig_option enc_options[] = {
	{ "key", 'k', "KEYFILE", "symmetric key from mig-keygen -o",
	  MIG_OPT_BOTH },
	{ "passphrase-file", 0, "FILE", "passphrase: first line of FILE",
	  MIG_OPT_BOTH },
	{ "passphrase-fd", 0, "N", "passphrase: first line read from fd N",
	  MIG_OPT_BOTH },
	{ "recipient", 'r', "FILE.pub", "encrypt to this public key "
					"(repeatable)", MIG_OPT_BOTH },
	{ "identity", 'i', "FILE", "decrypt with this secret identity "
				   "(repeatable)", MIG_OPT_BOTH },
	{ "cipher", 0, "NAME", "aes256gcm or chacha20poly1305 (default: "
			       "the fastest)", MIG_OPT_ENCODE },
	{ "pwhash-cost", 0, "COST", "Argon2id cost: interactive, moderate "
				    "(default) or sensitive", MIG_OPT_ENCODE },
	{ NULL, 0, NULL, NULL, MIG_OPT_BOTH },
};

static int read_passphrase(struct enc *c, int fd, const char *what,
			   struct mig_err *e)
{
	struct secrets *s = c->s;
	size_t got = 0;

	if (c->have_pass)
		return mig_err_set(e, MIG_EXIT_USAGE, "one passphrase at most");
	for (;;) {
		ssize_t n = read(fd, s->pass + got, sizeof s->pass - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mig_err_set(e, MIG_EXIT_IO, "%s: %s", what,
					   strerror(errno));
		got += (size_t)n;
		if (n == 0 || memchr(s->pass, '\n', got) ||
		    got == sizeof s->pass - 1)
			break;
	}
	char *nl = memchr(s->pass, '\n', got);
	if (nl)
		got = (size_t)(nl - s->pass);
	if (got && s->pass[got - 1] == '\r')
		got--;
	sodium_memzero(s->pass + got, sizeof s->pass - got);
	if (got > PASS_MAX)
		return mig_err_set(e, MIG_EXIT_USAGE, "%s: the passphrase is "
				   "longer than %d bytes", what, PASS_MAX);
	if (got == 0)
		return mig_err_set(e, MIG_EXIT_USAGE, "%s: the passphrase is "
				   "empty", what);
	s->pass_len = got;
	c->have_pass = true;
	return 0;
}

static int enc_set_option(void *st, const struct mig_option *o,
			  const char *arg, struct mig_err *e)
{
	struct enc *c = st;
	const char *n = o->long_name;

	if (strcmp(n, "key") == 0) {
		if (c->have_key)
			return mig_err_set(e, MIG_EXIT_USAGE, "-k: one key file "
					   "at most");
		if (mig_key_load(&c->key, arg, MIG_KEY_SYMMETRIC, e) < 0)
			return -1;
		c->have_key = true;
	} else if (strcmp(n, "passphrase-file") == 0) {
		int fd = open(arg, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return mig_err_set(e, errno == ENOENT ? MIG_EXIT_USAGE
							      : MIG_EXIT_IO,
					   "%s: %s", arg, strerror(errno));
		int r = mig_secret_file_check(fd, arg, e);
		if (r == 0)
			r = read_passphrase(c, fd, arg, e);
		close(fd);
		return r;
	} else if (strcmp(n, "passphrase-fd") == 0) {
		char *end;
		long fd = strtol(arg, &end, 10);
		if (*arg == '\0' || *end || fd < 3 || fd > 1 << 20)
			return mig_err_set(e, MIG_EXIT_USAGE,
					   "--passphrase-fd: '%s' is not a "
					   "descriptor from 3 up (0 is the "
					   "stream, 1 the output)", arg);
		char what[64];
		snprintf(what, sizeof what, "descriptor %ld", fd);
		return read_passphrase(c, (int)fd, what, e);
	} else if (strcmp(n, "recipient") == 0) {
		if (c->nrcpt == MAX_RECIPIENTS)
			return mig_err_set(e, MIG_EXIT_USAGE, "-r: %d recipients "
					   "at most", MAX_RECIPIENTS);
		if (mig_key_load(&c->rcpt[c->nrcpt], arg, MIG_KEY_RECIPIENT,
				 e) < 0)
			return -1;
		c->nrcpt++;
	} else if (strcmp(n, "identity") == 0) {
		if (c->nident == MAX_IDENTITIES)
			return mig_err_set(e, MIG_EXIT_USAGE, "-i: %d identities "
					   "at most", MAX_IDENTITIES);
		if (mig_key_load(&c->ident[c->nident], arg, MIG_KEY_IDENTITY,
				 e) < 0)
			return -1;
		c->nident++;
	} else if (strcmp(n, "cipher") == 0) {
		if (strcmp(arg, "aes256gcm") == 0)
			c->cipher_opt = CIPHER_AES256GCM;
		else if (strcmp(arg, "chacha20poly1305") == 0)
			c->cipher_opt = CIPHER_CHACHA20POLY1305;
		else
			return mig_err_set(e, MIG_EXIT_USAGE, "--cipher: '%s' is "
					   "not aes256gcm or chacha20poly1305",
					   arg);
	} else if (strcmp(n, "pwhash-cost") == 0) {
		c->cost = NULL;
		for (size_t i = 0; i < sizeof costs / sizeof costs[0]; i++)
			if (strcmp(arg, costs[i].name) == 0)
				c->cost = &costs[i];
		if (!c->cost)
			return mig_err_set(e, MIG_EXIT_USAGE, "--pwhash-cost: '%s' "
					   "is not interactive, moderate or "
					   "sensitive", arg);
	}
	return 0;
}

/* ---- Keys of the stream ----------------------------------------------------- */

/* MAC key, payload key and the check value of the file key: BLAKE2b keyed
 * with the file key, over a label and the stream's salt, so that every
 * stream has keys of its own and a check value that names the key to
 * nobody without it and links the stream to no other. */
static void derive_one(const struct secrets *s, const char *label,
		       const uint8_t *salt, uint8_t *out, size_t out_len)
{
	uint8_t msg[64 + SALT_BYTES];
	size_t l = strlen(label);

	memcpy(msg, label, l);
	memcpy(msg + l, salt, SALT_BYTES);
	crypto_generichash(out, out_len, msg, l + SALT_BYTES, s->file,
			   sizeof s->file);
}

static void derive(struct enc *c, const uint8_t *salt,
		   uint8_t check[CHECK_BYTES])
{
	struct secrets *s = c->s;

	derive_one(s, "mig-encrypt-1 header mac", salt, s->mac, sizeof s->mac);
	derive_one(s, "mig-encrypt-1 payload", salt, s->payload,
		   sizeof s->payload);
	derive_one(s, "mig-encrypt-2 key check", salt, check, CHECK_BYTES);
	sodium_memzero(s->file, sizeof s->file);
}

static int pwhash(struct enc *c, const uint8_t *salt, unsigned long long ops,
		  size_t mem, struct mig_err *e)
{
	struct secrets *s = c->s;

	if (crypto_pwhash(s->file, sizeof s->file, s->pass, s->pass_len, salt,
			  ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return mig_err_set(e, MIG_EXIT_SYS, "Argon2id needs %zu MiB "
				   "of memory, which the system refused",
				   mem >> 20);
	sodium_memzero(s->pass, sizeof s->pass);
	return 0;
}

/* ---- Recipient stanzas: age's X25519 stanza -------------------------------- */

static const uint8_t zero_nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

/* The wrap key of a stanza (into s->wrap): HKDF-SHA-256 of the X25519
 * shared secret in s->shared, salted with the ephemeral share and the
 * recipient's public key. 0, or -1 if OpenSSL failed. */
static int wrap_key(struct secrets *s, const uint8_t *share,
		    const uint8_t *rcpt)
{
	uint8_t salt[2 * MIG_KEY_BYTES];
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						 (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, s->shared,
						  sizeof s->shared),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt,
						  sizeof salt),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						  (char *)STANZA_INFO,
						  sizeof STANZA_INFO - 1),
		OSSL_PARAM_construct_end(),
	};
	int ok;

	memcpy(salt, share, MIG_KEY_BYTES);
	memcpy(salt + MIG_KEY_BYTES, rcpt, MIG_KEY_BYTES);
	ok = kctx && EVP_KDF_derive(kctx, s->wrap, sizeof s->wrap, params) == 1;
	EVP_KDF_CTX_free(kctx); /* wipes its copy of the secret */
	EVP_KDF_free(kdf);
	sodium_memzero(s->shared, sizeof s->shared);
	return ok ? 0 : -1;
}

/* A stanza wrapping the file key (s->file) for recipient r: a fresh
 * ephemeral share, then the file key sealed under the wrap key. */
static int stanza_seal(struct secrets *s, const struct mig_key *r,
		       uint8_t *out, struct mig_err *e)
{
	int bad;

	randombytes_buf(s->eph, sizeof s->eph);
	bad = crypto_scalarmult_base(out, s->eph) != 0 ||
	      crypto_scalarmult(s->shared, s->eph, r->pub) != 0;
	sodium_memzero(s->eph, sizeof s->eph);
	if (bad) /* the shared secret would be zero: a low-order point */
		return mig_err_set(e, MIG_EXIT_USAGE, "recipient key id %s is "
				   "not a usable X25519 public key", r->id_hex);
	if (wrap_key(s, out, r->pub) < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "HKDF failed (OpenSSL)");
	crypto_aead_chacha20poly1305_ietf_encrypt(out + crypto_scalarmult_BYTES,
						  NULL, s->file, sizeof s->file,
						  NULL, 0, NULL, zero_nonce,
						  s->wrap);
	sodium_memzero(s->wrap, sizeof s->wrap);
	return 0;
}

/* Try identity k on a stanza: 1 and the file key in s->file if it opens,
 * 0 if not (not for k, or altered: a stanza cannot tell), -1 on error. */
static int stanza_open(struct secrets *s, const uint8_t *st,
		       const struct mig_key *k, struct mig_err *e)
{
	int opened;

	if (crypto_scalarmult(s->shared, k->secret, st) != 0)
		return 0; /* a low-order share opens for nobody */
	if (wrap_key(s, st, k->pub) < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "HKDF failed (OpenSSL)");
	opened = crypto_aead_chacha20poly1305_ietf_decrypt(
			 s->file, NULL, NULL, st + crypto_scalarmult_BYTES,
			 MIG_KEY_BYTES + WRAP_TAG_BYTES, NULL, 0, zero_nonce,
			 s->wrap) == 0;
	sodium_memzero(s->wrap, sizeof s->wrap);
	return opened;
}

/* ---- The header, written ------------------------------------------------------ */

/* The key part of mode (at p + *n, *n grows) and the file key. */
static int key_part_write(struct enc *c, int mode, uint8_t *p, size_t *n,
			  struct mig_err *e)
{
	struct secrets *s = c->s;

	switch (mode) {
	case MODE_KEYFILE:
		memcpy(s->file, c->key.secret, MIG_KEY_BYTES);
		break;
	case MODE_PASSPHRASE:
		mig_put_le64(p + *n, c->cost->ops);
		mig_put_le64(p + *n + 8, c->cost->mem);
		randombytes_buf(p + *n + 16, crypto_pwhash_SALTBYTES);
		if (pwhash(c, p + *n + 16, c->cost->ops, c->cost->mem, e) < 0)
			return -1;
		*n += PW_BYTES;
		break;
	case MODE_RECIPIENTS:
		randombytes_buf(s->file, sizeof s->file);
		for (size_t i = 0; i < c->nrcpt; i++, *n += STANZA_BYTES)
			if (stanza_seal(s, &c->rcpt[i], p + *n, e) < 0)
				return -1;
		break;
	}
	return 0;
}

/* END is sealed like every frame: the layer has no trailer. */
static int enc_encode_init(void *st, struct mig_encode_args *args,
			   uint8_t *p, size_t *len, struct mig_err *e)
{
	struct enc *c = st;
	struct secrets *s = c->s;
	size_t n = FIXED_BYTES;
	int mode, sources = c->have_key + c->have_pass + (c->nrcpt > 0);

	(void)args;

	mig_locked_tell();
	if (c->nident)
		return mig_err_set(e, MIG_EXIT_USAGE, "-i is for decrypting; "
				   "to encrypt to a key pair give its public "
				   "half with -r NAME.pub");
	if (sources == 0)
		return mig_err_set(e, MIG_EXIT_USAGE, "no key: give -k KEYFILE, "
				   "--passphrase-file FILE, --passphrase-fd N "
				   "or -r RECIPIENT.pub");
	if (sources > 1)
		return mig_err_set(e, MIG_EXIT_USAGE, "give one kind of key: "
				   "-k, a passphrase or -r recipients");
	/* AES-GCM is the faster only with AES-NI; OpenSSL has both anyway */
	c->cipher = c->cipher_opt ? c->cipher_opt
		    : crypto_aead_aes256gcm_is_available()
			    ? CIPHER_AES256GCM
			    : CIPHER_CHACHA20POLY1305;
	mode = c->have_key ? MODE_KEYFILE
	       : c->have_pass ? MODE_PASSPHRASE : MODE_RECIPIENTS;
	p[0] = PARAMS_VERSION;
	p[1] = (uint8_t)c->cipher;
	p[2] = (uint8_t)mode;
	p[3] = (uint8_t)c->nrcpt;
	randombytes_buf(p + 4, SALT_BYTES);
	if (key_part_write(c, mode, p, &n, e) < 0)
		return -1;
	derive(c, p + 4, p + n);
	n += CHECK_BYTES;
	crypto_auth(p + n, p, n, s->mac);
	sodium_memzero(s->mac, sizeof s->mac);
	*len = n + MAC_BYTES;
	return 0;
}

/* ---- The header, read ----------------------------------------------------------- */

/* Check the layout; 0 and the mode part's length, or -1. */
static int parse_params(const uint8_t *p, size_t len, size_t *mode_len,
			struct mig_err *e)
{
	if (len && p[0] == 1)
		return mig_err_set(e, MIG_EXIT_DATA, "encrypt parameters "
				   "version 1 are no longer read (that version "
				   "named its keys in the header): decrypt the "
				   "stream with the mig-decrypt that wrote it");
	if (len < FIXED_BYTES + CHECK_BYTES + MAC_BYTES ||
	    p[0] != PARAMS_VERSION)
		return mig_err_set(e, MIG_EXIT_DATA, "unsupported encrypt "
				   "parameters (version %u, %zu bytes)",
				   len ? p[0] : 0, len);
	if (p[1] != CIPHER_AES256GCM && p[1] != CIPHER_CHACHA20POLY1305)
		return mig_err_set(e, MIG_EXIT_DATA, "unknown cipher %u", p[1]);
	switch (p[2]) {
	case MODE_KEYFILE: *mode_len = 0; break;
	case MODE_PASSPHRASE: *mode_len = PW_BYTES; break;
	case MODE_RECIPIENTS: *mode_len = (size_t)p[3] * STANZA_BYTES; break;
	default:
		return mig_err_set(e, MIG_EXIT_DATA, "unknown key mode %u",
				   p[2]);
	}
	if ((p[2] == MODE_RECIPIENTS) != (p[3] > 0) || p[3] > MAX_RECIPIENTS ||
	    len != FIXED_BYTES + *mode_len + CHECK_BYTES + MAC_BYTES)
		return mig_err_set(e, MIG_EXIT_DATA, "malformed encrypt "
				   "parameters (%zu bytes)", len);
	return 0;
}

/* The key ids of our identities, "a, b", for messages. */
static void identity_ids(const struct enc *c, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t j = 0; j < c->nident && at < len; j++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s",
				       j ? ", " : "", c->ident[j].id_hex);
}

/* Every identity on every stanza: nothing says which is whose. */
static int open_stanzas(struct enc *c, const uint8_t *p, unsigned nst,
			struct mig_err *e)
{
	char mine[MAX_IDENTITIES * (MIG_KEY_ID_HEX + 2)];

	if (!c->nident)
		return mig_err_set(e, MIG_EXIT_DATA, "the stream is encrypted "
				   "to %u recipient%s: give -i IDENTITY", nst,
				   nst > 1 ? "s" : "");
	for (size_t i = 0; i < nst; i++)
		for (size_t j = 0; j < c->nident; j++) {
			int r = stanza_open(c->s, p + i * STANZA_BYTES,
					    &c->ident[j], e);
			if (r != 0)
				return r < 0 ? -1 : 0;
		}
	identity_ids(c, mine, sizeof mine);
	return mig_err_set(e, MIG_EXIT_DATA, "wrong identity: the stream is "
			   "encrypted to %u recipient%s, none of them %s "
			   "(key id%s %s)", nst, nst > 1 ? "s" : "",
			   c->nident > 1 ? "these identities" : "this identity",
			   c->nident > 1 ? "s" : "", mine);
}

/* The file key (into s->file) from the key part of mode p[2] at m. */
static int key_part_read(struct enc *c, const uint8_t *p, const uint8_t *m,
			 struct mig_err *e)
{
	switch (p[2]) {
	case MODE_KEYFILE:
		if (!c->have_key)
			return mig_err_set(e, MIG_EXIT_DATA, "the stream is "
					   "encrypted with a key file: give "
					   "-k KEYFILE");
		memcpy(c->s->file, c->key.secret, MIG_KEY_BYTES);
		return 0;
	case MODE_PASSPHRASE: {
		uint64_t ops = mig_get_le64(m), mem = mig_get_le64(m + 8);
		if (!c->have_pass)
			return mig_err_set(e, MIG_EXIT_DATA, "the stream is "
					   "encrypted with a passphrase: give "
					   "--passphrase-file FILE or "
					   "--passphrase-fd N");
		if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > PW_OPS_MAX ||
		    mem < crypto_pwhash_MEMLIMIT_MIN || mem > PW_MEM_MAX)
			return mig_err_set(e, MIG_EXIT_DATA, "the header asks "
					   "for an Argon2id cost (ops %llu, "
					   "memory %llu bytes) outside this "
					   "program's limits",
					   (unsigned long long)ops,
					   (unsigned long long)mem);
		return pwhash(c, m + 16, ops, (size_t)mem, e);
	}
	default:
		return open_stanzas(c, m, p[3], e);
	}
}

static int enc_decode_init(void *st, const uint8_t *p, size_t len,
			   struct mig_err *e)
{
	struct enc *c = st;
	struct secrets *s = c->s;
	size_t mlen, n;
	uint8_t check[CHECK_BYTES];

	mig_locked_tell();
	if (parse_params(p, len, &mlen, e) < 0)
		return -1;
	if (c->nrcpt)
		return mig_err_set(e, MIG_EXIT_USAGE, "-r is for encrypting; "
				   "to decrypt give the secret identity "
				   "with -i");
	if (!c->have_key && !c->have_pass && !c->nident)
		return mig_err_set(e, MIG_EXIT_USAGE, "no key: give -k KEYFILE, "
				   "--passphrase-file FILE, --passphrase-fd N "
				   "or -i IDENTITY");
	c->cipher = p[1];
	if (key_part_read(c, p, p + FIXED_BYTES, e) < 0)
		return -1;
	derive(c, p + 4, check);
	n = FIXED_BYTES + mlen;
	if (sodium_memcmp(check, p + n, CHECK_BYTES) != 0) {
		sodium_memzero(s->mac, sizeof s->mac);
		if (p[2] == MODE_KEYFILE)
			return mig_err_set(e, MIG_EXIT_DATA, "wrong key: the "
					   "stream was not encrypted with this "
					   "key (key id %s), or its header was "
					   "altered", c->key.id_hex);
		/* a stanza opened: the key is right, the header is not */
		return mig_err_set(e, MIG_EXIT_DATA, "%s",
				   p[2] == MODE_PASSPHRASE
					   ? "wrong passphrase: the stream was "
					     "not encrypted with it, or its "
					     "header was altered"
					   : "header authentication failed: "
					     "the header was altered");
	}
	n += CHECK_BYTES;
	int bad = crypto_auth_verify(p + n, p, n, s->mac);
	sodium_memzero(s->mac, sizeof s->mac);
	if (bad)
		return mig_err_set(e, MIG_EXIT_DATA, "header authentication "
				   "failed: the header was altered");
	return 0;
}

/* ---- Frames ------------------------------------------------------------------ */

static void *enc_frame_ctx_create(void *st, struct mig_err *e)
{
	struct frame_ctx *x = calloc(1, sizeof *x);

	if (!x) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		return NULL;
	}
	x->st = st;
	if (!(x->k = mig_locked_malloc(sizeof *x->k)) ||
	    !(x->evp = EVP_CIPHER_CTX_new())) {
		sodium_free(x->k);
		free(x);
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		return NULL;
	}
	return x;
}

static void enc_frame_ctx_destroy(void *ctx)
{
	struct frame_ctx *x = ctx;

	if (x->buf)
		sodium_memzero(x->buf, x->cap); /* plaintext, when decoding */
	free(x->buf);
	EVP_CIPHER_CTX_free(x->evp);
	sodium_free(x->k);
	free(x);
}

static int ctx_room(struct frame_ctx *x, size_t n, struct mig_err *e)
{
	if (n <= x->cap)
		return 0;
	uint8_t *b = malloc(n);
	if (!b)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	if (x->buf)
		sodium_memzero(x->buf, x->cap);
	free(x->buf);
	x->buf = b;
	x->cap = n;
	return 0;
}

/* Each frame has a key of its own, derived from the payload key and its
 * index: one key never seals more than a frame (at most 16 MiB + 64 KiB),
 * far below AES-GCM's limit per key. Then the nonce: index (8 bytes),
 * type, three zero bytes; the associated data: type, flags, index. */
static void frame_setup(struct frame_ctx *x, const struct mig_frame *f,
			uint8_t flags, uint8_t nonce[NONCE_BYTES],
			uint8_t ad[AD_BYTES])
{
	const struct enc *c = x->st;

	crypto_kdf_derive_from_key(x->k->key, sizeof x->k->key, f->index,
				   FRAME_KDF_CONTEXT, c->s->payload);
	memset(nonce, 0, NONCE_BYTES);
	mig_put_le64(nonce, f->index);
	nonce[8] = f->type;
	ad[0] = f->type;
	ad[1] = flags;
	mig_put_le64(ad + 2, f->index);
}

/* Seal (enc) or open one frame: out gets the ciphertext and its tag, or
 * the plaintext, which the caller hands out only when this returns 0 (the
 * tag is checked before). Frames are at most 16 MiB + 64 KiB: an int. */
static int aead(struct frame_ctx *x, int enc, const uint8_t *in, size_t len,
		const uint8_t nonce[NONCE_BYTES], const uint8_t ad[AD_BYTES],
		uint8_t *out)
{
	const EVP_CIPHER *cipher = x->st->cipher == CIPHER_AES256GCM
					   ? EVP_aes_256_gcm()
					   : EVP_chacha20_poly1305();
	int n, fin, body = (int)(enc ? len : len - TAG_BYTES);
	uint8_t *tag = enc ? out + len : (uint8_t *)in + body;

	if (EVP_CipherInit_ex(x->evp, cipher, NULL, x->k->key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(x->evp, NULL, &n, ad, AD_BYTES) != 1 ||
	    EVP_CipherUpdate(x->evp, out, &n, in, body) != 1)
		return -1;
	if (!enc && EVP_CIPHER_CTX_ctrl(x->evp, EVP_CTRL_AEAD_SET_TAG,
					TAG_BYTES, tag) != 1)
		return -1;
	if (EVP_CipherFinal_ex(x->evp, out + n, &fin) != 1)
		return -1;
	if (enc && EVP_CIPHER_CTX_ctrl(x->evp, EVP_CTRL_AEAD_GET_TAG,
				       TAG_BYTES, tag) != 1)
		return -1;
	return 0;
}

static int enc_encode(void *ctx, struct mig_frame *in, size_t tailroom,
		      const uint8_t **out, size_t *out_len, uint8_t *flags,
		      struct mig_err *e)
{
	struct frame_ctx *x = ctx;
	const struct enc *c = x->st;
	uint8_t nonce[NONCE_BYTES], ad[AD_BYTES];

	(void)tailroom;
	*flags = 0;
	if (ctx_room(x, in->len + TAG_BYTES, e) < 0)
		return -1;
	frame_setup(x, in, 0, nonce, ad);
	if (aead(x, 1, in->data, in->len, nonce, ad, x->buf) < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "%s: sealing a frame "
				   "failed (OpenSSL)", cipher_name(c->cipher));
	*out = x->buf;
	*out_len = in->len + TAG_BYTES;
	return 0;
}

static int enc_decode(void *ctx, const struct mig_frame *in,
		      const uint8_t **out, size_t *out_len, struct mig_err *e)
{
	struct frame_ctx *x = ctx;
	uint8_t nonce[NONCE_BYTES], ad[AD_BYTES];

	if (in->len < TAG_BYTES)
		return mig_err_set(e, MIG_EXIT_DATA, "frame too short to hold "
				   "its authentication tag");
	if (ctx_room(x, in->len, e) < 0)
		return -1;
	frame_setup(x, in, in->flags, nonce, ad);
	if (aead(x, 0, in->data, in->len, nonce, ad, x->buf) < 0)
		return mig_err_set(e, MIG_EXIT_DATA, "authentication failed: "
				   "the frame was altered, or frames were "
				   "dropped, replayed or reordered");
	*out = x->buf;
	*out_len = in->len - TAG_BYTES;
	return 0;
}

static void enc_describe(const uint8_t *p, size_t len, char *buf, size_t buflen)
{
	struct mig_err e;
	size_t mlen;

	if (parse_params(p, len, &mlen, &e) < 0) {
		snprintf(buf, buflen, "unknown");
		return;
	}
	const uint8_t *m = p + FIXED_BYTES;
	switch (p[2]) {
	case MODE_KEYFILE:
		snprintf(buf, buflen, "cipher=%s key=keyfile", cipher_name(p[1]));
		break;
	case MODE_PASSPHRASE:
		snprintf(buf, buflen, "cipher=%s key=passphrase kdf=argon2id "
			 "ops=%llu mem=%lluM", cipher_name(p[1]),
			 (unsigned long long)mig_get_le64(m),
			 (unsigned long long)(mig_get_le64(m + 8) >> 20));
		break;
	default: /* how many, never whom */
		snprintf(buf, buflen, "cipher=%s key=recipients n=%u",
			 cipher_name(p[1]), p[3]);
	}
}

MIG_FILTER(encrypt) {
	.name = "encrypt",
	.decode_name = "decrypt",
	.kind = MIG_KIND_ENCRYPT,
	.summary = "Encrypt and authenticate a stream (AES-256-GCM or "
		   "ChaCha20-Poly1305), or check and decrypt one (-d).",
	.max_overhead = TAG_BYTES,
	.frame_flags = 0, /* none: every frame's flags byte is 0 */
	.options = enc_options,
	.create = enc_create,
	.destroy = enc_destroy,
	.set_option = enc_set_option,
	.frame_ctx_create = enc_frame_ctx_create,
	.frame_ctx_destroy = enc_frame_ctx_destroy,
	.encode_init = enc_encode_init,
	.encode = enc_encode,
	.decode_init = enc_decode_init,
	.decode = enc_decode,
	.describe = enc_describe,
	.needs_key = true,
};

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
 * made to look finished. The header carries cipher, key mode, key ids and
 * the passphrase's Argon2id parameters, and is authenticated with a MAC
 * under a key derived from the file key, so a wrong key is reported at the
 * header, before any output.
 *
 * AES-256-GCM is used where the CPU has AES-NI and PCLMUL: it measured
 * faster than ChaCha20-Poly1305 here (README, bench/encrypt). The frames
 * are sealed and opened with OpenSSL's implementations of the two AEADs,
 * which measured 2.4 times as fast as libsodium's on this work (bench/aead:
 * its wide-vector AES-GCM and ChaCha20); the output is the same, byte for
 * byte (tests/vectors). Everything else -- key derivation, Argon2id,
 * X25519, the MAC of the header, locked memory -- is libsodium's.
 * Key files are read and written here, for mig-keygen too (encrypt.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encrypt.h"
#include "mig.h"

/* ---- Key files ------------------------------------------------------------ */

static const char *const key_prefix[] = {
	[MIG_KEY_SYMMETRIC] = "mig-key-1:",
	[MIG_KEY_IDENTITY] = "mig-identity-1:",
	[MIG_KEY_RECIPIENT] = "mig-recipient-1:",
};

const char *mig_key_type_name(enum mig_key_type t)
{
	switch (t) {
	case MIG_KEY_SYMMETRIC: return "symmetric key";
	case MIG_KEY_IDENTITY: return "identity (secret key)";
	case MIG_KEY_RECIPIENT: return "recipient (public key)";
	}
	return "key";
}

int mig_crypto_init(struct mig_err *e)
{
	if (sodium_init() < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "libsodium failed to start");
	/* keys and the guest's memory pass through here: no core dumps */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return 0;
}

static void key_id(enum mig_key_type t, const uint8_t *bytes,
		   uint8_t id[MIG_KEY_ID_BYTES])
{
	static const char label[] = "mig-key-id-1";

	if (t == MIG_KEY_SYMMETRIC) /* a PRF of the key: reveals nothing */
		crypto_generichash(id, MIG_KEY_ID_BYTES, (const uint8_t *)label,
				   sizeof label - 1, bytes, MIG_KEY_BYTES);
	else /* of the public key: identity and recipient share it */
		crypto_generichash(id, MIG_KEY_ID_BYTES, bytes, MIG_KEY_BYTES,
				   (const uint8_t *)"mig-recipient-id-1", 18);
}

static void id_hex(const uint8_t *id, char *hex)
{
	sodium_bin2hex(hex, MIG_KEY_ID_HEX, id, MIG_KEY_ID_BYTES);
}

int mig_key_make(struct mig_key *k, enum mig_key_type type,
		 const uint8_t *bytes, struct mig_err *e)
{
	memset(k, 0, sizeof *k);
	k->type = type;
	if (type == MIG_KEY_RECIPIENT) {
		memcpy(k->pub, bytes, MIG_KEY_BYTES);
		key_id(type, k->pub, k->id);
	} else {
		if (!(k->secret = sodium_malloc(MIG_KEY_BYTES)))
			return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		memcpy(k->secret, bytes, MIG_KEY_BYTES);
		if (type == MIG_KEY_IDENTITY) {
			crypto_scalarmult_base(k->pub, k->secret);
			key_id(type, k->pub, k->id);
		} else
			key_id(type, k->secret, k->id);
	}
	id_hex(k->id, k->id_hex);
	return 0;
}

void mig_key_public(const struct mig_key *id, struct mig_key *r)
{
	memset(r, 0, sizeof *r);
	r->type = MIG_KEY_RECIPIENT;
	memcpy(r->pub, id->pub, MIG_KEY_BYTES);
	memcpy(r->id, id->id, MIG_KEY_ID_BYTES);
	memcpy(r->id_hex, id->id_hex, MIG_KEY_ID_HEX);
}

void mig_key_free(struct mig_key *k)
{
	sodium_free(k->secret); /* wipes it */
	sodium_memzero(k, sizeof *k);
}

size_t mig_key_text(const struct mig_key *k, char *out, size_t len)
{
	char b64[sodium_base64_ENCODED_LEN(MIG_KEY_BYTES,
					   sodium_base64_VARIANT_ORIGINAL)];
	int n;

	sodium_bin2base64(b64, sizeof b64,
			  k->type == MIG_KEY_RECIPIENT ? k->pub : k->secret,
			  MIG_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(out, len, "# migkit %s, key id %s\n%s%s\n",
		     mig_key_type_name(k->type), k->id_hex,
		     key_prefix[k->type], b64);
	sodium_memzero(b64, sizeof b64);
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

/* Read a whole small file into locked memory (text is at most len-1). */
static long read_secret_file(int fd, char *buf, size_t len, const char *path,
			     struct mig_err *e)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mig_err_set(e, MIG_EXIT_IO, "%s: %s", path,
					   strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == len - 1)
			return mig_err_set(e, MIG_EXIT_USAGE,
					   "%s: too long for a key file", path);
	}
	buf[got] = '\0';
	return (long)got;
}

static int parse_key_text(struct mig_key *k, char *text, const char *path,
			  enum mig_key_type want, struct mig_err *e)
{
	enum mig_key_type type = 0;
	uint8_t *bin = sodium_malloc(MIG_KEY_BYTES + 1);
	size_t binlen = 0;
	char *line, *save = NULL, *b64 = NULL;
	int rc = -1;

	if (!bin)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		if (l == 0 || line[0] == '#')
			continue;
		if (b64) {
			mig_err_set(e, MIG_EXIT_USAGE, "%s: more than one key "
				    "line", path);
			goto out;
		}
		for (int t = MIG_KEY_SYMMETRIC; t <= MIG_KEY_RECIPIENT; t++)
			if (strncmp(line, key_prefix[t], strlen(key_prefix[t])) == 0) {
				type = t;
				b64 = line + strlen(key_prefix[t]);
			}
		if (!b64) {
			mig_err_set(e, MIG_EXIT_USAGE, "%s: not a migkit key file "
				    "(no mig-key-1:, mig-identity-1: or "
				    "mig-recipient-1: line)", path);
			goto out;
		}
	}
	if (!b64) {
		mig_err_set(e, MIG_EXIT_USAGE, "%s: no key in the file", path);
		goto out;
	}
	if (sodium_base642bin(bin, MIG_KEY_BYTES + 1, b64, strlen(b64), NULL,
			      &binlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    binlen != MIG_KEY_BYTES) {
		mig_err_set(e, MIG_EXIT_USAGE, "%s: the key is not %d bytes of "
			    "base64", path, MIG_KEY_BYTES);
		goto out;
	}
	if (type != want) {
		mig_err_set(e, MIG_EXIT_USAGE, "%s is %s %s, not %s %s%s", path,
			    type == MIG_KEY_IDENTITY ? "an" : "a",
			    mig_key_type_name(type),
			    want == MIG_KEY_IDENTITY ? "an" : "a",
			    mig_key_type_name(want),
			    type == MIG_KEY_IDENTITY && want == MIG_KEY_RECIPIENT
				    ? " (give its public half, NAME.pub)" : "");
		goto out;
	}
	rc = mig_key_make(k, type, bin, e);
out:
	sodium_free(bin);
	return rc;
}

/* OpenSSH's rule for private keys: nobody but the owner may read them. */
static int check_private(int fd, const char *path, struct mig_err *e)
{
	struct stat s;

	if (fstat(fd, &s) < 0)
		return mig_err_set(e, MIG_EXIT_IO, "%s: %s", path,
				   strerror(errno));
	if (S_ISREG(s.st_mode) && (s.st_mode & 077))
		return mig_err_set(e, MIG_EXIT_USAGE,
				   "%s: permissions %04o are too open: a secret "
				   "key must not be accessible by group or "
				   "others; refusing it (chmod 600 %s)",
				   path, (unsigned)(s.st_mode & 07777), path);
	return 0;
}

int mig_key_load(struct mig_key *k, const char *path, enum mig_key_type want,
		 struct mig_err *e)
{
	char *text = sodium_malloc(MIG_KEY_TEXT_MAX * 4);
	int fd, rc = -1;

	if (!text)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		mig_err_set(e, errno == ENOENT || errno == EACCES
				       ? MIG_EXIT_USAGE : MIG_EXIT_IO,
			    "%s: %s", path, strerror(errno));
		goto out;
	}
	if (read_secret_file(fd, text, MIG_KEY_TEXT_MAX * 4, path, e) < 0 ||
	    parse_key_text(k, text, path, want, e) < 0)
		goto out;
	/* a secret key (the type is the one wanted, by now) */
	if (want != MIG_KEY_RECIPIENT && check_private(fd, path, e) < 0) {
		mig_key_free(k);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	sodium_free(text);
	return rc;
}

/* ---- The layer's parameters ------------------------------------------------ */

enum { CIPHER_AES256GCM = 1, CIPHER_CHACHA20POLY1305 = 2 };
enum { MODE_KEYFILE = 1, MODE_PASSPHRASE = 2, MODE_RECIPIENTS = 3 };

#define PARAMS_VERSION 1
#define SALT_BYTES 32
#define FIXED_BYTES (4 + SALT_BYTES) /* version, cipher, mode, n, salt */
#define MAC_BYTES crypto_auth_BYTES  /* HMAC-SHA-512-256 */
#define SEALED_BYTES (crypto_box_SEALBYTES + MIG_KEY_BYTES)
#define STANZA_BYTES (MIG_KEY_ID_BYTES + SEALED_BYTES)
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
	if (!(c->s = sodium_malloc(sizeof *c->s))) {
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
		int r = check_private(fd, arg, e);
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
		if (c->cipher_opt == CIPHER_AES256GCM &&
		    !crypto_aead_aes256gcm_is_available())
			return mig_err_set(e, MIG_EXIT_USAGE, "--cipher "
					   "aes256gcm: this CPU lacks AES-NI "
					   "or PCLMUL");
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

/* MAC and payload keys: BLAKE2b keyed with the file key, over a label and
 * the stream's salt, so that every stream has keys of its own. */
static void derive(struct enc *c, const uint8_t *salt)
{
	static const char lmac[] = "mig-encrypt-1 header mac";
	static const char lpay[] = "mig-encrypt-1 payload";
	uint8_t msg[sizeof lmac - 1 + SALT_BYTES];
	struct secrets *s = c->s;

	memcpy(msg, lmac, sizeof lmac - 1);
	memcpy(msg + sizeof lmac - 1, salt, SALT_BYTES);
	crypto_generichash(s->mac, sizeof s->mac, msg, sizeof lmac - 1 + SALT_BYTES,
			   s->file, sizeof s->file);
	memcpy(msg, lpay, sizeof lpay - 1);
	memcpy(msg + sizeof lpay - 1, salt, SALT_BYTES);
	crypto_generichash(s->payload, sizeof s->payload, msg,
			   sizeof lpay - 1 + SALT_BYTES, s->file, sizeof s->file);
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

static int enc_encode_init(void *st, uint8_t *p, size_t *len,
			   struct mig_err *e)
{
	struct enc *c = st;
	struct secrets *s = c->s;
	size_t n = FIXED_BYTES;
	int mode, sources = c->have_key + c->have_pass + (c->nrcpt > 0);

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
	switch (mode) {
	case MODE_KEYFILE:
		memcpy(p + n, c->key.id, MIG_KEY_ID_BYTES);
		n += MIG_KEY_ID_BYTES;
		memcpy(s->file, c->key.secret, MIG_KEY_BYTES);
		break;
	case MODE_PASSPHRASE:
		mig_put_le64(p + n, c->cost->ops);
		mig_put_le64(p + n + 8, c->cost->mem);
		randombytes_buf(p + n + 16, crypto_pwhash_SALTBYTES);
		if (pwhash(c, p + n + 16, c->cost->ops, c->cost->mem, e) < 0)
			return -1;
		n += PW_BYTES;
		break;
	case MODE_RECIPIENTS:
		randombytes_buf(s->file, sizeof s->file);
		for (size_t i = 0; i < c->nrcpt; i++) {
			memcpy(p + n, c->rcpt[i].id, MIG_KEY_ID_BYTES);
			if (crypto_box_seal(p + n + MIG_KEY_ID_BYTES, s->file,
					    MIG_KEY_BYTES, c->rcpt[i].pub) != 0)
				return mig_err_set(e, MIG_EXIT_SYS,
						   "crypto_box_seal failed");
			n += STANZA_BYTES;
		}
		break;
	}
	derive(c, p + 4);
	crypto_auth(p + n, p, n, s->mac);
	sodium_memzero(s->mac, sizeof s->mac);
	*len = n + MAC_BYTES;
	return 0;
}

static void list_ids(const uint8_t *p, size_t n, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && at + MIG_KEY_ID_HEX + 2 < len; i++) {
		char hex[MIG_KEY_ID_HEX];
		id_hex(p + i * STANZA_BYTES, hex);
		at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "",
				       hex);
	}
}

/* Check the layout; 0 and the mode part's length, or -1. */
static int parse_params(const uint8_t *p, size_t len, size_t *mode_len,
			struct mig_err *e)
{
	if (len < FIXED_BYTES + MAC_BYTES || p[0] != PARAMS_VERSION)
		return mig_err_set(e, MIG_EXIT_DATA, "unsupported encrypt "
				   "parameters (version %u, %zu bytes)",
				   len ? p[0] : 0, len);
	if (p[1] != CIPHER_AES256GCM && p[1] != CIPHER_CHACHA20POLY1305)
		return mig_err_set(e, MIG_EXIT_DATA, "unknown cipher %u", p[1]);
	switch (p[2]) {
	case MODE_KEYFILE: *mode_len = MIG_KEY_ID_BYTES; break;
	case MODE_PASSPHRASE: *mode_len = PW_BYTES; break;
	case MODE_RECIPIENTS: *mode_len = (size_t)p[3] * STANZA_BYTES; break;
	default:
		return mig_err_set(e, MIG_EXIT_DATA, "unknown key mode %u",
				   p[2]);
	}
	if ((p[2] == MODE_RECIPIENTS) != (p[3] > 0) || p[3] > MAX_RECIPIENTS ||
	    len != FIXED_BYTES + *mode_len + MAC_BYTES)
		return mig_err_set(e, MIG_EXIT_DATA, "malformed encrypt "
				   "parameters (%zu bytes)", len);
	return 0;
}

static int enc_decode_init(void *st, const uint8_t *p, size_t len,
			   struct mig_err *e)
{
	struct enc *c = st;
	struct secrets *s = c->s;
	size_t mlen, n = FIXED_BYTES;
	char ids[MAX_RECIPIENTS * (MIG_KEY_ID_HEX + 2)], hex[MIG_KEY_ID_HEX];

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
	if (c->cipher == CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available())
		return mig_err_set(e, MIG_EXIT_SYS, "the stream is encrypted "
				   "with AES-256-GCM, which libsodium offers "
				   "only on CPUs with AES-NI and PCLMUL");
	switch (p[2]) {
	case MODE_KEYFILE:
		id_hex(p + n, hex);
		if (!c->have_key)
			return mig_err_set(e, MIG_EXIT_DATA, "the stream is "
					   "encrypted with a key file (key id "
					   "%s): give -k KEYFILE", hex);
		if (sodium_memcmp(p + n, c->key.id, MIG_KEY_ID_BYTES) != 0)
			return mig_err_set(e, MIG_EXIT_DATA, "wrong key: the "
					   "stream was encrypted for key id %s, "
					   "this key is %s", hex, c->key.id_hex);
		memcpy(s->file, c->key.secret, MIG_KEY_BYTES);
		break;
	case MODE_PASSPHRASE: {
		uint64_t ops = mig_get_le64(p + n), mem = mig_get_le64(p + n + 8);
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
		if (pwhash(c, p + n + 16, ops, (size_t)mem, e) < 0)
			return -1;
		break;
	}
	case MODE_RECIPIENTS: {
		bool opened = false;
		list_ids(p + n, p[3], ids, sizeof ids);
		if (!c->nident)
			return mig_err_set(e, MIG_EXIT_DATA, "the stream is "
					   "encrypted to recipients (key ids "
					   "%s): give -i IDENTITY", ids);
		for (size_t i = 0; i < p[3] && !opened; i++) {
			const uint8_t *sz = p + n + i * STANZA_BYTES;
			for (size_t j = 0; j < c->nident && !opened; j++) {
				if (sodium_memcmp(sz, c->ident[j].id,
						  MIG_KEY_ID_BYTES) != 0)
					continue;
				if (crypto_box_seal_open(s->file,
							 sz + MIG_KEY_ID_BYTES,
							 SEALED_BYTES,
							 c->ident[j].pub,
							 c->ident[j].secret) != 0)
					return mig_err_set(e, MIG_EXIT_DATA,
							   "header authentication "
							   "failed: the file key "
							   "sealed to key id %s "
							   "does not open: the "
							   "header was altered",
							   c->ident[j].id_hex);
				opened = true;
			}
		}
		if (!opened) {
			char mine[MAX_IDENTITIES * (MIG_KEY_ID_HEX + 2)] = "";
			size_t at = 0;
			for (size_t j = 0; j < c->nident; j++)
				at += (size_t)snprintf(mine + at, sizeof mine - at,
						       "%s%s", j ? ", " : "",
						       c->ident[j].id_hex);
			return mig_err_set(e, MIG_EXIT_DATA, "wrong identity: "
					   "the stream was encrypted for key "
					   "id%s %s, this identity is %s",
					   p[3] > 1 ? "s" : "", ids, mine);
		}
		break;
	}
	}
	derive(c, p + 4);
	n += mlen;
	int bad = crypto_auth_verify(p + n, p, n, s->mac);
	sodium_memzero(s->mac, sizeof s->mac);
	if (bad)
		return mig_err_set(e, MIG_EXIT_DATA, "%s",
				   p[2] == MODE_PASSPHRASE
					   ? "wrong passphrase: the header does "
					     "not authenticate with it"
					   : "header authentication failed: "
					     "the header was altered");
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
	if (!(x->k = sodium_malloc(sizeof *x->k)) ||
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

static int enc_encode_trailer(void *st, uint8_t *trailer, size_t *len,
			      struct mig_err *e)
{
	(void)st, (void)trailer, (void)e;
	*len = 0; /* END is sealed like every frame: nothing to add */
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

static int enc_decode_trailer(void *st, const uint8_t *trailer, size_t len,
			      struct mig_err *e)
{
	(void)st, (void)trailer;
	if (len != 0)
		return mig_err_set(e, MIG_EXIT_DATA, "unexpected trailer of "
				   "%zu bytes in END", len);
	return 0;
}

static void enc_describe(const uint8_t *p, size_t len, char *buf, size_t buflen)
{
	struct mig_err e;
	size_t mlen;
	char ids[MAX_RECIPIENTS * (MIG_KEY_ID_HEX + 2)], hex[MIG_KEY_ID_HEX];

	if (parse_params(p, len, &mlen, &e) < 0) {
		snprintf(buf, buflen, "unknown");
		return;
	}
	const uint8_t *m = p + FIXED_BYTES;
	switch (p[2]) {
	case MODE_KEYFILE:
		id_hex(m, hex);
		snprintf(buf, buflen, "cipher=%s key=keyfile id=%s",
			 cipher_name(p[1]), hex);
		break;
	case MODE_PASSPHRASE:
		snprintf(buf, buflen, "cipher=%s key=passphrase kdf=argon2id "
			 "ops=%llu mem=%lluM", cipher_name(p[1]),
			 (unsigned long long)mig_get_le64(m),
			 (unsigned long long)(mig_get_le64(m + 8) >> 20));
		break;
	default:
		list_ids(m, p[3], ids, sizeof ids);
		snprintf(buf, buflen, "cipher=%s key=recipients ids=%s",
			 cipher_name(p[1]), ids);
	}
}

MIG_FILTER(encrypt) {
	.name = "encrypt",
	.decode_name = "decrypt",
	.kind = 3,
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
	.encode_trailer = enc_encode_trailer,
	.decode_init = enc_decode_init,
	.decode = enc_decode,
	.decode_trailer = enc_decode_trailer,
	.describe = enc_describe,
	.needs_key = true,
};

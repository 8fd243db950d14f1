/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keyfile.c - migkit's key files, read and written in one place: the keys
 * of mig-encrypt (filters/keyfile.c) and the signing keys of signed
 * envelopes (sign.c), all made by mig-keygen(1):
 *
 *   # comment lines, then one line
 *   mig-key-1:BASE64        a 32-byte symmetric key (secret)
 *   mig-identity-1:BASE64   an X25519 secret key (secret)
 *   mig-recipient-1:BASE64  an X25519 public key
 *   mig-sign-key-1:BASE64   an Ed25519 seed (secret)
 *   mig-signer-1:BASE64     an Ed25519 public key
 *
 * A reader knows every prefix, so a key of the wrong type is named for
 * what it is. Secrets pass only through locked memory (libsodium's), and
 * a secret file that group or others can read is refused, as OpenSSH
 * refuses such private keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig.h"

#define TEXT_MAX 1024

static const struct {
	const char *prefix, *name;
	bool secret;
} types[] = {
	[MIG_KEYFILE_SYMMETRIC] = { "mig-key-1:", "symmetric key", true },
	[MIG_KEYFILE_IDENTITY] = { "mig-identity-1:", "identity (secret key)", true },
	[MIG_KEYFILE_RECIPIENT] = { "mig-recipient-1:", "recipient (public key)", false },
	[MIG_KEYFILE_SIGNING] = { "mig-sign-key-1:", "signing key (secret)", true },
	[MIG_KEYFILE_SIGNER] = { "mig-signer-1:", "signer (public key)", false },
};
#define FIRST MIG_KEYFILE_SYMMETRIC
#define LAST MIG_KEYFILE_SIGNER

const char *mig_keyfile_type_name(enum mig_keyfile_type t)
{
	return t >= FIRST && t <= LAST ? types[t].name : "key";
}

/* ---- Locked memory ---------------------------------------------------------- */

/* The first errno of an mlock that failed, and whether -v has said so. */
static int unlocked_errno;
static bool unlocked_told;

void mig_locked_tell(void)
{
	if (unlocked_errno && mig_verbose && !unlocked_told) {
		unlocked_told = true;
		mig_warn("cannot lock key memory: %s; keys may reach swap",
			 strerror(unlocked_errno));
	}
}

/* sodium_malloc() locks the pages but ignores a failure: locking them again
 * (the kernel does not count pages twice) tells whether they are locked,
 * e.g. under RLIMIT_MEMLOCK. The memory is used either way. */
void *mig_locked_malloc(size_t n)
{
	void *p;

	if (sodium_init() < 0)
		return NULL;
	if ((p = sodium_malloc(n)) && sodium_mlock(p, n) != 0 && !unlocked_errno)
		unlocked_errno = errno ? errno : ENOMEM;
	mig_locked_tell();
	return p;
}

/* ---- Reading ------------------------------------------------------------------ */

/* The whole small file into text (at most len - 1 bytes). */
static int read_text(int fd, char *text, size_t len, const char *path,
		     struct mig_err *e)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, text + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mig_err_set(e, MIG_EXIT_IO, "%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		if ((got += (size_t)n) == len - 1)
			return mig_err_set(e, MIG_EXIT_USAGE, "%s: too long for a key "
					   "file", path);
	}
	text[got] = '\0';
	return 0;
}

/* The one key line: its type and where its base64 starts. */
static int find_key_line(char *text, const char *path,
			 enum mig_keyfile_type *type, char **b64, struct mig_err *e)
{
	char *line, *save = NULL;

	*b64 = NULL;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		if (l == 0 || line[0] == '#')
			continue;
		if (*b64)
			return mig_err_set(e, MIG_EXIT_USAGE, "%s: more than one key "
					   "line", path);
		for (int t = FIRST; t <= LAST; t++)
			if (!strncmp(line, types[t].prefix, strlen(types[t].prefix))) {
				*type = (enum mig_keyfile_type)t;
				*b64 = line + strlen(types[t].prefix);
			}
		if (!*b64)
			return mig_err_set(e, MIG_EXIT_USAGE, "%s: not a migkit key file "
					   "(no mig-key-1:, mig-identity-1:, "
					   "mig-recipient-1:, mig-sign-key-1: or "
					   "mig-signer-1: line)", path);
	}
	if (!*b64)
		return mig_err_set(e, MIG_EXIT_USAGE, "%s: no key in the file", path);
	return 0;
}

static const char *article(enum mig_keyfile_type t)
{
	return t == MIG_KEYFILE_IDENTITY ? "an" : "a";
}

/* A secret's public half is NAME.pub: say so when the secret was given. */
static int wrong_type(const char *path, enum mig_keyfile_type got,
		      enum mig_keyfile_type want, struct mig_err *e)
{
	bool half = (got == MIG_KEYFILE_IDENTITY && want == MIG_KEYFILE_RECIPIENT) ||
		    (got == MIG_KEYFILE_SIGNING && want == MIG_KEYFILE_SIGNER);

	return mig_err_set(e, MIG_EXIT_USAGE, "%s is %s %s, not %s %s%s", path,
			   article(got), types[got].name, article(want),
			   types[want].name,
			   half ? " (give its public half, NAME.pub)" : "");
}

/* OpenSSH's rule for private keys: nobody but the owner may read them. */
int mig_secret_file_check(int fd, const char *path, struct mig_err *e)
{
	struct stat s;

	if (fstat(fd, &s) < 0)
		return mig_err_set(e, MIG_EXIT_IO, "%s: %s", path, strerror(errno));
	if (S_ISREG(s.st_mode) && (s.st_mode & 077))
		return mig_err_set(e, MIG_EXIT_USAGE, "%s: permissions %04o are too "
				   "open: a secret key must not be accessible by "
				   "group or others; refusing it (chmod 600 %s)",
				   path, (unsigned)(s.st_mode & 07777), path);
	return 0;
}

int mig_keyfile_read(const char *path, enum mig_keyfile_type want,
		     uint8_t *key, struct mig_err *e)
{
	char *text = mig_locked_malloc(TEXT_MAX), *b64;
	uint8_t *bin = mig_locked_malloc(MIG_KEYFILE_BYTES + 1);
	enum mig_keyfile_type type = 0;
	size_t binlen = 0;
	int fd = -1, rc = -1;

	if (!text || !bin) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		mig_err_set(e, errno == ENOENT || errno == EACCES ? MIG_EXIT_USAGE
								   : MIG_EXIT_IO,
			    "%s: %s", path, strerror(errno));
		goto out;
	}
	if (read_text(fd, text, TEXT_MAX, path, e) < 0 ||
	    find_key_line(text, path, &type, &b64, e) < 0)
		goto out;
	if (sodium_base642bin(bin, MIG_KEYFILE_BYTES + 1, b64, strlen(b64), NULL,
			      &binlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    binlen != MIG_KEYFILE_BYTES) {
		mig_err_set(e, MIG_EXIT_USAGE, "%s: the key is not %d bytes of "
			    "base64", path, MIG_KEYFILE_BYTES);
		goto out;
	}
	if (type != want) {
		wrong_type(path, type, want, e);
		goto out;
	}
	if (types[type].secret && mig_secret_file_check(fd, path, e) < 0)
		goto out;
	memcpy(key, bin, MIG_KEYFILE_BYTES);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	sodium_free(text); /* wipes them */
	sodium_free(bin);
	return rc;
}

/* ---- Writing ------------------------------------------------------------------ */

size_t mig_keyfile_text(enum mig_keyfile_type t, const uint8_t *key,
			const char *id_label, const char *id, char *out, size_t len)
{
	char b64[sodium_base64_ENCODED_LEN(MIG_KEYFILE_BYTES,
					   sodium_base64_VARIANT_ORIGINAL)];
	int n;

	sodium_bin2base64(b64, sizeof b64, key, MIG_KEYFILE_BYTES,
			  sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(out, len, "# migkit %s, %s %s\n%s%s\n", types[t].name,
		     id_label, id, types[t].prefix, b64);
	sodium_memzero(b64, sizeof b64);
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

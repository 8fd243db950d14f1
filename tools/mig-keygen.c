/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-keygen - make the keys of mig-encrypt: a symmetric key file (-o),
 * or an X25519 key pair (--pair NAME: NAME is the secret identity,
 * NAME.pub the public recipient); -y prints an identity's recipient;
 * --sign-pair NAME, an Ed25519 signing key NAME and its signer NAME.pub
 * (channel/sign.c), for signed envelopes.
 *
 * Files are written to a temporary file (mode 0600 from the start) and
 * moved into place atomically, never over an existing file unless -f.
 * The formats are channel/keyfile.c's; the keys of mig-encrypt are
 * filters/keyfile.c's, which this program links (not the filter).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"
#include "mig.h"

static bool force, quiet;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-keygen -o KEYFILE [-f]\n"
		"       mig-keygen --pair NAME [-f]\n"
		"       mig-keygen -y IDENTITY\n"
		"       mig-keygen --sign-pair NAME [-f]\n"
		"Make keys for mig-encrypt(1), and signing keys for mig-qemu(1) "
		"and\nmig-envelope(1).\n\n"
		"  -o, --output KEYFILE  a random symmetric key (mig-encrypt -k)\n"
		"  -p, --pair NAME       an X25519 key pair: NAME, the secret "
		"identity\n"
		"                        (mig-decrypt -i), and NAME.pub, the "
		"recipient\n"
		"                        (mig-encrypt -r)\n"
		"  -y, --public IDENTITY print the recipient of an identity on "
		"stdout\n"
		"  -s, --sign-pair NAME  an Ed25519 signing pair: NAME, the "
		"signing key\n"
		"                        (--sign), and NAME.pub, the signer a "
		"reader\n"
		"                        trusts (--signer)\n"
		"  -f, --force           overwrite existing files\n"
		"  -q, --quiet           do not print the key id\n"
		"  -h, --help            this help\n"
		"  -V, --version         version\n\n"
		"Secret files are created with mode 0600. Exit status: 0 "
		"success, 2 usage\n"
		"(including a file that exists), 3 I/O error, 4 system error.\n"
		"See mig-keygen(1).\n");
}

static int fail(const struct mig_err *e)
{
	mig_warn("%s", e->msg);
	return e->code ? e->code : MIG_EXIT_SYS;
}

/* Write text to path through a temporary file in the same directory,
 * then move it into place: never a half-written key, never over an
 * existing file unless -f. */
static int write_file(const char *path, const char *text, size_t len,
		      mode_t mode, struct mig_err *e)
{
	size_t pl = strlen(path);
	char *tmp = malloc(pl + 16);
	int fd = -1, rc = -1;

	if (!tmp)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) { /* mode 0600 */
		mig_err_set(e, MIG_EXIT_IO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (mig_write_all(fd, text, len, e) < 0 || fchmod(fd, mode) < 0 ||
	    fsync(fd) < 0) {
		if (!e->msg[0])
			mig_err_set(e, MIG_EXIT_IO, "%s: %s", tmp,
				    strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		mig_err_set(e, MIG_EXIT_IO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	int r = force ? rename(tmp, path)
		      : renameat2(AT_FDCWD, tmp, AT_FDCWD, path,
				  RENAME_NOREPLACE);
	if (r < 0 && !force && (errno == EINVAL || errno == ENOSYS)) {
		/* a file system without RENAME_NOREPLACE: link() is
		 * atomic too */
		r = link(tmp, path);
	}
	if (r < 0) {
		if (errno == EEXIST)
			mig_err_set(e, MIG_EXIT_USAGE, "%s exists: not "
				    "overwriting it (use -f)", path);
		else
			mig_err_set(e, MIG_EXIT_IO, "%s: %s", path,
				    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp); /* gone after rename; the spare link after link() */
	free(tmp);
	return rc;
}

static int write_key(const char *path, const struct mig_key *k, mode_t mode,
		     struct mig_err *e)
{
	char *text = sodium_malloc(MIG_KEY_TEXT_MAX);
	size_t n;
	int rc;

	if (!text)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	n = mig_key_text(k, text, MIG_KEY_TEXT_MAX);
	rc = n ? write_file(path, text, n, mode, e)
	       : mig_err_set(e, MIG_EXIT_SYS, "key text too long");
	sodium_free(text);
	if (rc == 0 && !quiet)
		printf("%s: %s, key id %s\n", path, mig_key_type_name(k->type),
		       k->id_hex);
	return rc;
}

static int make_symmetric(const char *path, struct mig_err *e)
{
	uint8_t *raw = sodium_malloc(MIG_KEY_BYTES);
	struct mig_key k = { 0 };
	int rc = -1;

	if (!raw)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	randombytes_buf(raw, MIG_KEY_BYTES);
	if (mig_key_make(&k, MIG_KEY_SYMMETRIC, raw, e) == 0)
		rc = write_key(path, &k, 0600, e);
	mig_key_free(&k);
	sodium_free(raw);
	return rc;
}

/* A pair's public half is NAME.pub (malloc'd); it is checked before the
 * secret is written, so that no secret is left without it. */
static char *pub_name(const char *name, struct mig_err *e)
{
	size_t len = strlen(name) + 5;
	char *pub = malloc(len);

	if (!pub) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		return NULL;
	}
	snprintf(pub, len, "%s.pub", name);
	if (!force && access(pub, F_OK) == 0) {
		mig_err_set(e, MIG_EXIT_USAGE, "%s exists: not overwriting it "
			    "(use -f)", pub);
		free(pub);
		return NULL;
	}
	return pub;
}

static int make_pair(const char *name, struct mig_err *e)
{
	uint8_t pk[crypto_box_PUBLICKEYBYTES], *sk = sodium_malloc(crypto_box_SECRETKEYBYTES);
	struct mig_key id = { 0 }, rcpt;
	char *pub = NULL;
	int rc = -1;

	if (!sk) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto out;
	}
	if (!(pub = pub_name(name, e)))
		goto out;
	crypto_box_keypair(pk, sk);
	if (mig_key_make(&id, MIG_KEY_IDENTITY, sk, e) < 0)
		goto out;
	mig_key_public(&id, &rcpt);
	if (write_key(name, &id, 0600, e) < 0)
		goto out;
	if (write_key(pub, &rcpt, 0644, e) < 0) {
		unlink(name); /* no identity without its recipient */
		goto out;
	}
	rc = 0;
out:
	mig_key_free(&id);
	sodium_free(sk);
	free(pub);
	return rc;
}

/* Like make_pair: the secret first, and no secret without its .pub. */
static int make_sign_pair(const char *name, struct mig_err *e)
{
	char *secret = sodium_malloc(MIG_KEY_TEXT_MAX), pub_text[MIG_KEY_TEXT_MAX];
	char id[MIG_SIGNER_ID_HEX];
	char *pub = NULL;
	int rc = -1;

	if (!secret) {
		mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		goto out;
	}
	if (!(pub = pub_name(name, e)))
		goto out;
	if (mig_signing_pair_text(secret, MIG_KEY_TEXT_MAX, pub_text,
				  sizeof pub_text, id, e) < 0 ||
	    write_file(name, secret, strlen(secret), 0600, e) < 0)
		goto out;
	if (write_file(pub, pub_text, strlen(pub_text), 0644, e) < 0) {
		unlink(name);
		goto out;
	}
	if (!quiet)
		printf("%s: signing key, signer %s\n%s: signer (public key), "
		       "signer %s\n", name, id, pub, id);
	rc = 0;
out:
	sodium_free(secret);
	free(pub);
	return rc;
}

static int print_public(const char *path, struct mig_err *e)
{
	struct mig_key id, rcpt;
	char text[MIG_KEY_TEXT_MAX];
	size_t n;

	if (mig_key_load(&id, path, MIG_KEY_IDENTITY, e) < 0)
		return -1;
	mig_key_public(&id, &rcpt);
	mig_key_free(&id);
	n = mig_key_text(&rcpt, text, sizeof text);
	return mig_write_all(1, text, n, e);
}

/* What to make: exactly one is set */
struct request {
	const char *out, *pair, *pubof, *spair;
};

/* MIG_GO_ON, or the exit status to leave with. */
static int parse_args(struct request *rq, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "pair", required_argument, NULL, 'p' },
		{ "public", required_argument, NULL, 'y' },
		{ "sign-pair", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0; /* our own messages, in one write */
	while ((c = getopt_long(argc, argv, "+o:p:y:s:fqhV", lo, NULL)) != -1) {
		switch (c) {
		case 'o': rq->out = optarg; break;
		case 'p': rq->pair = optarg; break;
		case 'y': rq->pubof = optarg; break;
		case 's': rq->spair = optarg; break;
		case 'f': force = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return mig_stdout_finish();
		case 'V': return mig_print_version();
		default: return mig_unknown_option(argv);
		}
	}
	if (optind < argc)
		return mig_usage_error("unexpected argument '%s'", argv[optind]);
	if (!!rq->out + !!rq->pair + !!rq->pubof + !!rq->spair != 1)
		return mig_usage_error("give one of -o KEYFILE, --pair NAME, "
				       "-y IDENTITY or --sign-pair NAME");
	if ((rq->out && !*rq->out) || (rq->pair && !*rq->pair) ||
	    (rq->spair && !*rq->spair))
		return mig_usage_error("an empty file name");
	return MIG_GO_ON;
}

int main(int argc, char **argv)
{
	struct request rq = { 0 };
	struct mig_err e = { 0 };
	int rc;

	mig_progname = "mig-keygen";
	if (mig_stdfds_ensure(NULL) < 0) /* before anything is opened */
		return MIG_EXIT_SYS;
	if ((rc = parse_args(&rq, argc, argv)) != MIG_GO_ON)
		return rc;
	/* What it prints (the public key, or a line per key file) would be
	 * lost: refuse before a key is made, so that a retry needs no -f. */
	if ((rq.pubof || !quiet) && mig_stdout_check(&e) < 0)
		return fail(&e);
	if (mig_crypto_init(&e) < 0)
		return fail(&e);
	rc = rq.out ? make_symmetric(rq.out, &e)
	     : rq.pair ? make_pair(rq.pair, &e)
	     : rq.spair ? make_sign_pair(rq.spair, &e)
	     : print_public(rq.pubof, &e);
	if (rc < 0)
		return fail(&e);
	if (fflush(stdout) != 0) {
		mig_err_set(&e, MIG_EXIT_IO, "write to stdout: %s",
			    strerror(errno));
		return fail(&e);
	}
	return MIG_EXIT_OK;
}

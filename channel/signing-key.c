/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * signing-key.c - the Ed25519 keys of signed envelopes: a writer's signing
 * key (a seed, kept in locked memory), the signers a reader trusts, and
 * their short names. libsodium only, so mig-keygen can make them without
 * the rest of the library's dependencies.
 *
 * A signature says who wrote a stream; encryption says who may read it.
 * They are separate on purpose: with -r, anyone holding a recipient's .pub
 * can write a stream the recipient opens, and with -k every holder of the
 * key can, so neither tells a destination that a stream came from a host
 * it trusts. A signing key lives only on the writer.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mig.h"
#include "sign.h"

struct mig_signing_key {
	uint8_t *sk; /* locked: seed and public key, 64 bytes */
	uint8_t pub[MIG_SIGN_PUBLIC_BYTES];
};

int mig_sign_init(struct mig_err *e)
{
	if (sodium_init() < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "libsodium failed to start");
	return 0;
}

void mig_signer_id(const uint8_t *pub, char *hex)
{
	static const char label[] = "mig-signer-id-1";
	uint8_t h[crypto_generichash_BYTES_MIN];

	crypto_generichash(h, sizeof h, pub, MIG_SIGN_PUBLIC_BYTES,
			   (const uint8_t *)label, sizeof label - 1);
	sodium_bin2hex(hex, MIG_SIGNER_ID_HEX, h, (MIG_SIGNER_ID_HEX - 1) / 2);
}

int mig_signing_key_load(struct mig_signing_key **out, const char *path,
			 struct mig_err *e)
{
	struct mig_signing_key *k;
	uint8_t *seed;
	int rc;

	*out = NULL;
	if (mig_sign_init(e) < 0)
		return -1;
	k = calloc(1, sizeof *k);
	seed = mig_locked_malloc(crypto_sign_SEEDBYTES);
	if (!k || !seed || !(k->sk = mig_locked_malloc(crypto_sign_SECRETKEYBYTES))) {
		free(k);
		sodium_free(seed);
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	}
	if ((rc = mig_keyfile_read(path, MIG_KEYFILE_SIGNING, seed, e)) == 0)
		crypto_sign_seed_keypair(k->pub, k->sk, seed);
	sodium_free(seed);
	if (rc < 0) {
		mig_signing_key_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

void mig_signing_key_free(struct mig_signing_key *k)
{
	if (!k)
		return;
	sodium_free(k->sk); /* wipes it */
	free(k);
}

const uint8_t *mig_signing_key_public(const struct mig_signing_key *k)
{
	return k->pub;
}

int mig_sign_with(const struct mig_signing_key *k, const uint8_t *msg,
		  size_t len, uint8_t *sig)
{
	return crypto_sign_detached(sig, NULL, msg, len, k->sk);
}

int mig_signers_add(struct mig_signers *s, const char *path, struct mig_err *e)
{
	if (s->n == MIG_SIGNERS_MAX)
		return mig_err_set(e, MIG_EXIT_USAGE, "%s: more than %d signers",
				   path, MIG_SIGNERS_MAX);
	if (mig_sign_init(e) < 0 ||
	    mig_keyfile_read(path, MIG_KEYFILE_SIGNER, s->pub[s->n], e) < 0)
		return -1;
	s->n++;
	return 0;
}

bool mig_signers_has(const struct mig_signers *s, const uint8_t *pub)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (sodium_memcmp(s->pub[i], pub, MIG_SIGN_PUBLIC_BYTES) == 0)
			return true;
	return false;
}

int mig_signing_pair_text(char *secret, size_t slen, char *pub, size_t plen,
			  char *id_hex, struct mig_err *e)
{
	uint8_t *seed, *sk, pk[crypto_sign_PUBLICKEYBYTES];
	int rc = 0;

	if (mig_sign_init(e) < 0)
		return -1;
	seed = mig_locked_malloc(crypto_sign_SEEDBYTES);
	sk = mig_locked_malloc(crypto_sign_SECRETKEYBYTES);
	if (!seed || !sk) {
		sodium_free(seed);
		sodium_free(sk);
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	}
	randombytes_buf(seed, crypto_sign_SEEDBYTES);
	crypto_sign_seed_keypair(pk, sk, seed);
	mig_signer_id(pk, id_hex);
	if (!mig_keyfile_text(MIG_KEYFILE_SIGNING, seed, "signer", id_hex, secret, slen) ||
	    !mig_keyfile_text(MIG_KEYFILE_SIGNER, pk, "signer", id_hex, pub, plen))
		rc = mig_err_set(e, MIG_EXIT_SYS, "key text too long");
	sodium_free(seed);
	sodium_free(sk);
	return rc;
}

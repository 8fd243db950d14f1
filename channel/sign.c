/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sign.c - what a signed envelope signs (channel/envelope.c): a running
 * hash of the stream, signed with a context string that says which part
 * of the stream it stands for. The keys are in signing-key.c.
 *
 * Ed25519 is libsodium's; the running hash is OpenSSL's SHA-256, which
 * uses the CPU's SHA extensions (1.6 GB/s here, against 0.8-0.9 GB/s for
 * BLAKE2b and SHA-512), since a signed envelope hashes every byte.
 */
#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>

#include "mig.h"
#include "sign.h"

/* context (with its NUL) followed by digest */
static size_t message(const char *context, const uint8_t *digest, uint8_t *msg)
{
	size_t cl = strlen(context) + 1;

	memcpy(msg, context, cl);
	memcpy(msg + cl, digest, MIG_SIGN_DIGEST_BYTES);
	return cl + MIG_SIGN_DIGEST_BYTES;
}

int mig_sign_detached(const struct mig_signing_key *k, const char *context,
		      const uint8_t *digest, uint8_t *sig)
{
	uint8_t msg[MIG_SIGN_CONTEXT_MAX + MIG_SIGN_DIGEST_BYTES];

	return mig_sign_with(k, msg, message(context, digest, msg), sig);
}

bool mig_sign_verify(const uint8_t *pub, const char *context,
		     const uint8_t *digest, const uint8_t *sig)
{
	uint8_t msg[MIG_SIGN_CONTEXT_MAX + MIG_SIGN_DIGEST_BYTES];

	return crypto_sign_verify_detached(sig, msg, message(context, digest, msg),
					   pub) == 0;
}

void *mig_sign_hash_new(void)
{
	EVP_MD_CTX *h = EVP_MD_CTX_new();

	if (h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h);
		return NULL;
	}
	return h;
}

void mig_sign_hash_free(void *h)
{
	EVP_MD_CTX_free(h);
}

void mig_sign_hash_update(void *h, const void *p, size_t len)
{
	EVP_DigestUpdate(h, p, len);
}

/* The digest so far; the running hash goes on. */
int mig_sign_hash_peek(void *h, uint8_t *digest)
{
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	int ok = copy && EVP_MD_CTX_copy_ex(copy, h) == 1 &&
		 EVP_DigestFinal_ex(copy, digest, NULL) == 1;

	EVP_MD_CTX_free(copy);
	return ok ? 0 : -1;
}

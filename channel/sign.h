/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sign.h - the signing primitives behind signed envelopes (sign.c,
 * signing-key.c): a digest of what was written so far, signed with a
 * context string that says which part of the stream it stands for.
 */
#ifndef MIG_SIGN_H
#define MIG_SIGN_H

#include "mig.h"

#define MIG_SIGN_DIGEST_BYTES 32 /* SHA-256 */
#define MIG_SIGN_BYTES 64        /* Ed25519 */
#define MIG_SIGN_CONTEXT_MAX 64

int mig_sign_init(struct mig_err *e);
const uint8_t *mig_signing_key_public(const struct mig_signing_key *k);
/* Ed25519 of msg with k (signing-key.c: the secret stays there). */
int mig_sign_with(const struct mig_signing_key *k, const uint8_t *msg,
		  size_t len, uint8_t *sig);
/* Ed25519 over context (with its NUL) followed by digest. */
int mig_sign_detached(const struct mig_signing_key *k, const char *context,
		      const uint8_t *digest, uint8_t *sig);
bool mig_sign_verify(const uint8_t *pub, const char *context,
		     const uint8_t *digest, const uint8_t *sig);

/* A running SHA-256 (an OpenSSL digest context). */
void *mig_sign_hash_new(void);
void mig_sign_hash_free(void *h);
void mig_sign_hash_update(void *h, const void *p, size_t len);
int mig_sign_hash_peek(void *h, uint8_t *digest);

#endif

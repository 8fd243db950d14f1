/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keyfile.h - the keys of mig-encrypt and mig-decrypt (filters/keyfile.c),
 * shared with mig-keygen: a symmetric key, an X25519 identity and its
 * recipient. Their files are the channel's (mig_keyfile_read, the format
 * in channel/keyfile.c and mig-keygen(1)), so there is one reader and one
 * writer of every migkit key file.
 */
#ifndef MIG_KEYFILE_H
#define MIG_KEYFILE_H

#include <stdint.h>

#include "mig.h"

#define MIG_KEY_BYTES 32
#define MIG_KEY_ID_BYTES 8
#define MIG_KEY_ID_HEX (2 * MIG_KEY_ID_BYTES + 1)
#define MIG_KEY_TEXT_MAX 256

enum mig_key_type {
	MIG_KEY_SYMMETRIC = 1,
	MIG_KEY_IDENTITY = 2,
	MIG_KEY_RECIPIENT = 3,
};

struct mig_key {
	enum mig_key_type type;
	uint8_t *secret; /* sodium_malloc'd; NULL for a recipient */
	uint8_t pub[MIG_KEY_BYTES]; /* identity and recipient */
	uint8_t id[MIG_KEY_ID_BYTES];
	char id_hex[MIG_KEY_ID_HEX];
};

/* sodium_init(), and keep this process out of core dumps. */
int mig_crypto_init(struct mig_err *e);

/* Fill in type, id and (from the secret of an identity) pub; secret is
 * copied into sodium_malloc'd memory. */
int mig_key_make(struct mig_key *k, enum mig_key_type type,
		 const uint8_t *bytes, struct mig_err *e);
/* Read a key file; a secret one (key, identity) that group or others can
 * read is refused. want is the type the caller needs. */
int mig_key_load(struct mig_key *k, const char *path, enum mig_key_type want,
		 struct mig_err *e);
/* The file's text: a comment naming type and key id, then the key line.
 * Returns its length, or 0 if out is too small. */
size_t mig_key_text(const struct mig_key *k, char *out, size_t len);
/* The public half of an identity, as a recipient key. */
void mig_key_public(const struct mig_key *identity, struct mig_key *recipient);
void mig_key_free(struct mig_key *k);
const char *mig_key_type_name(enum mig_key_type type);

#endif

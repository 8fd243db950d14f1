/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keyfile.c - the keys of mig-encrypt and mig-decrypt: a symmetric key,
 * an X25519 identity, or its recipient; made, named by a key id, read from
 * and written to key files. The files' format is the channel's
 * (channel/keyfile.c, mig-keygen(1)); mig-keygen links this file and
 * libsodium only, not the encrypt filter.
 */
#include <sodium.h>
#include <string.h>
#include <sys/prctl.h>

#include "keyfile.h"
#include "mig.h"

static enum mig_keyfile_type file_type(enum mig_key_type t)
{
	return t == MIG_KEY_SYMMETRIC ? MIG_KEYFILE_SYMMETRIC
	       : t == MIG_KEY_IDENTITY ? MIG_KEYFILE_IDENTITY
				       : MIG_KEYFILE_RECIPIENT;
}

const char *mig_key_type_name(enum mig_key_type t)
{
	return mig_keyfile_type_name(file_type(t));
}

int mig_crypto_init(struct mig_err *e)
{
	if (sodium_init() < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "libsodium failed to start");
	/* keys and the guest's memory pass through here: no core dumps */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return 0;
}

/* A key id names a key to its owner (mig-keygen's output, "wrong key"):
 * a PRF of a symmetric key, which reveals nothing of it; a hash of a
 * pair's public key, so an identity and its recipient share it. Streams
 * carry no key id (mig-stream(5)). */
static void key_id(enum mig_key_type t, const uint8_t *bytes,
		   uint8_t id[MIG_KEY_ID_BYTES])
{
	static const char label[] = "mig-key-id-1";

	if (t == MIG_KEY_SYMMETRIC)
		crypto_generichash(id, MIG_KEY_ID_BYTES, (const uint8_t *)label,
				   sizeof label - 1, bytes, MIG_KEY_BYTES);
	else
		crypto_generichash(id, MIG_KEY_ID_BYTES, bytes, MIG_KEY_BYTES,
				   (const uint8_t *)"mig-recipient-id-1", 18);
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
		if (!(k->secret = mig_locked_malloc(MIG_KEY_BYTES)))
			return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
		memcpy(k->secret, bytes, MIG_KEY_BYTES);
		if (type == MIG_KEY_IDENTITY) {
			crypto_scalarmult_base(k->pub, k->secret);
			key_id(type, k->pub, k->id);
		} else
			key_id(type, k->secret, k->id);
	}
	sodium_bin2hex(k->id_hex, MIG_KEY_ID_HEX, k->id, MIG_KEY_ID_BYTES);
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
	return mig_keyfile_text(file_type(k->type),
				k->type == MIG_KEY_RECIPIENT ? k->pub : k->secret,
				"key id", k->id_hex, out, len);
}

int mig_key_load(struct mig_key *k, const char *path, enum mig_key_type want,
		 struct mig_err *e)
{
	uint8_t *bin = mig_locked_malloc(MIG_KEY_BYTES);
	int rc;

	if (!bin)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	rc = mig_keyfile_read(path, file_type(want), bin, e);
	if (rc == 0)
		rc = mig_key_make(k, want, bin, e);
	sodium_free(bin);
	return rc;
}

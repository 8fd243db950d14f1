/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * envelope.c - the envelope layer (kind 4): META around any stream, and
 * the mark that the stream is complete (mig-qemu seal, mig-tee --meta).
 *
 * Its frames are the tagged transform's (tagged.c). A signed envelope
 * adds, in the order a reader meets them (mig-stream(5)):
 *  - in the header's parameters: the signer's Ed25519 public key, the
 *    creation time, a random stream id, and a signature of all three, so a
 *    reader knows who wrote the stream before it reads a frame, and refuses
 *    a signer it does not trust at once;
 *  - after each META payload: a signature of the SHA-256 of the
 *    parameters and of every frame so far, so a META is checked before
 *    anything acts on it, and no META can be added, dropped or moved;
 *  - after END's digest: a signature of the same hash over the whole
 *    stream, so a reader reports success only for what the signer wrote.
 * A frame enters the hash as its type, index, length and payload.
 */
#include <sodium.h>
#include <string.h>
#include <time.h>

#include "mig.h"
#include "sign.h"
#include "tagged.h"

#define HASH_XXH3 1
#define SIG_ED25519 1
#define DIGEST_LEN 16 /* the tagged transform's END digest */
/* hash, signature algorithm, signer, created (le64), stream id, signature */
#define SIGNED_PARAMS_UNSIGNED_PART (2 + MIG_SIGN_PUBLIC_BYTES + 8 + MIG_STREAM_ID_BYTES)
#define SIGNED_PARAMS (SIGNED_PARAMS_UNSIGNED_PART + MIG_SIGN_BYTES)

static const char ctx_header[] = "migkit envelope header 1";
static const char ctx_meta[] = "migkit envelope meta 1";
static const char ctx_end[] = "migkit envelope end 1";

struct envelope {
	void *tagged;
	struct mig_signing_key *key;     /* encoding, when signing */
	const struct mig_signers *trust; /* decoding: required signers */
	struct mig_signers own_trust;    /* from --signer */
	void *hash;                      /* running SHA-256, when signed */
	struct mig_seal_sig sig;
};

static void *env_create(void)
{
	struct envelope *v = calloc(1, sizeof *v);

	if (v && !(v->tagged = mig_tagged_create())) {
		free(v);
		return NULL;
	}
	return v;
}

static void env_destroy(void *st)
{
	struct envelope *v = st;

	mig_tagged_destroy(v->tagged);
	mig_signing_key_free(v->key);
	mig_sign_hash_free(v->hash);
	free(v);
}

int mig_envelope_sign(void *st, const char *keyfile, struct mig_err *e)
{
	struct envelope *v = st;

	if (v->key)
		return mig_err_set(e, MIG_EXIT_USAGE, "one signing key only");
	if (mig_sign_init(e) < 0)
		return -1;
	return mig_signing_key_load(&v->key, keyfile, e);
}

void mig_envelope_trust(void *st, const struct mig_signers *trust)
{
	((struct envelope *)st)->trust = trust;
}

void mig_envelope_signature(const void *st, struct mig_seal_sig *sig)
{
	*sig = ((const struct envelope *)st)->sig;
}

const char *mig_meta_label(const struct mig_filter *f, const void *st)
{
	const struct envelope *v = st;

	if (f->needs_key)
		return "authenticated";
	if (f->kind != MIG_KIND_ENVELOPE || !v || !v->sig.is_signed)
		return "not authenticated";
	/* each META was checked against its signature before it was kept */
	return v->sig.trusted ? "signed" : "signed, signer not checked";
}

static const struct mig_option env_options[] = {
	{ "sign", 's', "KEY", "sign the envelope with this signing key "
	  "(mig-keygen --sign-pair)", MIG_OPT_ENCODE },
	{ "signer", 0, "PUB", "accept only an envelope signed by this signer "
	  "(repeatable)", MIG_OPT_DECODE },
	{ NULL, 0, NULL, NULL, 0 },
};

static int env_set_option(void *st, const struct mig_option *o,
			  const char *arg, struct mig_err *e)
{
	struct envelope *v = st;

	if (!strcmp(o->long_name, "sign"))
		return mig_envelope_sign(st, arg, e);
	if (mig_sign_init(e) < 0 || mig_signers_add(&v->own_trust, arg, e) < 0)
		return -1;
	v->trust = &v->own_trust;
	return 0;
}

/* A frame enters the signed hash as type, index, length, payload. */
static void hash_frame(void *h, const struct mig_frame *f, size_t len)
{
	uint8_t head[17];

	head[0] = f->type;
	mig_put_le64(head + 1, f->index);
	mig_put_le64(head + 9, len);
	mig_sign_hash_update(h, head, sizeof head);
	mig_sign_hash_update(h, f->data, len);
}

/* The hash starts with the header's parameters, signature included. */
static int hash_start(struct envelope *v, const uint8_t *params, size_t len,
		      struct mig_err *e)
{
	if (!(v->hash = mig_sign_hash_new()))
		return mig_err_set(e, MIG_EXIT_SYS, "SHA-256 unavailable");
	mig_sign_hash_update(v->hash, params, len);
	return 0;
}

static int sign_now(struct envelope *v, const char *context, uint8_t *sig,
		    struct mig_err *e)
{
	uint8_t d[MIG_SIGN_DIGEST_BYTES];

	if (mig_sign_hash_peek(v->hash, d) < 0 ||
	    mig_sign_detached(v->key, context, d, sig) != 0)
		return mig_err_set(e, MIG_EXIT_SYS, "signing failed");
	return 0;
}

static int verify_now(struct envelope *v, const char *context,
		      const uint8_t *sig, const char *what, struct mig_err *e)
{
	uint8_t d[MIG_SIGN_DIGEST_BYTES];

	if (mig_sign_hash_peek(v->hash, d) < 0)
		return mig_err_set(e, MIG_EXIT_SYS, "SHA-256 failed");
	if (!mig_sign_verify(v->sig.signer, context, d, sig))
		return mig_err_set(e, MIG_EXIT_DATA, "the signature of %s does not "
				   "verify (signer %s): the stream was changed "
				   "after it was signed", what, v->sig.signer_id);
	return 0;
}

/* ---- Encoding -------------------------------------------------------------- */

static int env_encode_init(void *st, struct mig_encode_args *a,
			   uint8_t *p, size_t *len, struct mig_err *e)
{
	struct envelope *v = st;
	uint8_t *at = p;

	if (mig_tagged_encode_init(v->tagged, a, p, len, e) < 0)
		return -1;
	if (!v->key)
		return 0;
	v->sig.is_signed = true;
	memcpy(v->sig.signer, mig_signing_key_public(v->key), MIG_SIGN_PUBLIC_BYTES);
	mig_signer_id(v->sig.signer, v->sig.signer_id);
	v->sig.created = (int64_t)time(NULL);
	randombytes_buf(v->sig.stream_id, MIG_STREAM_ID_BYTES);
	at[1] = SIG_ED25519;
	memcpy(at + 2, v->sig.signer, MIG_SIGN_PUBLIC_BYTES);
	mig_put_le64(at + 2 + MIG_SIGN_PUBLIC_BYTES, (uint64_t)v->sig.created);
	memcpy(at + 2 + MIG_SIGN_PUBLIC_BYTES + 8, v->sig.stream_id,
	       MIG_STREAM_ID_BYTES);
	/* the header's own signature: over its parameters before it */
	if (hash_start(v, p, SIGNED_PARAMS_UNSIGNED_PART, e) < 0 ||
	    sign_now(v, ctx_header, p + SIGNED_PARAMS_UNSIGNED_PART, e) < 0)
		return -1;
	mig_sign_hash_update(v->hash, p + SIGNED_PARAMS_UNSIGNED_PART,
			     MIG_SIGN_BYTES);
	*len = SIGNED_PARAMS;
	return 0;
}

static int env_encode(void *ctx, struct mig_frame *in, size_t tailroom,
		      const uint8_t **out, size_t *out_len, uint8_t *flags,
		      struct mig_err *e)
{
	struct envelope *v = ctx; /* no frame contexts: ctx is st */

	if (v->key && in->type != MIG_FRAME_END) {
		hash_frame(v->hash, in, in->len);
		if (in->type == MIG_FRAME_META) {
			if (tailroom < MIG_SIGN_BYTES)
				return mig_err_set(e, MIG_EXIT_SYS,
						   "no room for the signature");
			if (sign_now(v, ctx_meta, (uint8_t *)in->data + in->len, e) < 0)
				return -1;
			in->len += MIG_SIGN_BYTES;
			tailroom -= MIG_SIGN_BYTES;
		}
	}
	return mig_tagged_encode(v->tagged, in, tailroom, out, out_len, flags, e);
}

static int env_encode_trailer(void *st, uint8_t *trailer, size_t *len,
			      struct mig_err *e)
{
	struct envelope *v = st;

	if (mig_tagged_encode_trailer(v->tagged, trailer, len, e) < 0)
		return -1;
	if (!v->key)
		return 0;
	if (sign_now(v, ctx_end, trailer + *len, e) < 0)
		return -1;
	*len += MIG_SIGN_BYTES;
	return 0;
}

/* ---- Decoding -------------------------------------------------------------- */

static int env_decode_signed_header(struct envelope *v, const uint8_t *p,
				    size_t len, struct mig_err *e)
{
	if (len != SIGNED_PARAMS || p[1] != SIG_ED25519)
		return mig_err_set(e, MIG_EXIT_DATA, "unsupported envelope "
				   "signature (algorithm %u, %zu bytes of "
				   "parameters)", p[1], len);
	v->sig.is_signed = true;
	memcpy(v->sig.signer, p + 2, MIG_SIGN_PUBLIC_BYTES);
	mig_signer_id(v->sig.signer, v->sig.signer_id);
	v->sig.created = (int64_t)mig_get_le64(p + 2 + MIG_SIGN_PUBLIC_BYTES);
	memcpy(v->sig.stream_id, p + 2 + MIG_SIGN_PUBLIC_BYTES + 8,
	       MIG_STREAM_ID_BYTES);
	v->sig.trusted = mig_signers_has(v->trust, v->sig.signer);
	if (v->trust && !v->sig.trusted)
		return mig_err_set(e, MIG_EXIT_DATA, "the envelope is signed by "
				   "signer %s, which is not a trusted signer "
				   "(--signer)", v->sig.signer_id);
	if (mig_sign_init(e) < 0 ||
	    hash_start(v, p, SIGNED_PARAMS_UNSIGNED_PART, e) < 0 ||
	    verify_now(v, ctx_header, p + SIGNED_PARAMS_UNSIGNED_PART,
		       "the header", e) < 0)
		return -1;
	mig_sign_hash_update(v->hash, p + SIGNED_PARAMS_UNSIGNED_PART,
			     MIG_SIGN_BYTES);
	return 0;
}

static int env_decode_init(void *st, const uint8_t *p, size_t len,
			   struct mig_err *e)
{
	struct envelope *v = st;

	if (len > 1 && p[0] == HASH_XXH3)
		return env_decode_signed_header(v, p, len, e);
	if (mig_tagged_decode_init(v->tagged, p, len, e) < 0)
		return -1;
	if (v->trust)
		return mig_err_set(e, MIG_EXIT_DATA, "the envelope is not signed, "
				   "and a trusted signer is required (--signer)");
	return 0;
}

static int env_decode(void *ctx, const struct mig_frame *in,
		      const uint8_t **out, size_t *out_len, struct mig_err *e)
{
	struct envelope *v = ctx;

	if (mig_tagged_decode(v->tagged, in, out, out_len, e) < 0)
		return -1;
	if (!v->sig.is_signed || in->type == MIG_FRAME_END)
		return 0;
	struct mig_frame plain = *in;
	plain.data = *out;
	plain.len = *out_len;
	if (in->type == MIG_FRAME_META) {
		if (plain.len < MIG_SIGN_BYTES)
			return mig_err_set(e, MIG_EXIT_DATA, "META frame too "
					   "short for its signature");
		plain.len -= MIG_SIGN_BYTES;
	}
	hash_frame(v->hash, &plain, plain.len);
	if (in->type == MIG_FRAME_META &&
	    verify_now(v, ctx_meta, plain.data + plain.len, "a META frame", e) < 0)
		return -1;
	*out_len = plain.len;
	return 0;
}

static int env_decode_trailer(void *st, const uint8_t *trailer, size_t len,
			      struct mig_err *e)
{
	struct envelope *v = st;
	size_t want = DIGEST_LEN + (v->sig.is_signed ? MIG_SIGN_BYTES : 0);

	if (len != want)
		return mig_err_set(e, MIG_EXIT_DATA, "END holds %zu bytes after "
				   "its totals, not %zu%s", len, want,
				   v->sig.is_signed ? " (digest and signature)" : "");
	if (mig_tagged_decode_trailer(v->tagged, trailer, DIGEST_LEN, e) < 0)
		return -1;
	if (v->sig.is_signed &&
	    verify_now(v, ctx_end, trailer + DIGEST_LEN, "END", e) < 0)
		return -1;
	return 0;
}

static void env_describe(const uint8_t *p, size_t len, char *buf, size_t buflen)
{
	char id[MIG_SIGNER_ID_HEX], when[32] = "?";
	time_t t;
	struct tm tm;

	if (len != SIGNED_PARAMS || p[0] != HASH_XXH3 || p[1] != SIG_ED25519) {
		mig_tagged_describe(p, len, buf, buflen);
		return;
	}
	mig_signer_id(p + 2, id);
	t = (time_t)mig_get_le64(p + 2 + MIG_SIGN_PUBLIC_BYTES);
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(buf, buflen, "hash=xxh3, signed by %s, created %s", id, when);
}

MIG_FILTER(envelope) {
	.name = "envelope",
	.kind = MIG_KIND_ENVELOPE,
	.summary = "Wrap a stream in an envelope layer carrying META, or "
		   "unwrap one (-d); sign it, or accept only signed ones.",
	.options = env_options,
	.max_overhead = MIG_TAG_LEN + MIG_SIGN_BYTES,
	.create = env_create,
	.destroy = env_destroy,
	.set_option = env_set_option,
	.encode_init = env_encode_init,
	.encode = env_encode,
	.encode_trailer = env_encode_trailer,
	.decode_init = env_decode_init,
	.decode = env_decode,
	.decode_trailer = env_decode_trailer,
	.describe = env_describe,
};

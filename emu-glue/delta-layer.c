/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * delta-layer.c - the delta layer (kind 5, mig-stream(5)) as a filter of
 * the channel library: the checksum layer's tagged frames, and parameters
 * that bind a base checkpoint and the stream rebuilt from it. Its own
 * command is mig-delta (tools/mig-delta.c), which needs the base; this
 * much lets every tool that opens layers (mig-info) open it too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta-layer.h"
#include "tagged.h"

typedef unsigned long long ull;

/* ---- the layer: tagged frames, parameters of its own ----------------------- */

struct qd_layer {
	void *tagged;          /* the checksum layer's transform */
	struct qd_ident id;
};

void *qd_layer_new(const struct qd_ident *id)
{
	struct qd_layer *l = calloc(1, sizeof *l);

	if (l && !(l->tagged = mig_tagged_create())) {
		free(l);
		return NULL;
	}
	if (l && id)
		l->id = *id;
	return l;
}

const struct qd_ident *qd_layer_ident(const void *st)
{
	return &((const struct qd_layer *)st)->id;
}

static void *layer_create(void)
{
	return qd_layer_new(NULL);
}

static void layer_destroy(void *st)
{
	struct qd_layer *l = st;

	if (l)
		mig_tagged_destroy(l->tagged);
	free(l);
}

static int layer_encode_init(void *st, struct mig_encode_args *a,
			     uint8_t *p, size_t *len, struct mig_err *e)
{
	const struct qd_ident *id = &((struct qd_layer *)st)->id;

	(void)a, (void)e;
	p[0] = QD_HASH_XXH3;
	memcpy(p + 1, id->base_digest, QD_DIGEST);
	mig_put_le64(p + 17, id->base_bytes);
	memcpy(p + 25, id->layout_digest, QD_DIGEST);
	mig_put_le64(p + 41, id->ram_pages);
	mig_put_le64(p + 49, id->records);
	mig_put_le64(p + 57, id->delta_pages);
	memcpy(p + 65, id->ram_digest, QD_DIGEST);
	*len = QD_PARAMS_LEN;
	return 0;
}

static int layer_decode_init(void *st, const uint8_t *p, size_t len,
			     struct mig_err *e)
{
	struct qd_ident *id = &((struct qd_layer *)st)->id;

	if (len != QD_PARAMS_LEN || p[0] != QD_HASH_XXH3)
		return mig_err_set(e, MIG_EXIT_DATA, "unsupported delta "
				   "parameters (%zu bytes, hash %u)", len,
				   len ? p[0] : 0);
	memcpy(id->base_digest, p + 1, QD_DIGEST);
	id->base_bytes = mig_get_le64(p + 17);
	memcpy(id->layout_digest, p + 25, QD_DIGEST);
	id->ram_pages = mig_get_le64(p + 41);
	id->records = mig_get_le64(p + 49);
	id->delta_pages = mig_get_le64(p + 57);
	memcpy(id->ram_digest, p + 65, QD_DIGEST);
	if (id->records > id->ram_pages || id->delta_pages > id->records)
		return mig_err_set(e, MIG_EXIT_DATA, "delta parameters: %llu "
				   "page records of %llu pages, %llu carried",
				   (ull)id->records, (ull)id->ram_pages,
				   (ull)id->delta_pages);
	return 0;
}

static int layer_encode(void *ctx, struct mig_frame *in, size_t tailroom,
			const uint8_t **out, size_t *out_len, uint8_t *flags,
			struct mig_err *e)
{
	return mig_tagged_encode(((struct qd_layer *)ctx)->tagged, in, tailroom,
				 out, out_len, flags, e);
}

static int layer_encode_trailer(void *st, uint8_t *t, size_t *len,
				struct mig_err *e)
{
	return mig_tagged_encode_trailer(((struct qd_layer *)st)->tagged, t,
					 len, e);
}

static int layer_decode(void *ctx, const struct mig_frame *in,
			const uint8_t **out, size_t *out_len, struct mig_err *e)
{
	return mig_tagged_decode(((struct qd_layer *)ctx)->tagged, in, out,
				 out_len, e);
}

static int layer_decode_trailer(void *st, const uint8_t *t, size_t len,
				struct mig_err *e)
{
	return mig_tagged_decode_trailer(((struct qd_layer *)st)->tagged, t,
					 len, e);
}

void qd_hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void layer_describe(const uint8_t *p, size_t len, char *buf,
			   size_t buflen)
{
	char h[2 * QD_DIGEST + 1];

	if (len != QD_PARAMS_LEN || p[0] != QD_HASH_XXH3) {
		snprintf(buf, buflen, "hash=unknown");
		return;
	}
	qd_hex(p + 1, QD_DIGEST, h);
	snprintf(buf, buflen, "hash=xxh3 base=%s base-bytes=%llu pages=%llu "
		 "records=%llu carried=%llu", h, (ull)mig_get_le64(p + 17),
		 (ull)mig_get_le64(p + 41), (ull)mig_get_le64(p + 49),
		 (ull)mig_get_le64(p + 57));
}

MIG_FILTER(delta) {
	.name = "delta",
	.kind = MIG_KIND_DELTA,
	.summary = "the pages of a QEMU stream that differ from a base",
	.max_overhead = MIG_TAG_LEN,
	.create = layer_create,
	.destroy = layer_destroy,
	.encode_init = layer_encode_init,
	.encode = layer_encode,
	.encode_trailer = layer_encode_trailer,
	.decode_init = layer_decode_init,
	.decode = layer_decode,
	.decode_trailer = layer_decode_trailer,
	.describe = layer_describe,
};


/* SPDX-License-Identifier: BSD-2-Clause */
/* delta-layer.h - the delta layer's parameters (mig-stream(5), kind 5). */
#ifndef MIGKIT_DELTA_LAYER_H
#define MIGKIT_DELTA_LAYER_H

#include <stdint.h>

#include "mig.h"

#define QD_HASH_XXH3 1
#define QD_DIGEST 16
#define QD_PARAMS_LEN 81
/* The layer's parameters (mig-stream(5), "Kind 5: delta"). */
struct qd_ident {
	uint8_t base_digest[QD_DIGEST];   /* of the base's state */
	uint64_t base_bytes;              /* its compacted stream's length */
	uint8_t layout_digest[QD_DIGEST]; /* of its RAM block layout */
	uint64_t ram_pages;               /* pages of RAM in that layout */
	uint64_t records;                 /* page records of the rebuilt stream */
	uint64_t delta_pages;             /* page records the delta carries */
	uint8_t ram_digest[QD_DIGEST];    /* of the rebuilt page records */
};

/* The delta layer (kind 5). Its state is made by qd_layer_new. */
extern const struct mig_filter mig_filter_delta;
/* A layer state that writes id's parameters (encoding) or, once the header
 * was read (decoding), holds them. */
void *qd_layer_new(const struct qd_ident *id);
const struct qd_ident *qd_layer_ident(const void *st);
/* n bytes of d as 2n lowercase hex digits and a NUL at out. */
void qd_hex(const uint8_t *d, size_t n, char *out);

#endif /* MIGKIT_DELTA_LAYER_H */

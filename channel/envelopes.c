/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * envelopes.c - peeling the envelopes a stream starts with.
 *
 * An envelope (kind 4) transforms nothing: it carries META and marks its
 * stream complete (mig-qemu seal, mig-tee --meta). So every reader of a
 * stream -- each decoder, mig-recv -- takes the envelopes off first and
 * reads what is inside, whatever it is; this is that one loop.
 */
#include "mig.h"
#include "tagged.h"

static bool is_envelope(const struct mig_detect *d)
{
	return d->type == MIG_INPUT_LAYER && d->headlen >= 6 &&
	       d->version == MIG_FORMAT_VERSION && d->kind == MIG_KIND_ENVELOPE;
}

/* Open the envelope that src starts with, read as far as its first DATA
 * frame (all of its META comes before it), and keep it in env. */
static int peel_one(struct mig_envelopes *env, struct mig_src *src,
		    struct mig_err *e)
{
	void *st = mig_filter_envelope.create();
	struct mig_src *layer;
	const uint8_t *p;
	size_t got;

	if (!st)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	mig_envelope_trust(st, env->trust);
	layer = mig_src_layer(src, &mig_filter_envelope, st, 1, e);
	if (!layer || mig_layer_open(layer, e) < 0 ||
	    mig_src_peek(layer, 1, &p, &got, e) < 0) {
		mig_src_free(layer);
		mig_filter_envelope.destroy(st);
		return -1;
	}
	env->layer[env->n] = layer;
	env->st[env->n++] = st;
	return 0;
}

struct mig_src *mig_envelopes_peel(struct mig_src *in,
				   struct mig_envelopes *env,
				   struct mig_detect *d, struct mig_err *e)
{
	struct mig_src *src = in;

	env->n = 0;
	for (;;) {
		if (mig_detect(src, d, e) < 0)
			return NULL;
		if (!is_envelope(d) || env->n == MIG_ENVELOPES_MAX)
			return src;
		if (peel_one(env, src, e) < 0)
			return NULL;
		src = env->layer[env->n - 1];
	}
}

void mig_envelopes_free(struct mig_envelopes *env)
{
	while (env->n > 0) {
		env->n--;
		mig_src_free(env->layer[env->n]);
		mig_filter_envelope.destroy(env->st[env->n]);
	}
}

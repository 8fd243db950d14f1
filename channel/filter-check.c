/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * filter-check.c - a filter's struct against the protocol in mig.h, so a
 * member left out is a message at start, not a NULL call mid-stream.
 */
#include "mig.h"

int mig_filter_check(const struct mig_filter *f, struct mig_err *e)
{
	static const char *const what[] = {
		"name", "summary", "create", "destroy", "encode_init",
		"encode", "decode_init", "decode",
	};
	const bool have[] = {
		f->name != NULL, f->summary != NULL, f->create != NULL,
		f->destroy != NULL, f->encode_init != NULL, f->encode != NULL,
		f->decode_init != NULL, f->decode != NULL,
	};

	for (size_t i = 0; i < sizeof have / sizeof have[0]; i++)
		if (!have[i])
			return mig_err_set(e, MIG_EXIT_SYS, "filter %s has no %s "
					   "(mig.h: the filter protocol)",
					   f->name ? f->name : "(unnamed)", what[i]);
	if (f->kind == 0)
		return mig_err_set(e, MIG_EXIT_SYS, "filter %s has no layer kind",
				   f->name);
	if (!f->frame_ctx_create != !f->frame_ctx_destroy)
		return mig_err_set(e, MIG_EXIT_SYS, "filter %s has only one of "
				   "frame_ctx_create and frame_ctx_destroy", f->name);
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * all.c - every filter this build has, for tools that open any layer
 * (mig-info). The Makefile's FILTERS list is passed in as
 * MIG_FILTER_LIST, X(name) for each, so adding a filter there is enough.
 */
#include <stddef.h>

#include "mig.h"
#include "all.h"

#define X(name) extern const struct mig_filter MIG_FILTER_SYMBOL(name);
MIG_FILTER_LIST
#undef X

#define X(name) &MIG_FILTER_SYMBOL(name),
static const struct mig_filter *const filters[] = { MIG_FILTER_LIST NULL };
#undef X

const struct mig_filter *mig_filter_by_kind(uint8_t kind)
{
	for (size_t i = 0; filters[i]; i++)
		if (filters[i]->kind == kind)
			return filters[i];
	return NULL;
}

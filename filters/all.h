/* SPDX-License-Identifier: BSD-2-Clause */
/* all.h - the filters built into this program. */
#ifndef MIG_FILTERS_ALL_H
#define MIG_FILTERS_ALL_H

#include "mig.h"

/* The filter that peels layers of this kind, or NULL. */
const struct mig_filter *mig_filter_by_kind(uint8_t kind);

#endif

/* SPDX-License-Identifier: BSD-2-Clause */
/* progress.h - --progress reporting on stderr (private). */
#ifndef MIG_PROGRESS_H
#define MIG_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct mig_progress {
	bool on, tty;
	double start, last;
};

void mig_progress_start(struct mig_progress *p, bool on);
/* Prints at most once a second. */
void mig_progress_update(struct mig_progress *p, uint64_t in, uint64_t out);
void mig_progress_done(struct mig_progress *p, uint64_t in, uint64_t out);

#endif

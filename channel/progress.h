/* SPDX-License-Identifier: BSD-2-Clause */
/* progress.h - --progress reporting on stderr (private). */
#ifndef MIG_PROGRESS_H
#define MIG_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct mig_progress {
	bool on, tty;
	bool first_out; /* the first output byte is still to be reported */
	double start, last;
};

void mig_progress_start(struct mig_progress *p, bool on);
/* The filters' time to first byte, each reported once, in seconds since
 * the process started: mig_progress_first_in() waits until input fd has a
 * byte (or ends: then nothing is said) and says so; the reading that
 * follows would have waited as long. An out_fd (-1: none) whose reader
 * goes ends the wait as well, unsaid. mig_progress_first_out() has the
 * first update with out > 0 say when output began (now, if out > 0). */
void mig_progress_first_in(int fd, int out_fd);
void mig_progress_first_out(struct mig_progress *p, uint64_t out);
/* Prints at most once a second. */
void mig_progress_update(struct mig_progress *p, uint64_t in, uint64_t out);
void mig_progress_done(struct mig_progress *p, uint64_t in, uint64_t out);

#endif

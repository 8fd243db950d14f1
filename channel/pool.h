/* SPDX-License-Identifier: BSD-2-Clause */
/* pool.h - worker threads for frames in flight (private). */
#ifndef MIG_POOL_H
#define MIG_POOL_H

#include <stdbool.h>

#include "mig.h"

struct mig_job {
	void (*run)(struct mig_job *job);
	struct mig_job *next;
	bool done;
};

struct mig_pool;

/* NULL when threads <= 1 or on failure: jobs then run at submission. */
struct mig_pool *mig_pool_new(int threads);
void mig_pool_submit(struct mig_pool *p, struct mig_job *job, void (*run)(struct mig_job *));
bool mig_pool_done(struct mig_pool *p, struct mig_job *job);
void mig_pool_wait(struct mig_pool *p, struct mig_job *job);
/* Waits for queued jobs, then stops the threads. */
void mig_pool_free(struct mig_pool *p);

#endif

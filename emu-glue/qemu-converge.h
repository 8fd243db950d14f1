/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-converge.h - what qemu-migrate.c and qemu-converge.c share (not
 * installed): the QMP call that reports its error, and the watch kept
 * over a migration as it goes: its rates, its rounds (one per dirty
 * sync), the percent and ETA shown, and the downtime policy.
 */
#ifndef MIGKIT_QEMU_CONVERGE_H
#define MIGKIT_QEMU_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "mig-qemu.h"
#include "qmp.h"

/* qemu-migrate.c: run CMD, its "return" (new reference), or NULL with
 * QEMU's error said as "CMD: why". */
json_t *migqemu_qmp_get(struct qmp *q, const char *cmd, json_t *args);

#define WATCH_SAMPLES 64

struct watch_sample {
	long t;                 /* ms */
	uint64_t remaining, transferred;
};

struct watch {
	const struct converge *cv;
	struct qmp *q;
	char version[32];       /* QEMU's, "7.2.22" */
	struct watch_sample s[WATCH_SAMPLES]; /* a ring, the newest at head */
	size_t n, head;
	long t_first;           /* the first sample's time (ms) */
	long t_settled;         /* the first sample's SETTLE_MS on; 0: none yet */
	uint64_t tr_settled;    /* transferred then */
	uint64_t total, page_size, remaining, transferred;
	long syncs;             /* QEMU's dirty-sync-count */
	uint64_t round_max;     /* the largest remaining of this round */
	uint64_t best_round;    /* the smallest round since the first pass */
	uint64_t rounds[3];     /* the last rounds' sizes, newest first */
	int flat_rounds;        /* rounds in a row not 10 % below best_round */
	long limit_ms;          /* the downtime limit in force */
	long start_limit_ms;    /* the one it started with (put back after) */
	long expected_ms;       /* QEMU's expected-downtime */
	double dirty_bps;       /* QEMU's dirty-pages-rate in bytes/s; -1 */
	double fall_bps;        /* the rate remaining falls within rounds; -1 */
	double wire_bps;        /* the rate transferred grows; -1 */
	double percent;         /* of RAM sent and not dirtied since; -1 */
	double eta_s;           /* -1: not known (not converging, or no rates) */
	uint64_t switchover_set; /* the avail-switchover-bandwidth last set */
};

/* Before anything: QEMU's version, the capabilities and parameters asked
 * for refused where this QEMU has none (exit 2), the downtime limit in
 * force. MIG_GO_ON or the exit status. */
int migqemu_converge_check(struct watch *w, long downtime_ms);
/* The parameters and capabilities to set before migrate. */
void migqemu_converge_setup(const struct watch *w, json_t *params, json_t *caps);
/* One query-migrate's answer, at NOW (ms). */
void migqemu_watch(struct watch *w, json_t *m, long now);
/* The policy: raise the downtime limit (--downtime-max), and feed QEMU
 * the drain rate (--switchover-bandwidth auto). */
void migqemu_converge_steer(struct watch *w);
/* Why the migration did not end within --timeout SEC, and what to try. */
void migqemu_explain_timeout(const struct watch *w, long sec);
/* Put back the downtime limit the policy raised. */
void migqemu_converge_restore(struct watch *w);

#endif

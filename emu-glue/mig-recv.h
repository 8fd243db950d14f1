/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-recv.h - what the parts of mig-recv share (not installed): the
 * emulator's command line (recv-argv.c), the emulator and its keeper
 * (recv-emu.c), and the stream fed to it up to its verdict (recv-feed.c);
 * mig-recv.c has main() and the options.
 */
#ifndef MIGKIT_MIG_RECV_H
#define MIGKIT_MIG_RECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "mig.h"

#define INCOMING_FD 3

/* mig-recv.c: -v and -q */
extern bool migrecv_verbose, migrecv_quiet;

/* recv-argv.c */
struct argv {
	char **v;
	size_t n, cap;
};

/* --from-stream: what the destination decides (mig-recv(1)) */
struct recv_policy {
	const char *emulator; /* --emulator */
	const char **allow;   /* --allow NAME... */
	size_t nallow;
	bool notes;           /* name each dropped option (--dry-run, -v) */
};

void migrecv_av_push(struct argv *a, const char *s);
void migrecv_av_free(struct argv *a);
const char *migrecv_opt_name(const char *w);
char *migrecv_shown(const char *s, size_t len);
int migrecv_from_stream(json_t *src, char **over, size_t nover,
			const struct recv_policy *pol, struct argv *out);
void migrecv_print_quoted(FILE *f, char **v);

/* recv-trust.c: --signer, --not-before */
struct recv_trust {
	struct mig_signers signers; /* none: signatures are not required */
	bool trust_unsigned;
	bool has_not_before;
	int64_t not_before;
};

/* "@SECONDS" or "YYYY-MM-DDTHH:MM:SSZ"; -1 if neither. */
int migrecv_parse_when(const char *s, int64_t *when);
/* After the envelopes were peeled with env->trust = &t->signers. */
int migrecv_trust_check(const struct mig_envelopes *env,
			const struct recv_trust *t, struct mig_err *e);

/* recv-emu.c */
struct emu {
	pid_t keeper, pid;
	int ctl;    /* to the keeper: 'D' detach; EOF: kill the emulator */
	int report; /* from the keeper: pid, then the emulator's wait status */
	int log;
	off_t log_start;
	const char *name; /* basename of the emulator, for messages */
	bool exited;
	int status;
};

int migrecv_emu_start(struct emu *em, char **argv, int feed_r, int feed_w,
		      int logw);
bool migrecv_emu_alive(void *ctx);
void migrecv_emu_kill(struct emu *em);
void migrecv_show_log(struct emu *em);

/* recv-feed.c */
struct qs_info;

struct feed {
	int fd;
	uint8_t *ring;
	size_t cap, start, len;
	uint64_t released;          /* bytes the emulator was given */
	const struct qs_info *scan; /* while relaying: where device state starts */
	struct mig_src *src;
	struct mig_err err;
	bool src_failed, write_failed;
	int write_errno;
};

int migrecv_run(struct emu *em, struct feed *f, const char *sock,
		int timeout_s);

#endif

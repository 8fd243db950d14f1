/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-qemu.h - what the parts of mig-qemu share (not installed): the
 * options common to its commands, the strings it builds for the shell
 * (qemu-strings.c), one migration driven over QMP (qemu-migrate.c), and
 * the commands that live apart from main(): seal and restore.
 */
#ifndef MIGKIT_MIG_QEMU_H
#define MIGKIT_MIG_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* mig-qemu.c: -q, -v, --json and --progress, set by migqemu_parse_common() */
extern bool migqemu_quiet, migqemu_verbose, migqemu_json_out, migqemu_progress;

/* What helps a live migration converge (qemu-converge.c): QEMU's
 * capabilities and parameters as the options ask, and our own policy. */
struct converge {
	bool auto_converge;     /* --auto-converge[=INITIAL,INCREMENT] */
	long throttle_initial, throttle_increment; /* percent; 0: QEMU's */
	bool xbzrle;            /* --xbzrle[=CACHE] */
	uint64_t xbzrle_cache;  /* bytes; 0: QEMU's */
	long dirty_limit;       /* --dirty-limit[=MBPS]: 0 off, -1 QEMU's rate */
	uint64_t switchover_bw; /* --switchover-bandwidth RATE */
	bool switchover_auto;   /* --switchover-bandwidth auto: the drain rate */
	long downtime_max_ms;   /* --downtime-max MS: 0, the limit stays put */
};

struct common {
	bool send_config, resume, from_stream;
	char *sign;            /* --sign KEY, made absolute: the seal's key */
	const char **signers;  /* --signer PUB (restore) */
	size_t nsigners;
	bool trust_unsigned;   /* restore --trust-unsigned */
	const char *not_before; /* restore --not-before WHEN */
	const char *emulator;  /* restore --emulator PATH */
	const char **allows;   /* restore --allow NAME */
	size_t nallows;
	const char **meta;
	size_t nmeta;
	const char **bases;    /* --base FILE (checkpoint, restore): a chain */
	size_t nbases;
	const char *decode;    /* checkpoint --decode CMD: for the chain */
	uint64_t bandwidth;
	long downtime_ms, timeout_ms, grace_ms;
	struct converge cv;
};

/* MIG_GO_ON to go on, else the exit status to leave with (-h: 0) */
int migqemu_parse_common(int argc, char **argv, struct common *c);
void migqemu_common_free(struct common *c);

/* qemu-strings.c */
struct str {
	char *s;
	size_t len, cap;
};

void migqemu_str_add(struct str *b, const char *s);
void migqemu_str_addq(struct str *b, const char *s);
size_t migqemu_split_stages(const char *pl, char **out, size_t max);
char *migqemu_self_exe(void);
char *migqemu_sibling(const char *name);

/* qemu-migrate.c: migrate and checkpoint */
struct drive {
	const char *qmp_path;
	const char *pipeline;   /* after seal: "| PIPELINE" or "> FILE"... */
	char *stages[64];       /* names, stage 0 is the seal */
	size_t nstages;
	bool send_config;
	const char *sign;       /* the seal signs with this key (NULL: not) */
	const char **meta;
	size_t nmeta;
	uint64_t bandwidth;
	long downtime_ms;
	struct converge cv;
	long timeout_ms;        /* 0: none */
	long grace_ms;          /* for the pipeline to end after QEMU's verdict */
	bool resume;            /* checkpoint --resume: cont the VM once done */
	/* results */
	char src_status[32];
	uint64_t transferred;
	double seconds;
	long dirty_syncs, downtime_done_ms; /* QEMU's, once completed */
	int64_t pages_resent;
};

int migqemu_drive(struct drive *dr);

/* qemu-chain.c: a full checkpoint and deltas, each against the state
 * before it (mig-delta(1)), as mig-delta's --base arguments: each file
 * through decode first (a shell pipeline, into a temporary file; NULL:
 * the files as they are). migqemu_chain_args: " --base 'F0' --base 'F1'..."
 * (malloc'd); migqemu_chain_free removes the temporary files.
 * 0 or an exit status (the failure said). */
#define CHAIN_MAX 256
struct chain {
	char *file[CHAIN_MAX];   /* absolute paths */
	size_t n;
	char *tmp[CHAIN_MAX];
	size_t ntmp;
};
int migqemu_chain_prepare(struct chain *ch, const char **files, size_t n,
			  const char *decode);
char *migqemu_chain_args(const struct chain *ch);
void migqemu_chain_free(struct chain *ch);

/* qemu-seal.c, qemu-restore.c */
int migqemu_cmd_seal(int argc, char **argv);
int migqemu_cmd_restore(int argc, char **argv);

#endif

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-chain.c - a chain of checkpoints (a full one, then deltas, each
 * against the one before: mig-delta(1)) rebuilt into the raw stream of
 * its last state, for `mig-qemu checkpoint --base` (the base of the next
 * delta) and `mig-qemu restore --base` (the base of the file restored).
 *
 * Each file passes through the decoders first (restore's FILTERs, or
 * checkpoint's --decode), then each delta through `mig-delta -d --base`
 * the state before it, into a temporary file (named: mig-delta reads its
 * base by name; 0600 in $TMPDIR), which the next step replaces: at most
 * two such files at once, the last removed by migqemu_chain_free. A full
 * checkpoint not decoded (raw, or in the envelope of mig-qemu checkpoint)
 * is its own base: nothing is copied. The temporary files are the guest's
 * RAM in the clear, as mig-delta's own spilled pages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"

/* A temporary file's name for the state after files[i]. */
static int chain_temp(struct chain *ch, char **path)
{
	const char *dir = getenv("TMPDIR");
	struct str p = { 0 };
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	migqemu_str_add(&p, dir);
	migqemu_str_add(&p, "/mig-qemu-chain.XXXXXX");
	if ((fd = mkstemp(p.s)) < 0) {
		mig_warn("%s: cannot make a temporary file: %s", dir,
			 strerror(errno));
		free(p.s);
		return MIG_EXIT_IO;
	}
	close(fd);
	ch->tmp[ch->ntmp++] = *path = p.s;
	return 0;
}

/* bash -c CMD: 0, or the failure said (its stages said why). */
static int run_bash(const char *cmd, const char *what)
{
	pid_t pid = fork();
	int st;

	if (pid < 0) {
		mig_warn("fork: %s", strerror(errno));
		return MIG_EXIT_SYS;
	}
	if (pid == 0) {
		execl("/bin/bash", "bash", "-c", cmd, (char *)NULL);
		mig_warn("cannot run /bin/bash: %s", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	mig_warn("--base: the chain could not be rebuilt at %s (exit status "
		 "%d)", what,
		 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return MIG_EXIT_DATA;
}

/* "set -o pipefail; < 'FILE' DECODE | mig-delta -d --base 'PREV' > 'OUT'" */
static char *step_command(const char *file, const char *decode,
			  const char *prev, const char *out)
{
	struct str c = { 0 };

	migqemu_str_add(&c, "set -o pipefail; < ");
	migqemu_str_addq(&c, file);
	migqemu_str_add(&c, " ");
	if (decode) {
		migqemu_str_add(&c, decode);
		migqemu_str_add(&c, prev ? " | " : " ");
	}
	if (prev) {
		migqemu_str_addq(&c, migqemu_sibling("mig-delta"));
		migqemu_str_add(&c, " -d --base ");
		migqemu_str_addq(&c, prev);
		migqemu_str_add(&c, " ");
	} else if (!decode) {
		migqemu_str_add(&c, "cat ");
	}
	migqemu_str_add(&c, "> ");
	migqemu_str_addq(&c, out);
	return c.s;
}

int migqemu_chain_rebuild(struct chain *ch, const char **files, size_t n,
			  const char *decode)
{
	const char *prev = NULL;

	memset(ch, 0, sizeof *ch);
	if (n > CHAIN_MAX)
		return mig_usage_error("--base: at most %d files in a chain",
				       CHAIN_MAX);
	for (size_t i = 0; i < n; i++) {
		char *out, *cmd;
		int rc;

		if (i == 0 && !decode) { /* the full checkpoint as it is */
			prev = files[0];
			continue;
		}
		if ((rc = chain_temp(ch, &out)) != 0)
			return rc;
		cmd = step_command(files[i], decode, prev, out);
		rc = run_bash(cmd, files[i]);
		free(cmd);
		if (rc)
			return rc;
		if (ch->ntmp > 1) /* the state before: no longer needed */
			unlink(ch->tmp[ch->ntmp - 2]);
		prev = out;
	}
	ch->last = prev;
	if (migqemu_verbose && n)
		mig_warn("chain of %zu rebuilt: the base is %s", n, prev);
	return 0;
}

void migqemu_chain_free(struct chain *ch)
{
	for (size_t i = 0; i < ch->ntmp; i++) {
		unlink(ch->tmp[i]);
		free(ch->tmp[i]);
	}
	ch->ntmp = 0;
	ch->last = NULL;
}

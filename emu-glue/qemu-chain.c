/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-chain.c - a chain of checkpoints (a full one, then deltas, each
 * against the state before it: mig-delta(1)) as `mig-delta --base F0
 * --base F1 ...` takes it, for `mig-qemu checkpoint --base` (the base of
 * the next delta) and `mig-qemu restore --base` (the base of the file
 * restored). mig-delta takes the chain's states itself, never writing
 * them: their digests come from page keys, the base's pages read once.
 *
 * Files written through filters are decoded first (restore's FILTERs, or
 * checkpoint's --decode), each into a temporary file (0600 in $TMPDIR:
 * mig-delta reads its bases by name) removed by migqemu_chain_free; a
 * delta decodes to its few changed pages, the full checkpoint to the
 * whole stream, the guest's RAM in the clear, as mig-delta's own spilled
 * pages. Files that need no decoding (raw, sealed, deltas) are read as
 * they are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"

/* A new temporary file's name, kept for migqemu_chain_free. */
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
	mig_warn("--base: %s could not be decoded (exit status %d)", what,
		 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return MIG_EXIT_DATA;
}

/* "set -o pipefail; < 'FILE' DECODE > 'OUT'" */
static int decode_file(struct chain *ch, const char *file, const char *decode,
		       char **out)
{
	struct str c = { 0 };
	int rc = chain_temp(ch, out);

	if (rc)
		return rc;
	migqemu_str_add(&c, "set -o pipefail; < ");
	migqemu_str_addq(&c, file);
	migqemu_str_add(&c, " ");
	migqemu_str_add(&c, decode);
	migqemu_str_add(&c, " > ");
	migqemu_str_addq(&c, *out);
	rc = run_bash(c.s, file);
	free(c.s);
	return rc;
}

int migqemu_chain_prepare(struct chain *ch, const char **files, size_t n,
			  const char *decode)
{
	memset(ch, 0, sizeof *ch);
	if (n > CHAIN_MAX)
		return mig_usage_error("--base: at most %d files in a chain",
				       CHAIN_MAX);
	for (size_t i = 0; i < n; i++) {
		char *out;
		int rc;

		if (!decode) {
			/* absolute: QEMU's pipeline runs in its own directory */
			if (!(ch->file[i] = realpath(files[i], NULL))) {
				mig_warn("--base: %s: %s", files[i],
					 strerror(errno));
				return MIG_EXIT_IO;
			}
			ch->n++;
			continue;
		}
		if ((rc = decode_file(ch, files[i], decode, &out)) != 0)
			return rc;
		ch->file[ch->n++] = strdup(out);
		if (!ch->file[ch->n - 1]) {
			mig_warn("out of memory");
			return MIG_EXIT_SYS;
		}
	}
	return 0;
}

char *migqemu_chain_args(const struct chain *ch)
{
	struct str a = { 0 };

	migqemu_str_add(&a, "");
	for (size_t i = 0; i < ch->n; i++) {
		migqemu_str_add(&a, " --base ");
		migqemu_str_addq(&a, ch->file[i]);
	}
	return a.s;
}

void migqemu_chain_free(struct chain *ch)
{
	for (size_t i = 0; i < ch->ntmp; i++) {
		unlink(ch->tmp[i]);
		free(ch->tmp[i]);
	}
	for (size_t i = 0; i < ch->n; i++)
		free(ch->file[i]);
	ch->ntmp = ch->n = 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-restore.c - `mig-qemu restore`: FILE | FILTER... | mig-recv, run
 * and waited for here, every stage's exit status checked. Apart because it
 * drives no QMP and builds no exec: command: it only starts a pipeline.
 * What the destination runs is mig-recv's to decide (mig-recv(1)):
 * restore only passes its options on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"

#define MAX_STAGES 64

/* MIG_GO_ON, else the exit status: what restore's options allow. */
static int check_restore_options(const struct common *c)
{
	if (c->from_stream && !c->nsigners && !c->trust_unsigned)
		return mig_usage_error("restore: --from-stream starts what the "
				       "stream describes: name the signer it must "
				       "come from with --signer PUB (or give "
				       "--trust-unsigned)");
	if (!c->from_stream && (c->emulator || c->nallows))
		return mig_usage_error("restore: --emulator and --allow are for "
				       "--from-stream");
	if (c->nmeta || c->sign)
		return mig_usage_error("restore: --%s is for migrate and "
				       "checkpoint", c->nmeta ? "meta" : "sign");
	if (c->decode)
		return mig_usage_error("restore: --decode is for checkpoint: "
				       "restore decodes every file of the chain "
				       "with its FILTERs");
	if (c->nbases && c->from_stream)
		return mig_usage_error("restore: --from-stream needs the META of "
				       "a sealed stream, which a delta does not "
				       "keep: give the emulator's arguments");
	return MIG_GO_ON;
}

/* mig-recv's command line: restore's options for it, then the emulator's
 * arguments (the words after "--"); NULL-terminated, malloc'd. */
static char **recv_argv(const struct common *c, char **emu, int nemu)
{
	char **rv = calloc((size_t)nemu + 2 * (c->nsigners + c->nallows) + 16,
			   sizeof *rv);
	bool has_incoming = false;
	int n = 0;

	if (!rv)
		return NULL;
	rv[n++] = migqemu_sibling("mig-recv");
	if (c->from_stream)
		rv[n++] = "--from-stream";
	if (migqemu_verbose)
		rv[n++] = "-v";
	if (migqemu_quiet)
		rv[n++] = "-q";
	for (size_t i = 0; i < c->nsigners; i++) {
		rv[n++] = "--signer";
		rv[n++] = (char *)c->signers[i];
	}
	if (c->trust_unsigned)
		rv[n++] = "--trust-unsigned";
	if (c->not_before) {
		rv[n++] = "--not-before";
		rv[n++] = (char *)c->not_before;
	}
	if (c->emulator) {
		rv[n++] = "--emulator";
		rv[n++] = (char *)c->emulator;
	}
	for (size_t i = 0; i < c->nallows; i++) {
		rv[n++] = "--allow";
		rv[n++] = (char *)c->allows[i];
	}
	rv[n++] = "--";
	for (int i = 0; i < nemu; i++) {
		if (!strcmp(emu[i], "-incoming"))
			has_incoming = true;
		rv[n++] = emu[i];
	}
	if (!c->from_stream && !has_incoming) {
		rv[n++] = "-incoming";
		rv[n++] = "-";
	}
	return rv;
}

struct stages {
	pid_t pid[MAX_STAGES];
	const char *name[MAX_STAGES];
	int n;
};

/* Start in | FILTER... | mig-recv. A stage that cannot be started leaves
 * the ones before it reading into a pipe nobody drains: they end on
 * EPIPE. Returns 0 or the exit status. */
static int start_stages(int in, char **filters, int nf, char **rv,
			struct stages *s)
{
	int prev = in;

	for (int i = 0; i <= nf && s->n < MAX_STAGES - 1; i++) {
		int p[2] = { -1, -1 };
		bool last = i == nf;
		const char *what = last ? rv[0] : filters[i];
		pid_t pid;

		if (!last && pipe2(p, O_CLOEXEC) < 0) {
			mig_warn("pipe: %s", strerror(errno));
			close(prev);
			return MIG_EXIT_SYS;
		}
		if ((pid = fork()) < 0) {
			mig_warn("fork: %s", strerror(errno));
			if (!last) {
				close(p[0]);
				close(p[1]);
			}
			close(prev);
			return MIG_EXIT_SYS;
		}
		if (pid == 0) {
			dup2(prev, 0);
			if (!last)
				dup2(p[1], 1);
			if (last)
				execvp(rv[0], rv);
			else
				execl("/bin/sh", "sh", "-c", what, (char *)NULL);
			mig_warn("cannot run %s: %s", what, strerror(errno));
			_exit(127);
		}
		s->name[s->n] = last ? "mig-recv" : what;
		s->pid[s->n++] = pid;
		close(prev);
		if (!last) {
			close(p[1]);
			prev = p[0];
		}
	}
	return 0;
}

/* Every stage's exit status; the first failure decides. */
static int wait_stages(const struct stages *s, int rc)
{
	for (int i = 0; i < s->n; i++) {
		int st, code;
		while (waitpid(s->pid[i], &st, 0) < 0 && errno == EINTR)
			;
		code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (code) {
			mig_warn("restore: stage %d (%s) failed: exit status %d", i + 1,
				 s->name[i], code);
			if (!rc)
				rc = MIG_EXIT_DATA;
		}
	}
	return rc;
}

/* restore's words: FILE [FILTER...] -- [EMULATOR ARGS...]; *dd is the
 * index of "--" (argc without one, for --from-stream). */
static int find_words(int argc, char **argv, const struct common *c, int *dd)
{
	*dd = -1;
	for (int i = optind; i < argc && *dd < 0; i++)
		if (!strcmp(argv[i], "--"))
			*dd = i;
	if (argc - optind < 1 || *dd == optind || (*dd < 0 && !c->from_stream))
		return mig_usage_error("restore: need FILE [FILTER...] -- "
				       "EMULATOR ARGS... (or --from-stream)");
	if (*dd < 0)
		*dd = argc;
	return MIG_GO_ON;
}

/* The FILTERs joined into one pipeline, to decode each file of a chain
 * (NULL: none). */
static char *joined(char **filters, int nf)
{
	struct str j = { 0 };

	for (int i = 0; i < nf; i++) {
		migqemu_str_add(&j, i ? " | " : "");
		migqemu_str_add(&j, filters[i]);
	}
	return j.s;
}

/* With --base: the chain's files decoded by the FILTERs (if any), and
 * the stages FILTER... then "mig-delta -d --base F0 --base F1..."
 * (malloc'd, in *f). */
static int chain_stages(struct common *c, char **filters, int nf,
			struct chain *ch, char ***f, char **delta)
{
	char *dec = joined(filters, nf), *args;
	int rc = migqemu_chain_prepare(ch, c->bases, c->nbases, dec);
	struct str d = { 0 };

	free(dec);
	if (rc)
		return rc;
	if (!(*f = calloc((size_t)nf + 1, sizeof **f))) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	memcpy(*f, filters, (size_t)nf * sizeof **f);
	migqemu_str_addq(&d, migqemu_sibling("mig-delta"));
	migqemu_str_add(&d, " -d");
	args = migqemu_chain_args(ch);
	migqemu_str_add(&d, args);
	free(args);
	(*f)[nf] = *delta = d.s;
	return 0;
}

int migqemu_cmd_restore(int argc, char **argv)
{
	struct common c = { 0 };
	struct stages s = { .n = 0 };
	struct chain ch = { 0 };
	char **rv = NULL, **filters = NULL, *delta = NULL;
	int dd, in, nf;
	int rc = migqemu_parse_common(argc, argv, &c);

	if (rc == MIG_GO_ON)
		rc = check_restore_options(&c);
	if (rc == MIG_GO_ON)
		rc = find_words(argc, argv, &c, &dd);
	if (rc != MIG_GO_ON)
		goto out;
	filters = argv + optind + 1;
	nf = dd - optind - 1;
	if (c.nbases) {
		char **own = NULL;
		if ((rc = chain_stages(&c, filters, nf, &ch, &own, &delta)) != 0) {
			free(own);
			goto out;
		}
		filters = own;
		nf++;
	}
	if ((in = open(argv[optind], O_RDONLY | O_CLOEXEC)) < 0) {
		mig_warn("%s: %s", argv[optind], strerror(errno));
		rc = MIG_EXIT_IO;
		goto out;
	}
	if (!(rv = recv_argv(&c, argv + dd + 1, argc - dd - 1))) {
		mig_warn("out of memory");
		close(in);
		rc = MIG_EXIT_SYS;
		goto out;
	}
	rc = start_stages(in, filters, nf, rv, &s);
	rc = wait_stages(&s, rc);
out:
	free(rv); /* rv[0] is migqemu_sibling's */
	if (delta)
		free(filters);
	free(delta);
	migqemu_chain_free(&ch);
	migqemu_common_free(&c);
	return rc;
}

/*
 * qemu-restore.c - `mig-qemu restore`: FILE | FILTER... | mig-recv, run
 * and waited for here, every stage's exit status checked. Apart because it
 * drives no QMP and builds no exec: command: it only starts a pipeline.
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

/* mig-recv's --emulator and --allow (anywhere before "--") taken out of
 * argv into out: they decide what runs on this host, and mig-recv is the
 * one that decides (mig-recv(1)). The new argc, or -1. */
static int take_recv_options(int argc, char **argv, char **out, int *nout)
{
	int k = 1, i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		bool sep = !strcmp(argv[i], "--emulator") || !strcmp(argv[i], "--allow");
		if (sep && i + 1 == argc) {
			mig_warn("restore: %s needs a value\nTry 'mig-qemu --help'.",
				 argv[i]);
			return -1;
		}
		if (sep || !strncmp(argv[i], "--emulator=", 11) ||
		    !strncmp(argv[i], "--allow=", 8)) {
			out[(*nout)++] = argv[i];
			if (sep)
				out[(*nout)++] = argv[++i];
			continue;
		}
		argv[k++] = argv[i];
	}
	while (i < argc)
		argv[k++] = argv[i++];
	argv[k] = NULL;
	return k;
}

int migqemu_cmd_restore(int argc, char **argv)
{
	struct common c = { 0 };
	char **policy = calloc((size_t)argc + 1, sizeof *policy);
	int npolicy = 0;

	if (!policy) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	int full_argc = argc;
	argc = take_recv_options(argc, argv, policy, &npolicy);
	if (argc < 0) {
		free(policy);
		return MIG_EXIT_USAGE;
	}
	int r = migqemu_parse_common(argc, argv, &c);
	if (r < 0 && npolicy && !c.from_stream) {
		mig_warn("restore: --emulator and --allow are for --from-stream\n"
			 "Try 'mig-qemu --help'.");
		r = MIG_EXIT_USAGE;
	}
	if (r >= 0) {
		free(c.meta);
		free(policy);
		return r;
	}
	free(c.meta); /* restore takes no META */
	c.meta = NULL;
	int dd = -1;
	for (int i = optind; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dd = i;
			break;
		}
	if (argc - optind < 1 || dd == optind || (dd < 0 && !c.from_stream)) {
		mig_warn("restore: need FILE [FILTER...] -- EMULATOR ARGS... (or "
			 "--from-stream)\nTry 'mig-qemu --help'.");
		free(policy);
		return MIG_EXIT_USAGE;
	}
	if (dd < 0)
		dd = argc;
	const char *file = argv[optind];
	int nf = dd - optind - 1;
	int in = open(file, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		mig_warn("%s: %s", file, strerror(errno));
		free(policy);
		return MIG_EXIT_IO;
	}
	/* mig-recv's command line */
	char **rv = calloc((size_t)full_argc + 8, sizeof *rv);
	int n = 0;
	if (!rv) {
		mig_warn("out of memory");
		close(in);
		free(policy);
		return MIG_EXIT_SYS;
	}
	rv[n++] = migqemu_sibling("mig-recv");
	if (c.from_stream)
		rv[n++] = "--from-stream";
	if (migqemu_verbose)
		rv[n++] = "-v";
	if (migqemu_quiet)
		rv[n++] = "-q";
	for (int i = 0; i < npolicy; i++)
		rv[n++] = policy[i];
	bool has_incoming = false;
	rv[n++] = "--";
	for (int i = dd + 1; i < argc; i++) {
		if (!strcmp(argv[i], "-incoming"))
			has_incoming = true;
		rv[n++] = argv[i];
	}
	if (!c.from_stream && !has_incoming) {
		rv[n++] = "-incoming";
		rv[n++] = "-";
	}
	rv[n] = NULL;

	/* the stages: FILE | FILTER... | mig-recv */
	pid_t pids[64];
	const char *names[64];
	int ns = 0, prev = in, rc = 0;
	for (int i = 0; i <= nf && ns < 63; i++) {
		int p[2] = { -1, -1 };
		bool last = i == nf;
		if (!last && pipe2(p, O_CLOEXEC) < 0) {
			mig_warn("pipe: %s", strerror(errno));
			rc = MIG_EXIT_SYS;
			break;
		}
		pid_t pid = fork();
		if (pid < 0) {
			mig_warn("fork: %s", strerror(errno));
			if (!last) {
				close(p[0]);
				close(p[1]);
			}
			rc = MIG_EXIT_SYS;
			break;
		}
		if (pid == 0) {
			dup2(prev, 0);
			if (!last)
				dup2(p[1], 1);
			if (last)
				execvp(rv[0], rv);
			else
				execl("/bin/sh", "sh", "-c", argv[optind + 1 + i], (char *)NULL);
			fprintf(stderr, "mig-qemu: cannot run %s: %s\n",
				last ? rv[0] : argv[optind + 1 + i], strerror(errno));
			_exit(127);
		}
		names[ns] = last ? "mig-recv" : argv[optind + 1 + i];
		pids[ns++] = pid;
		close(prev);
		if (!last) {
			close(p[1]);
			prev = p[0];
		}
	}
	/* a stage could not be started: the ones before it read no further
	 * than the pipe that nobody drains now, and end on EPIPE */
	if (rc)
		close(prev);
	for (int i = 0; i < ns; i++) {
		int st;
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (code) {
			mig_warn("restore: stage %d (%s) failed: exit status %d", i + 1,
				 names[i], code);
			if (!rc)
				rc = MIG_EXIT_DATA;
		}
	}
	free(rv);
	free(policy);
	return rc;
}

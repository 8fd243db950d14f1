/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-seal.c - `mig-qemu seal`, the first stage of the pipeline QEMU
 * runs: QEMU's raw stream into an envelope, with META, whose END is
 * written only if the stream is structurally complete. Apart because it
 * runs in its own process, with nothing of the other commands but
 * mig-qemu's name.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"
#include "qemu-stream.h"
#include "tagged.h"

#define SEAL_FRAME (1u << 20)

struct seal {
	struct mig_sink *k;
	struct mig_err err;
	bool failed, read_failed;
};

static long seal_pull(void *ctx, void *buf, size_t len)
{
	struct seal *s = ctx;
	ssize_t got;

	while ((got = read(0, buf, len)) < 0 && errno == EINTR)
		;
	if (got < 0) {
		s->read_failed = true;
		mig_err_set(&s->err, MIG_EXIT_IO, "stdin: read: %s", strerror(errno));
		return -1;
	}
	if (mig_sink_write(s->k, buf, (size_t)got, &s->err) < 0) {
		s->failed = true;
		errno = EPIPE;
		return -1;
	}
	return (long)got;
}

/* seal's command line */
struct seal_args {
	const char **metas; /* KEY=VALUE */
	size_t nm;
	const char *mfile, *sign;
};

/* MIG_GO_ON, else the exit status to leave with */
static int parse_seal_args(int argc, char **argv, struct seal_args *a)
{
	enum { OPT_META = 256, OPT_META_FILE, OPT_SIGN };
	static const struct option lo[] = {
		{ "meta", required_argument, NULL, OPT_META },
		{ "meta-file", required_argument, NULL, OPT_META_FILE },
		{ "sign", required_argument, NULL, OPT_SIGN },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	if (!(a->metas = calloc((size_t)argc + 1, sizeof *a->metas))) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	/* mig_progname stays "mig-qemu": the seal's messages keep the form
	 * "mig-qemu: seal: ..." that the other subcommands' messages have */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", lo, NULL)) != -1) {
		switch (c) {
		case OPT_META: a->metas[a->nm++] = optarg; break;
		case OPT_META_FILE: a->mfile = optarg; break;
		case OPT_SIGN: a->sign = optarg; break;
		case 'h':
			printf("usage: mig-qemu seal [--meta KEY=VALUE]... "
			       "[--meta-file FILE] [--sign KEY]\nWrap QEMU's raw "
			       "stream in an envelope whose END is written only if "
			       "the\nQEMU stream is complete. See mig-qemu(1).\n");
			return mig_stdout_finish();
		case ':':
			return mig_usage_error("seal: %s needs a value",
					       argv[optind - 1]);
		default:
			return mig_usage_error("seal: unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc)
		return mig_usage_error("seal: no arguments expected (got '%s')",
				       argv[optind]);
	if (isatty(1)) {
		mig_warn("seal: refusing to write a stream to a terminal");
		return MIG_EXIT_USAGE;
	}
	return MIG_GO_ON;
}

/* The META of --meta-file, a KEY=VALUE a line. */
static int add_meta_file(struct mig_sink *k, const char *path, struct mig_err *e)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	if (!f)
		return mig_err_set(e, MIG_EXIT_IO, "%s: %s", path, strerror(errno));
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n)
			rc = mig_sink_meta_line(k, line, e);
	}
	fclose(f);
	free(line);
	return rc;
}

/* The envelope's header and META: signed with --sign. */
static int open_envelope(struct seal *s, void *st, const struct seal_args *a)
{
	if (a->sign && mig_envelope_sign(st, a->sign, &s->err) < 0)
		return -1;
	if (!(s->k = mig_sink_open(1, &mig_filter_envelope, st, SEAL_FRAME, 1, &s->err)))
		return -1;
	for (size_t i = 0; i < a->nm; i++)
		if (mig_sink_meta_line(s->k, a->metas[i], &s->err) < 0)
			return -1;
	if (a->mfile && add_meta_file(s->k, a->mfile, &s->err) < 0)
		return -1;
	return 0;
}

/* QEMU's stream into DATA frames, followed by qs_scan; END only if it is
 * complete and nothing follows it. */
static int seal_stream(struct seal *s, struct qs_info *qi)
{
	char qerr[512];
	uint8_t extra;
	ssize_t n;

	if (qs_scan(seal_pull, s, 0, qi, qerr, sizeof qerr) < 0) {
		if (!s->failed && !s->read_failed)
			mig_err_set(&s->err, MIG_EXIT_DATA, "QEMU stream: %s; no END "
				    "written: the stream is marked incomplete", qerr);
		return -1;
	}
	/* what QEMU writes after its stream's end would be lost: refuse it */
	while ((n = read(0, &extra, 1)) < 0 && errno == EINTR)
		;
	if (n != 0)
		return mig_err_set(&s->err, MIG_EXIT_DATA, "data after the end of "
				   "the QEMU stream; no END written");
	if (mig_sink_end(s->k, &s->err) < 0)
		return -1;
	return 0;
}

int migqemu_cmd_seal(int argc, char **argv)
{
	struct seal_args a = { 0 };
	struct seal s = { 0 };
	struct qs_info qi = { 0 };
	void *st = NULL;
	int rc = parse_seal_args(argc, argv, &a);

	if (rc != MIG_GO_ON) {
		free(a.metas);
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	mig_pipe_grow(0);
	mig_pipe_grow(1);
	rc = MIG_EXIT_OK;
	if (!(st = mig_filter_envelope.create()))
		mig_err_set(&s.err, MIG_EXIT_SYS, "out of memory");
	if (!st || open_envelope(&s, st, &a) < 0 || seal_stream(&s, &qi) < 0) {
		mig_warn("seal: %s", s.err.msg);
		rc = s.err.code ? s.err.code : MIG_EXIT_DATA;
	}
	qs_info_free(&qi);
	mig_sink_free(s.k);
	if (st)
		mig_filter_envelope.destroy(st);
	free(a.metas);
	return rc;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-delta - a checkpoint as the RAM pages that differ from a base
 * checkpoint, and back (-d): an incremental checkpoint that needs no dirty
 * logging, so any QEMU writing through exec: makes one.
 *
 * Encoding reads the base whole (a key per page, the digest of its
 * state), then the new stream whole, as mig-compact does (each page's
 * final record; nothing is written before the input is verified), and
 * writes a delta layer (qemu-delta.h) holding the new stream compacted
 * minus the pages equal to the base's. Decoding reads the base whole
 * again, refuses a delta made against another state before a byte is
 * written, and rebuilds a whole stream as it reads the delta.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"
#include "qemu-compact.h"
#include "qemu-delta.h"
#include "qemu-stream.h"

struct delta {
	const char *name;      /* the input, for messages */
	const char *file;      /* NULL: stdin */
	const char **bases;    /* --base: a file, then a chain's deltas */
	size_t nbases;
	bool decode, verbose, no_seek;
	int in_fd, spill_fd, raw_fd;
	struct mig_src *src;
	struct qd_stream base, now;
	struct qd_plan plan;
	struct qd_ident id;
	struct mig_err err;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-delta [-v] [-S] --base BASE [--base DELTA]... [FILE] > "
		"DELTA\n"
		"       mig-delta -d [-v] --base BASE [--base DELTA]... [DELTA] > "
		"STREAM\n"
		"Write the RAM pages of a raw QEMU migration stream (FILE or "
		"standard input)\nthat differ from those of BASE, a raw QEMU "
		"stream file (a checkpoint), as a\ndelta layer bound to BASE; "
		"with -d, rebuild the whole stream from a delta\nand the same "
		"BASE. Nothing is written unless the input is a complete "
		"stream;\n-d refuses a delta made against another base before "
		"writing a byte, and\nholds back what follows the RAM pages "
		"until the whole delta is verified.\nMemory: %u bytes per page "
		"of guest RAM for each of BASE and the input.\n\n"
		"  -b, --base BASE  the base checkpoint (a regular file); "
		"given again, the\n                   deltas of a chain on "
		"it, each against the state before\n"
		"  -d, --decode     rebuild the stream from a delta\n"
		"  -v, --verbose    say the index's size and what was done\n"
		"  -S, --spill      spill the pages even from a regular file\n"
		"  -h, --help       this help\n"
		"  -V, --version    version\n\n"
		"Exit status: 0 written, 1 bad, truncated or wrong input or "
		"base, 2 usage,\n3 I/O error, 4 out of memory.\n",
		QD_BYTES_PER_PAGE);
}

/* MIG_GO_ON, or the exit status to leave with. */
static int parse_args(struct delta *d, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "base", required_argument, NULL, 'b' },
		{ "decode", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "spill", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, "b:dvShV", lo, NULL)) != -1) {
		switch (o) {
		case 'b': d->bases[d->nbases++] = optarg; break;
		case 'd': d->decode = true; break;
		case 'v': d->verbose = true; break;
		case 'S': d->no_seek = true; break;
		case 'h': usage(stdout); return mig_stdout_finish();
		case 'V': return mig_print_version();
		default: return mig_unknown_option(argv);
		}
	}
	if (!d->nbases || !*d->bases[0])
		return mig_usage_error("--base BASE is required");
	if (d->decode && d->no_seek)
		return mig_usage_error("-S is for encoding");
	if (argc - optind > 1)
		return mig_usage_error("one input at most");
	if (argc - optind == 1 && strcmp(argv[optind], "-") != 0)
		d->file = d->name = argv[optind];
	return MIG_GO_ON;
}

/* stdout and the input. MIG_GO_ON or an exit status. */
static int prepare(struct delta *d)
{
	struct mig_err e = { 0 };

	if (mig_stdout_check(&e) < 0) {
		mig_warn("%s", e.msg);
		return e.code;
	}
	if (isatty(1)) {
		mig_warn("refusing to write a stream to a terminal; redirect "
			 "standard output");
		return MIG_EXIT_USAGE;
	}
	if (d->file && (d->in_fd = open(d->file, O_RDONLY | O_CLOEXEC)) < 0) {
		mig_warn("%s: %s", d->name, strerror(errno));
		return MIG_EXIT_IO;
	}
	mig_pipe_grow(d->in_fd);
	mig_pipe_grow(1); /* 1 MiB a write: fewer system calls */
	if (!(d->src = mig_src_fd(d->in_fd, d->name))) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	return MIG_GO_ON;
}

/* One delta of the chain, over the state d->base holds. */
static int absorb_one(struct delta *d, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct mig_src *src;
	int rc = 0;

	if (fd < 0)
		return mig_err_set(&d->err, MIG_EXIT_IO, "%s: %s", path,
				   strerror(errno));
	if (!(src = mig_src_fd(fd, path)))
		rc = mig_err_set(&d->err, MIG_EXIT_SYS, "out of memory");
	else if (qd_chain_absorb(&d->base, src, path, &d->err) < 0) {
		if (d->err.code == MIG_EXIT_DATA) /* what is wrong with it */
			mig_err_prefix(&d->err, "%s: ", path);
		rc = -1;
	}
	mig_src_free(src);
	close(fd);
	return rc;
}

/* The base: a file, and the deltas of a chain on it, each taken over
 * the state before it (its digest from the keys: not written, the
 * base's pages not read). */
static int open_base(struct delta *d)
{
	if (qd_base_open(&d->base, d->bases[0], &d->err) < 0)
		goto fail;
	for (size_t i = 1; i < d->nbases; i++)
		if (absorb_one(d, d->bases[i]) < 0)
			goto fail;
	return MIG_GO_ON;
fail:
	mig_warn("%s", d->err.msg);
	return d->err.code ? d->err.code : MIG_EXIT_DATA;
}

static void say_index(const struct qc *q, bool both)
{
	char b1[32];

	mig_format_bytes(q->npages * QD_BYTES_PER_PAGE * (both ? 2 : 1), b1,
			 sizeof b1);
	mig_warn("index: %llu pages of RAM, %u bytes each for %s: %s in "
		 "memory", (unsigned long long)q->npages, QD_BYTES_PER_PAGE,
		 both ? "the base and the input" : "the base", b1);
	if (both && q->source_fd < 0)
		mig_warn("pages spilled: %llu (%s)",
			 (unsigned long long)q->nslots, "temporary file");
}

/* The new stream: from a regular file read again by offset, else through
 * temporary files, as mig-compact. MIG_GO_ON or an exit status. */
static int read_new(struct delta *d)
{
	uint64_t at = 0;
	struct mig_detect k;
	bool seekable = !d->no_seek && qc_input_seekable(d->in_fd, &at);

	/* in envelopes (a sealed checkpoint), frames lie between the pages */
	if (seekable && mig_detect(d->src, &k, &d->err) == 0 &&
	    k.type == MIG_INPUT_LAYER)
		seekable = false;

	if ((!seekable && (d->spill_fd = qc_temp_file("pages")) < 0) ||
	    (d->raw_fd = qc_temp_file("other bytes")) < 0)
		return MIG_EXIT_IO;
	if (qc_init(&d->now.qc, d->spill_fd, d->raw_fd) < 0) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	if (seekable)
		qc_use_source(&d->now.qc, d->in_fd, at);
	qd_stream_init_new(&d->now, d->name);
	if (qd_stream_scan_new(&d->now, d->src, &d->err) < 0 ||
	    qd_plan(&d->plan, &d->base, &d->now, &d->id, &d->err) < 0) {
		mig_warn("%s: %s", d->name, d->err.msg);
		return d->err.code ? d->err.code : MIG_EXIT_DATA;
	}
	return MIG_GO_ON;
}

static int encode(struct delta *d)
{
	int rc = read_new(d);

	if (rc != MIG_GO_ON)
		return rc;
	if (d->verbose)
		say_index(&d->now.qc, true);
	if (qd_encode(&d->plan, &d->id, 1, &d->err) < 0) {
		mig_warn("%s", d->err.msg);
		return d->err.code;
	}
	if (d->verbose)
		mig_warn("%llu pages in the input, %llu differ from the base: "
			 "%llu carried, %llu of them as XBZRLE records",
			 (unsigned long long)d->id.records,
			 (unsigned long long)d->id.delta_pages,
			 (unsigned long long)d->id.delta_pages,
			 (unsigned long long)d->plan.xbzrle);
	return MIG_EXIT_OK;
}

static int write_fd(void *ctx, const void *p, size_t n, struct mig_err *e)
{
	return mig_write_all(*(int *)ctx, p, n, e);
}

static int decode(struct delta *d)
{
	struct qd_stats st;
	int out = 1;

	if (d->verbose)
		say_index(&d->base.qc, false);
	mig_src_fd_watch(d->src, 1);
	if (qd_decode(&d->base, d->src, write_fd, &out, &st, &d->err) < 0) {
		if (d->err.code == MIG_EXIT_IO || d->err.code == MIG_EXIT_SYS)
			mig_warn("%s", d->err.msg);
		else
			mig_warn("%s: %s", d->name, d->err.msg);
		return d->err.code ? d->err.code : MIG_EXIT_DATA;
	}
	if (d->verbose)
		mig_warn("%llu page records, %llu from the delta (%llu "
			 "XBZRLE), %llu from the base; %llu bytes written (%llu "
			 "held back until verified)",
			 (unsigned long long)st.records,
			 (unsigned long long)st.from_delta,
			 (unsigned long long)st.xbzrle,
			 (unsigned long long)(st.records - st.from_delta),
			 (unsigned long long)st.bytes_out,
			 (unsigned long long)st.held);
	return MIG_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct delta d = { .name = "stdin", .in_fd = 0, .spill_fd = -1,
			   .raw_fd = -1 };
	int rc;

	mig_progname = "mig-delta";
	if (mig_stdfds_ensure(NULL) < 0)
		return MIG_EXIT_SYS;
	signal(SIGPIPE, SIG_IGN);
	d.base.fd = d.base.page_fd = d.base.absorb_fd = -1;
	d.now.fd = d.now.page_fd = d.now.absorb_fd = -1;
	if (!(d.bases = calloc((size_t)argc + 1, sizeof *d.bases))) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	rc = parse_args(&d, argc, argv);
	if (rc == MIG_GO_ON)
		rc = prepare(&d);
	if (rc == MIG_GO_ON)
		rc = open_base(&d);
	if (rc == MIG_GO_ON)
		rc = d.decode ? decode(&d) : encode(&d);
	qd_plan_free(&d.plan);
	qd_stream_free(&d.now);
	qd_stream_free(&d.base);
	mig_src_free(d.src);
	if (d.base.fd >= 0)
		close(d.base.fd);
	if (d.raw_fd >= 0)
		close(d.raw_fd);
	if (d.spill_fd >= 0)
		close(d.spill_fd);
	if (d.in_fd > 0)
		close(d.in_fd);
	free(d.bases);
	return rc;
}

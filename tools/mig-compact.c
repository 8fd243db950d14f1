/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-compact - rewrite a raw QEMU migration stream so that each RAM page
 * appears once, with its final content, followed by the device state
 * unchanged: a checkpoint teed from a live migration shrinks to about the
 * size of one taken from a paused VM, and QEMU loads it to the same RAM.
 *
 * The final content of a page is known only at the end, so nothing is
 * written before the whole input was read and verified (qemu-stream.c):
 * a truncated or malformed input gives no output at all. Meanwhile the
 * pages wait in a temporary file (a slot per page, reused when a page is
 * sent again: never more than the RAM's size), the other bytes in a
 * second one; memory holds the page index (qemu-compact.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig.h"
#include "qemu-compact.h"
#include "libvirt-image.h"
#include "qemu-stream.h"

struct compact {
	const char *name;      /* the input, for messages */
	const char *file;      /* NULL: stdin */
	bool verbose;
	bool no_seek;          /* -S: spill the pages even from a file */
	int in_fd, spill_fd, raw_fd;
	uint64_t in_base;      /* a regular file's offset where we start */
	struct mig_src *src;
	struct qs_info info;
	struct qc qc;
	struct mig_err err;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-compact [-v] [-S] [FILE] > OUT\n"
		"Rewrite a raw QEMU migration stream (FILE or standard input) "
		"so that each RAM\npage appears once, with its final content, "
		"followed by the device state\nunchanged. Nothing is written "
		"unless the whole input is a complete stream.\nPages wait in "
		"temporary files in $TMPDIR (default /tmp); memory holds an\n"
		"index of %u bytes per page of guest RAM. From a regular file, "
		"the pages are\nread again where they lie in it, which must not "
		"change meanwhile.\n\n"
		"  -v, --verbose  say the index's size and what was compacted\n"
		"  -S, --spill    spill the pages even from a regular file\n"
		"  -h, --help     this help\n"
		"  -V, --version  version\n\n"
		"Exit status: 0 written, 1 bad, truncated or not compactable "
		"input, 2 usage,\n3 I/O error, 4 out of memory.\n",
		QC_INDEX_BYTES_PER_PAGE);
}

/* MIG_GO_ON, or the exit status to leave with. */
static int parse_args(struct compact *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "spill", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	opterr = 0; /* our own messages, in one write */
	while ((o = getopt_long(argc, argv, "vShV", lo, NULL)) != -1) {
		switch (o) {
		case 'v': c->verbose = true; break;
		case 'S': c->no_seek = true; break;
		case 'h': usage(stdout); return mig_stdout_finish();
		case 'V': return mig_print_version();
		default: return mig_unknown_option(argv);
		}
	}
	if (argc - optind > 1)
		return mig_usage_error("one input at most");
	if (argc - optind == 1 && strcmp(argv[optind], "-") != 0)
		c->file = c->name = argv[optind];
	return MIG_GO_ON;
}

/* A regular file is read once, its pages later by offset (-S: not, as a
 * pipe). */
static bool source_offset(struct compact *c)
{
	return !c->no_seek && qc_input_seekable(c->in_fd, &c->in_base);
}

/* stdout, the input, the temporary files. MIG_GO_ON or an exit status. */
static int prepare(struct compact *c)
{
	struct mig_err e = { 0 };

	if (mig_stdout_check(&e) < 0) {
		mig_warn("%s", e.msg); /* the stream would be lost */
		return e.code;
	}
	if (isatty(1)) {
		mig_warn("refusing to write a stream to a terminal; redirect "
			 "standard output");
		return MIG_EXIT_USAGE;
	}
	if (c->file && (c->in_fd = open(c->file, O_RDONLY | O_CLOEXEC)) < 0) {
		mig_warn("%s: %s", c->name, strerror(errno));
		return MIG_EXIT_IO;
	}
	mig_pipe_grow(c->in_fd);
	bool seekable = source_offset(c);
	if ((!seekable && (c->spill_fd = qc_temp_file("pages")) < 0) ||
	    (c->raw_fd = qc_temp_file("other bytes")) < 0)
		return MIG_EXIT_IO;
	if (!(c->src = mig_src_fd(c->in_fd, c->name)) ||
	    qc_init(&c->qc, c->spill_fd, c->raw_fd) < 0) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	if (seekable)
		qc_use_source(&c->qc, c->in_fd, c->in_base);
	return MIG_GO_ON;
}

/* The input must be a raw QEMU stream: say what it is otherwise. */
static int check_kind(struct compact *c)
{
	struct mig_detect d;
	char what[128];

	if (mig_detect(c->src, &d, &c->err) < 0)
		return -1;
	switch (d.type) {
	case MIG_INPUT_QEMU:
		return 0;
	case MIG_INPUT_EMPTY:
		return mig_err_set(&c->err, MIG_EXIT_DATA, "empty input");
	case MIG_INPUT_LAYER:
		mig_detect_describe(&d, what, sizeof what);
		return mig_err_set(&c->err, MIG_EXIT_DATA, "%s, not a raw QEMU "
				   "stream: decode it first (mig-compact(1))",
				   what);
	default: /* a libvirt save image: the stream reader skips its
		  * header, whose bytes the compacted image keeps as they are */
		if (lv_is_image(d.head, d.headlen))
			return 0;
		return mig_err_set(&c->err, MIG_EXIT_DATA, "not a QEMU "
				   "migration stream");
	}
}

/* Read and verify the whole input, indexing its pages. 0 or -1 (c->err). */
static int read_stream(struct compact *c)
{
	struct mig_src_pull p = { c->src, &c->err, false };
	char qerr[512];

	if (check_kind(c) < 0)
		return -1;
	if (qs_scan_hooks(mig_src_pull_read, &p, 0, &c->qc.hooks, &c->info,
			  qerr, sizeof qerr) < 0) {
		if (c->qc.code) /* a hook stopped it: its own reason */
			return mig_err_set(&c->err, c->qc.code, "%s", c->qc.why);
		if (!p.failed)
			mig_err_set(&c->err, MIG_EXIT_DATA, "%s", qerr);
		return -1;
	}
	if (qc_check(&c->qc, &c->info) < 0)
		return mig_err_set(&c->err, c->qc.code, "%s", c->qc.why);
	return 0;
}

static void say_index(const struct compact *c)
{
	char b1[32], b2[64];
	const struct qc *q = &c->qc;

	mig_format_bytes(q->npages * QC_INDEX_BYTES_PER_PAGE, b1, sizeof b1);
	mig_format_bytes(q->nslots * q->page_size, b2, sizeof b2);
	if (q->source_fd >= 0)
		snprintf(b2, sizeof b2, "none, read from the input by offset");
	mig_warn("index: %llu pages of RAM, %u bytes each: %s in memory; "
		 "pages spilled: %s", (unsigned long long)q->npages,
		 QC_INDEX_BYTES_PER_PAGE, b1, b2);
}

static void say_result(const struct compact *c)
{
	const struct qc *q = &c->qc;
	uint64_t in = c->info.bytes, out = qc_output_bytes(q, &c->info);

	mig_warn("%llu page records, %llu re-sent; %llu pages written once; "
		 "%llu bytes in, %llu out (%.1f%%)",
		 (unsigned long long)q->records, (unsigned long long)q->resent,
		 (unsigned long long)qc_pages_sent(q), (unsigned long long)in,
		 (unsigned long long)out, in ? 100.0 * (double)out / (double)in : 0.0);
}

static int compact(struct compact *c)
{
	if (read_stream(c) < 0) {
		mig_warn("%s: %s", c->name, c->err.msg);
		return c->err.code ? c->err.code : MIG_EXIT_DATA;
	}
	if (c->verbose)
		say_index(c);
	if (qc_write(&c->qc, &c->info, 1, &c->err) < 0) {
		mig_warn("%s", c->err.msg);
		return c->err.code;
	}
	if (c->verbose)
		say_result(c);
	return MIG_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct compact c = { .name = "stdin", .in_fd = 0, .spill_fd = -1,
			     .raw_fd = -1 };
	int rc;

	mig_progname = "mig-compact";
	if (mig_stdfds_ensure(NULL) < 0) /* before anything is opened */
		return MIG_EXIT_SYS;
	signal(SIGPIPE, SIG_IGN); /* a reader gone is EPIPE: exit 3 */
	rc = parse_args(&c, argc, argv);
	if (rc == MIG_GO_ON)
		rc = prepare(&c);
	if (rc == MIG_GO_ON)
		rc = compact(&c);
	qc_free(&c.qc);
	qs_info_free(&c.info);
	mig_src_free(c.src);
	if (c.raw_fd >= 0)
		close(c.raw_fd);
	if (c.spill_fd >= 0)
		close(c.spill_fd);
	if (c.in_fd > 0)
		close(c.in_fd);
	return rc;
}

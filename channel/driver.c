/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * driver.c - main() of every filter command.
 *
 * Option conventions, the encode and decode loops, progress and the exit
 * status live here, so that a filter is only its transformation.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"
#include "progress.h"
#include "tagged.h"

enum {
	OPT_PROGRESS = 256,
	OPT_META,
	OPT_FRAME_SIZE,
	OPT_THREADS,
	OPT_MEMORY,
	OPT_RATE,
	OPT_FLUSH_IDLE,
	OPT_FILTER = 1000, /* + index into the filter's options */
};

struct run {
	const struct mig_filter *f;
	void *st;
	bool decode, verbose, quiet, progress;
	uint64_t frame_size;
	int threads;
	uint64_t memory; /* --memory: 0 for the default */
	uint64_t rate_bps; /* --rate: 0 for none */
	int flush_idle; /* --flush-idle: milliseconds, 0 for never */
	bool flush_idle_given;
	struct mig_rate rate;
	const char **meta; /* "KEY=VALUE" */
	size_t nmeta;
	const char *input; /* NULL: stdin */
	const struct mig_option *moded[2]; /* an encode-, a decode-only option seen */
	const char *input_name;
};

/* The name the command was invoked by (mig-decompress, not mig-compress)
 * names it in its usage, version and messages. */
static bool invoked_as_decoder(const struct mig_filter *f)
{
	return f->decode_name && strncmp(mig_progname, "mig-", 4) == 0 &&
	       strcmp(mig_progname + 4, f->decode_name) == 0;
}

static void usage(const struct mig_filter *f, FILE *out)
{
	char other[64] = "";

	/* invoked as the decoder, the second line says what it is */
	if (f->decode_name && !invoked_as_decoder(f))
		snprintf(other, sizeof other, "\n       mig-%s", f->decode_name);
	fprintf(out,
		"usage: %s [options] [FILE]\n"
		"       mig-%s -d [options] [FILE]%s\n"
		"%s\n\n"
		"Reads FILE (or standard input) and writes standard output.\n\n"
		"  -d, --decode         peel a %s layer instead of adding one\n"
		"      --meta KEY=VALUE add a META frame (when encoding; "
		"repeatable)\n"
		"      --frame-size N   inner bytes per frame (at most 16M)\n"
		"%s"
		"      --memory SIZE    decoding: most memory for frames in "
		"flight (default 1G)\n"
		"      --rate RATE      write at most RATE bytes a second "
		"(K, M, G: 1024^n)\n"
		"      --flush-idle MS  write a partial frame after MS ms "
		"without input\n"
		"                       (default %d; 0: only full frames)\n"
		"      --progress       show bytes and rate on stderr\n"
		"  -v, --verbose        describe the layer on stderr\n"
		"  -q, --quiet          no warnings\n"
		"  -h, --help           this help\n"
		"  -V, --version        version\n",
		mig_progname, f->name, other, f->summary, f->name,
		f->frame_ctx_create ? "  -T, --threads N      frames encoded or decoded at "
				      "once (default: CPUs)\n" : "",
		MIG_FLUSH_IDLE_DEFAULT);
	for (const struct mig_option *o = f->options; o && o->long_name; o++) {
		char left[64], shortopt[8] = "    ";
		if (o->short_name)
			snprintf(shortopt, sizeof shortopt, "-%c, ",
				 o->short_name);
		snprintf(left, sizeof left, "%s--%s%s%s", shortopt,
			 o->long_name, o->arg ? " " : "", o->arg ? o->arg : "");
		if (strlen(left) > 20) /* the help on a line of its own */
			fprintf(out, "  %s\n  %-21s%s\n", left, "", o->help);
		else
			fprintf(out, "  %-21s%s\n", left, o->help);
	}
	fprintf(out, "\nExit status: 0 success, 1 bad or truncated input, "
		     "2 usage, 3 I/O error, 4 system error.\n"
		     "See %s(1) and mig-stream(5).\n", mig_progname);
}

static int fail(const struct run *r, const struct mig_err *e)
{
	mig_warn("%s: %s", r->input_name, e->msg);
	return e->code ? e->code : MIG_EXIT_SYS;
}

/* getopt_long's tables: the options of every filter, then this one's. */
struct optset {
	struct option *lo;
	char shorts[128];
	size_t nopt; /* the filter's */
};

static int build_options(const struct mig_filter *f, struct optset *os)
{
	static const struct option common[] = {
		{ "decode", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "meta", required_argument, NULL, OPT_META },
		{ "frame-size", required_argument, NULL, OPT_FRAME_SIZE },
		{ "threads", required_argument, NULL, 'T' },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "flush-idle", required_argument, NULL, OPT_FLUSH_IDLE },
	};
	size_t nc = sizeof common / sizeof common[0], sl;

	os->nopt = 0;
	for (const struct mig_option *o = f->options; o && o->long_name; o++)
		os->nopt++;
	/* the common options, the filter's, and the zero entry that ends them */
	if (!(os->lo = calloc(nc + os->nopt + 1, sizeof *os->lo)))
		return -1;
	memcpy(os->lo, common, sizeof common);
	snprintf(os->shorts, sizeof os->shorts, "+dhVqvT:");
	sl = strlen(os->shorts);
	for (size_t i = 0; i < os->nopt; i++) {
		const struct mig_option *o = &f->options[i];
		os->lo[nc + i] = (struct option){ o->long_name,
						  o->arg ? required_argument
							 : no_argument,
						  NULL, OPT_FILTER + (int)i };
		if (o->short_name && sl + 3 < sizeof os->shorts) {
			os->shorts[sl++] = (char)o->short_name;
			if (o->arg)
				os->shorts[sl++] = ':';
			os->shorts[sl] = '\0';
		}
	}
	return 0;
}

static int threads_option(struct run *r, const char *arg)
{
	uint64_t t;

	if (!r->f->frame_ctx_create)
		return mig_usage_error("-T: this filter runs on one thread");
	if (mig_parse_size(arg, &t) < 0 || t < 1 || t > 64)
		return mig_usage_error("-T: '%s' is not a number of threads from "
				       "1 to 64", arg);
	r->threads = (int)t;
	return MIG_GO_ON;
}

static int memory_option(struct run *r, const char *arg)
{
	char least[32];

	if (mig_parse_size(arg, &r->memory) < 0 || r->memory < MIG_FRAME_MEMORY) {
		mig_format_bytes(MIG_FRAME_MEMORY, least, sizeof least);
		return mig_usage_error("--memory: '%.64s' is not a size of at "
				       "least one frame in flight (%s)", arg, least);
	}
	return MIG_GO_ON;
}

static int frame_size_option(struct run *r, const char *arg)
{
	if (mig_parse_size(arg, &r->frame_size) < 0 || r->frame_size == 0 ||
	    r->frame_size > MIG_FRAME_DATA_MAX)
		return mig_usage_error("--frame-size: '%s' is not a size from 1 "
				       "to 16M", arg);
	return MIG_GO_ON;
}

static int flush_idle_option(struct run *r, const char *arg)
{
	long ms = mig_parse_whole(arg, 0, MIG_FLUSH_IDLE_MAX);

	if (ms < 0)
		return mig_usage_error("--flush-idle: '%.64s' is not a number of "
				       "milliseconds from 0 to %d", arg,
				       MIG_FLUSH_IDLE_MAX);
	r->flush_idle = (int)ms;
	r->flush_idle_given = true;
	return MIG_GO_ON;
}

#define NOT_COMMON (MIG_GO_ON + 1) /* the filter's own option */

/* An option every filter command has: MIG_GO_ON, an exit status, or
 * NOT_COMMON. */
static int common_option(struct run *r, int c, char **argv)
{
	switch (c) {
	case 'd': r->decode = true; return MIG_GO_ON;
	case 'h': usage(r->f, stdout); return mig_stdout_finish();
	case 'V': return mig_print_version();
	case 'q': r->quiet = true; return MIG_GO_ON;
	case 'v': r->verbose = mig_verbose = true; return MIG_GO_ON;
	case OPT_PROGRESS: r->progress = true; return MIG_GO_ON;
	case 'T': return threads_option(r, optarg);
	case OPT_META: r->meta[r->nmeta++] = optarg; return MIG_GO_ON;
	case OPT_MEMORY: return memory_option(r, optarg);
	case OPT_FRAME_SIZE: return frame_size_option(r, optarg);
	case OPT_RATE: return mig_rate_option(optarg, &r->rate_bps);
	case OPT_FLUSH_IDLE: return flush_idle_option(r, optarg);
	case '?':
		return mig_unknown_option(argv);
	}
	return NOT_COMMON;
}

/* One of the filter's options (long, or its short letter c). */
static int filter_option(struct run *r, int c, size_t nopt)
{
	const struct mig_filter *f = r->f;
	const struct mig_option *o = NULL;
	struct mig_err e = { 0 };

	if (c >= OPT_FILTER)
		o = &f->options[c - OPT_FILTER];
	else
		for (size_t i = 0; i < nopt; i++)
			if (f->options[i].short_name == c)
				o = &f->options[i];
	if (!o)
		return mig_usage_error("bad option");
	if (o->mode != MIG_OPT_BOTH)
		r->moded[o->mode == MIG_OPT_DECODE] = o;
	if (f->set_option(r->st, o, optarg, &e) < 0) {
		mig_warn("%s", e.msg);
		return e.code ? e.code : MIG_EXIT_USAGE;
	}
	return MIG_GO_ON;
}

/* What the options say together, and the one input. */
static int check_args(struct run *r, int argc, char **argv)
{
	const struct mig_option *wrong = r->moded[!r->decode];

	if (argc - optind > 1)
		return mig_usage_error("one input at most (got '%s' and more)",
				       argv[optind + 1]);
	if (argc - optind == 1 && strcmp(argv[optind], "-") != 0)
		r->input = argv[optind];
	if (wrong)
		return mig_usage_error(r->decode ? "--%s is for encoding"
						 : "--%s is for decoding (-d)",
				       wrong->long_name);
	if (!r->decode && r->memory)
		return mig_usage_error("--memory is for decoding (-d)");
	if (r->decode && r->nmeta)
		return mig_usage_error("--meta is for encoding");
	if (r->decode && r->frame_size)
		return mig_usage_error("--frame-size is for encoding");
	if (r->decode && r->flush_idle_given) /* a decoder never holds a frame */
		return mig_usage_error("--flush-idle is for encoding");
	return MIG_GO_ON;
}

/* MIG_GO_ON, or the exit status to leave with. */
static int parse_args(struct run *r, int argc, char **argv)
{
	struct optset os;
	int c, status = MIG_GO_ON;

	r->meta = calloc((size_t)argc, sizeof *r->meta);
	if (!r->meta || build_options(r->f, &os) < 0) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	opterr = 0;
	while (status == MIG_GO_ON &&
	       (c = getopt_long(argc, argv, os.shorts, os.lo, NULL)) != -1) {
		status = common_option(r, c, argv);
		if (status == NOT_COMMON)
			status = filter_option(r, c, os.nopt);
	}
	if (status == MIG_GO_ON)
		status = check_args(r, argc, argv);
	free(os.lo);
	return status;
}

static void show_layer(const struct mig_filter *f, const void *st,
		       struct mig_src *layer)
{
	char params[256] = "";
	size_t plen;
	const uint8_t *p = mig_layer_params(layer, &plen);
	struct mig_layer_totals t;
	char bin[32], benc[32];

	if (f->describe)
		f->describe(p, plen, params, sizeof params);
	mig_layer_totals(layer, &t);
	mig_format_bytes(t.bytes, bin, sizeof bin);
	mig_format_bytes(t.encoded, benc, sizeof benc);
	mig_warn("%s layer (%s): %llu frames, %s inner, %s encoded",
		 f->name, params, (unsigned long long)t.frames, bin, benc);
	/* META is whatever the writer put there: escaped, and said to be
	 * authenticated only when a keyed layer or a trusted signer checked it */
	for (size_t i = 0; i < mig_layer_meta_count(layer); i++) {
		const struct mig_meta *m = mig_layer_meta(layer, i);
		char *v = mig_escape(m->value, m->value_len);
		mig_warn("%s META (%s) %s=%s", f->name, mig_meta_label(f, st),
			 m->key, v ? v : "(out of memory)");
		free(v);
	}
}

static int decode(struct run *r, struct mig_src *in)
{
	struct mig_err e = { 0 };
	struct mig_progress pr;
	struct mig_envelopes env = { 0 };
	struct mig_detect d;
	struct mig_src *src = in, *layer = NULL;
	uint64_t out = 0;
	int rc = MIG_EXIT_OK;

	/* Envelopes only carry META: peel them first, whatever we decode. */
	if (r->f->kind != MIG_KIND_ENVELOPE &&
	    !(src = mig_envelopes_peel(in, &env, &d, &e)))
		goto fail;
	uint64_t memory = r->memory ? r->memory : MIG_MEMORY_DEFAULT;
	int threads = mig_layer_threads(r->threads, memory);
	if (r->verbose && r->f->frame_ctx_create && threads < r->threads) {
		char m[32];
		mig_format_bytes(memory, m, sizeof m);
		uint64_t frames = memory / MIG_FRAME_MEMORY;
		mig_warn("decoding on %d thread%s, not %d: --memory %s allows "
			 "%llu frame%s in flight", threads, threads > 1 ? "s" : "",
			 r->threads, m, (unsigned long long)frames,
			 frames > 1 ? "s" : "");
	}
	if (!(layer = mig_src_layer_bounded(src, r->f, r->st, threads, memory,
					    &e)))
		goto fail;
	mig_progress_start(&pr, r->progress);
	mig_progress_first_out(&pr, out);
	for (;;) {
		const uint8_t *p;
		size_t n;
		int got = mig_src_chunk(layer, &p, &n, SIZE_MAX, &e);
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		if (mig_rate_write(&r->rate, 1, p, n, &e) < 0)
			goto fail;
		out += n;
		mig_progress_update(&pr, mig_src_offset(in), out);
	}
	mig_progress_done(&pr, mig_src_offset(in), out);
	if (r->verbose) {
		for (size_t i = 0; i < env.n; i++)
			show_layer(&mig_filter_envelope, env.st[i], env.layer[i]);
		show_layer(r->f, r->st, layer);
	}
	goto out;
fail:
	rc = fail(r, &e);
out:
	mig_src_free(layer);
	mig_envelopes_free(&env);
	return rc;
}

/* The DATA frames, until the input ends: full ones, and a short one
 * whenever the input pauses for --flush-idle. -1 on error; with watch,
 * watch->err says the layer it wraps is wrong. */
static int encode_frames(struct run *r, struct mig_src *in, struct mig_sink *k,
			 struct mig_watch *watch, struct mig_progress *pr,
			 struct mig_err *e)
{
	size_t fs = mig_sink_frame_size(k);
	struct mig_layer_totals t;

	for (;;) {
		uint8_t *buf = mig_sink_buffer(k, e);
		bool idle;
		if (!buf)
			return -1;
		long n = mig_src_read_idle(in, buf, fs, r->flush_idle, &idle, e);
		if (n < 0)
			return -1;
		if (watch && mig_watch_feed(watch, buf, (size_t)n) < 0) {
			*e = watch->err;
			return -1;
		}
		if (n > 0 && mig_sink_data(k, (size_t)n, e) < 0)
			return -1;
		/* the input paused: what it gave goes out now, whole frames
		 * being encoded on other threads first (an interactive
		 * stream's message, a reply it waits for) */
		if (idle && mig_sink_flush(k, e) < 0)
			return -1;
		mig_sink_totals(k, &t);
		mig_progress_update(pr, t.bytes, t.encoded);
		if (!idle && (size_t)n < fs)
			return 0;
	}
}

static int encode(struct run *r, struct mig_src *in)
{
	struct mig_err e = { 0 };
	struct mig_progress pr;
	struct mig_sink *k = NULL;
	struct mig_layer_totals t;
	struct mig_detect d;
	struct mig_watch *watch = NULL;
	int rc = MIG_EXIT_OK;

	/* Wrapping a layer, follow its framing: a layer cut short upstream
	 * must not look whole once inside ours, so then we write no END. */
	if (mig_detect_idle(in, &d, r->flush_idle, &e) < 0)
		goto fail;
	if (d.type == MIG_INPUT_LAYER) {
		if (!(watch = malloc(sizeof *watch))) {
			mig_err_set(&e, MIG_EXIT_SYS, "out of memory");
			goto fail;
		}
		mig_watch_init(watch);
	}
	if (!(k = mig_sink_open(1, r->f, r->st, r->frame_size, r->threads, &e)))
		goto fail;
	mig_sink_rate(k, &r->rate);
	for (size_t i = 0; i < r->nmeta; i++)
		if (mig_sink_meta_line(k, r->meta[i], &e) < 0) {
			mig_err_prefix(&e, "--meta ");
			goto fail;
		}
	mig_progress_start(&pr, r->progress);
	mig_sink_totals(k, &t);
	mig_progress_first_out(&pr, t.encoded); /* the header, META: now */
	if (encode_frames(r, in, k, watch, &pr, &e) < 0) {
		if (watch && watch->err.msg[0])
			goto incomplete;
		goto fail;
	}
	/* END goes out only after a clean end of input: a reader of this
	 * layer can tell a finished stream from one cut short. */
	if (watch && mig_watch_end(watch, &e) < 0)
		goto incomplete;
	if (mig_sink_end(k, &e) < 0)
		goto fail;
	mig_sink_totals(k, &t);
	mig_progress_done(&pr, t.bytes, t.encoded);
	if (r->verbose) {
		char bin[32], benc[32];
		mig_format_bytes(t.bytes, bin, sizeof bin);
		mig_format_bytes(t.encoded, benc, sizeof benc);
		mig_warn("%llu frames, %s in, %s out",
			 (unsigned long long)t.frames, bin, benc);
	}
	goto out;
incomplete:
	mig_err_prefix(&e, "the layer it wraps is incomplete: ");
fail:
	rc = fail(r, &e);
out:
	mig_sink_free(k);
	free(watch);
	return rc;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int mig_filter_main(const struct mig_filter *f, int argc, char **argv)
{
	struct run r = { .f = f, .input_name = "stdin", .threads = mig_cpus(),
			 .flush_idle = MIG_FLUSH_IDLE_DEFAULT };
	struct mig_src *in = NULL;
	int fd = 0, rc;

	mig_progname = argc > 0 ? base_name(argv[0]) : f->name;
	struct mig_err e = { 0 };
	if (mig_filter_check(f, &e) < 0) {
		mig_warn("%s", e.msg);
		return MIG_EXIT_SYS;
	}
	if (invoked_as_decoder(f))
		r.decode = true;
	/* A dead reader or writer must end us with an error at once, not
	 * with a signal a pipeline may not report. */
	signal(SIGPIPE, SIG_IGN);

	if (!(r.st = f->create())) {
		fprintf(stderr, "%s: out of memory\n", mig_progname);
		return MIG_EXIT_SYS;
	}
	if ((rc = parse_args(&r, argc, argv)) != MIG_GO_ON)
		goto out;
	rc = MIG_EXIT_OK;
	{
		/* both ways the data goes to stdout: refused before any is read */
		struct mig_err e = { 0 };
		if (mig_stdout_check(&e) < 0) {
			mig_warn("%s", e.msg);
			rc = e.code;
			goto out;
		}
	}
	if (!r.decode && isatty(1)) {
		fprintf(stderr, "%s: refusing to write a mig stream to a "
				"terminal; redirect standard output\n",
			mig_progname);
		rc = MIG_EXIT_USAGE;
		goto out;
	}
	if (r.input) {
		r.input_name = r.input;
		if ((fd = open(r.input, O_RDONLY | O_CLOEXEC)) < 0) {
			fprintf(stderr, "%s: %s: %s\n", mig_progname, r.input,
				strerror(errno));
			rc = MIG_EXIT_IO; /* missing or not readable alike */
			goto out;
		}
	}
	mig_pipe_grow(fd);
	mig_pipe_grow(1);
	/* an encoder fails at once when its reader goes: the sending side
	 * must pass the failure back to QEMU while it still sends. Not a
	 * decoder: its reader (QEMU loading) may close once its own stream
	 * is whole, with only the layer's END still to come */
	if ((in = mig_src_fd(fd, r.input_name)) && !r.decode)
		mig_src_fd_watch(in, 1);
	if (!in) {
		fprintf(stderr, "%s: out of memory\n", mig_progname);
		rc = MIG_EXIT_SYS;
		goto out;
	}
	/* the bucket fills from when the first byte could go */
	mig_rate_init(&r.rate, r.rate_bps, mig_now());
	if (r.progress) /* before anything reads it */
		mig_progress_first_in(fd, r.decode ? -1 : 1);
	rc = r.decode ? decode(&r, in) : encode(&r, in);
out:
	mig_src_free(in);
	if (fd > 0)
		close(fd);
	free(r.meta);
	f->destroy(r.st);
	return rc;
}

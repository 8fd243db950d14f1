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
	OPT_FILTER = 1000, /* + index into the filter's options */
};

struct run {
	const struct mig_filter *f;
	void *st;
	bool decode, verbose, quiet, progress;
	uint64_t frame_size;
	int threads;
	uint64_t memory; /* --memory: 0 for the default */
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
		"      --progress       show bytes and rate on stderr\n"
		"  -v, --verbose        describe the layer on stderr\n"
		"  -q, --quiet          no warnings\n"
		"  -h, --help           this help\n"
		"  -V, --version        version\n",
		mig_progname, f->name, other, f->summary, f->name,
		f->frame_ctx_create ? "  -T, --threads N      frames encoded or decoded at "
				      "once (default: CPUs)\n" : "");
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

static int usage_error(const struct mig_filter *f, const char *fmt,
		       const char *arg)
{
	char m[1024];

	(void)f;
	snprintf(m, sizeof m, fmt, arg);
	mig_warn("%s\nTry '%s --help'.", m, mig_progname);
	return MIG_EXIT_USAGE;
}

static int fail(const struct run *r, const struct mig_err *e)
{
	fprintf(stderr, "%s: %s: %s\n", mig_progname, r->input_name, e->msg);
	return e->code ? e->code : MIG_EXIT_SYS;
}

static int parse_args(struct run *r, int argc, char **argv)
{
	const struct mig_filter *f = r->f;
	struct option *lo;
	char shorts[128] = "+dhVqvT:";
	size_t nopt = 0, sl = strlen(shorts);
	int c, status = -1;

	for (const struct mig_option *o = f->options; o && o->long_name; o++)
		nopt++;
	struct option common[] = {
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
	};
	size_t nc = sizeof common / sizeof common[0];
	/* the common options, the filter's, and the zero entry that ends them */
	lo = calloc(nc + nopt + 1, sizeof *lo);
	r->meta = calloc((size_t)argc, sizeof *r->meta);
	if (!lo || !r->meta) {
		free(lo);
		fprintf(stderr, "%s: out of memory\n", mig_progname);
		return MIG_EXIT_SYS;
	}
	memcpy(lo, common, sizeof common);
	for (size_t i = 0; i < nopt; i++) {
		const struct mig_option *o = &f->options[i];
		lo[nc + i] = (struct option){ o->long_name,
					      o->arg ? required_argument
						     : no_argument,
					      NULL, OPT_FILTER + (int)i };
		if (o->short_name && sl + 3 < sizeof shorts) {
			shorts[sl++] = (char)o->short_name;
			if (o->arg)
				shorts[sl++] = ':';
			shorts[sl] = '\0';
		}
	}

	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const struct mig_option *o = NULL;
		struct mig_err e = { 0 };

		switch (c) {
		case 'd': r->decode = true; continue;
		case 'h': usage(f, stdout); status = mig_stdout_finish(); goto out;
		case 'V':
			printf("%s (migkit) %s\n", mig_progname,
			       MIG_VERSION_STRING);
			status = mig_stdout_finish();
			goto out;
		case 'q': r->quiet = true; continue;
		case 'v': r->verbose = mig_verbose = true; continue;
		case OPT_PROGRESS: r->progress = true; continue;
		case 'T': {
			uint64_t t;
			if (!f->frame_ctx_create) {
				status = usage_error(f, "%s", "-T: this filter "
						     "runs on one thread");
				goto out;
			}
			if (mig_parse_size(optarg, &t) < 0 || t < 1 || t > 64) {
				status = usage_error(f, "-T: '%s' is not a number "
						     "of threads from 1 to 64",
						     optarg);
				goto out;
			}
			r->threads = (int)t;
			continue;
		}
		case OPT_META: r->meta[r->nmeta++] = optarg; continue;
		case OPT_MEMORY:
			if (mig_parse_size(optarg, &r->memory) < 0 ||
			    r->memory < MIG_FRAME_MEMORY) {
				char least[32], m[160];
				mig_format_bytes(MIG_FRAME_MEMORY, least,
						 sizeof least);
				snprintf(m, sizeof m, "--memory: '%.64s' is not "
					 "a size of at least one frame in "
					 "flight (%s)", optarg, least);
				status = usage_error(f, "%s", m);
				goto out;
			}
			continue;
		case OPT_FRAME_SIZE:
			if (mig_parse_size(optarg, &r->frame_size) < 0 ||
			    r->frame_size == 0 ||
			    r->frame_size > MIG_FRAME_DATA_MAX) {
				status = usage_error(f, "--frame-size: '%s' is "
						     "not a size from 1 to 16M",
						     optarg);
				goto out;
			}
			continue;
		case '?':
			if (optopt && optopt < 256)
				status = usage_error(f, "unknown or incomplete "
						     "option '-%s'",
						     (const char[]){ (char)optopt, 0 });
			else
				status = usage_error(f, "unknown or incomplete "
						     "option '%s'",
						     argv[optind - 1]);
			goto out;
		default:
			break;
		}
		if (c >= OPT_FILTER)
			o = &f->options[c - OPT_FILTER];
		else /* a short filter option */
			for (size_t i = 0; i < nopt; i++)
				if (f->options[i].short_name == c)
					o = &f->options[i];
		if (o && o->mode != MIG_OPT_BOTH)
			r->moded[o->mode == MIG_OPT_DECODE] = o;
		if (!o || f->set_option(r->st, o, optarg, &e) < 0) {
			fprintf(stderr, "%s: %s\n", mig_progname,
				o ? e.msg : "bad option");
			status = o && e.code ? e.code : MIG_EXIT_USAGE;
			goto out;
		}
	}
	if (argc - optind > 1) {
		status = usage_error(f, "one input at most (got '%s' and more)",
				     argv[optind + 1]);
		goto out;
	}
	if (argc - optind == 1 && strcmp(argv[optind], "-") != 0)
		r->input = argv[optind];
	const struct mig_option *wrong = r->moded[!r->decode];
	if (wrong) {
		status = usage_error(f, r->decode ? "--%s is for encoding"
					: "--%s is for decoding (-d)",
				     wrong->long_name);
		goto out;
	}
	if (!r->decode && r->memory) {
		status = usage_error(f, "%s", "--memory is for decoding (-d)");
		goto out;
	}
	if (r->decode && (r->nmeta || r->frame_size)) {
		status = usage_error(f, "%s", r->nmeta ? "--meta is for encoding"
					    : "--frame-size is for encoding");
		goto out;
	}
out:
	free(lo);
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
	for (;;) {
		const uint8_t *p;
		size_t n;
		int got = mig_src_chunk(layer, &p, &n, SIZE_MAX, &e);
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		if (mig_write_all(1, p, n, &e) < 0)
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

static int encode(struct run *r, struct mig_src *in)
{
	struct mig_err e = { 0 };
	struct mig_progress pr;
	size_t fs = r->frame_size     ? r->frame_size
		    : r->f->frame_size ? r->f->frame_size
				       : MIG_FRAME_DATA_DEFAULT;
	struct mig_sink *k = NULL;
	struct mig_layer_totals t;
	struct mig_detect d;
	struct mig_watch *watch = NULL;
	int rc = MIG_EXIT_OK;

	/* Wrapping a layer, follow its framing: a layer cut short upstream
	 * must not look whole once inside ours, so then we write no END. */
	if (mig_detect(in, &d, &e) < 0)
		goto fail;
	if (d.type == MIG_INPUT_LAYER) {
		if (!(watch = malloc(sizeof *watch))) {
			mig_err_set(&e, MIG_EXIT_SYS, "out of memory");
			goto fail;
		}
		mig_watch_init(watch);
	}
	if (!(k = mig_sink_open(1, r->f, r->st, fs, r->threads, &e)))
		goto fail;
	for (size_t i = 0; i < r->nmeta; i++) {
		char *kv = strdup(r->meta[i]), *eq;
		if (!kv) {
			mig_err_set(&e, MIG_EXIT_SYS, "out of memory");
			goto fail;
		}
		if (!(eq = strchr(kv, '='))) {
			free(kv);
			mig_err_set(&e, MIG_EXIT_USAGE,
				    "--meta '%s' is not KEY=VALUE", r->meta[i]);
			goto fail;
		}
		*eq = '\0';
		int m = mig_sink_meta(k, kv, eq + 1, &e);
		free(kv);
		if (m < 0)
			goto fail;
	}
	mig_progress_start(&pr, r->progress);
	for (;;) {
		uint8_t *buf = mig_sink_buffer(k, &e);
		if (!buf)
			goto fail;
		long n = mig_src_read(in, buf, fs, &e);
		if (n < 0)
			goto fail;
		if (watch && mig_watch_feed(watch, buf, (size_t)n) < 0) {
			e = watch->err;
			goto incomplete;
		}
		if (n > 0 && mig_sink_data(k, (size_t)n, &e) < 0)
			goto fail;
		mig_sink_totals(k, &t);
		mig_progress_update(&pr, t.bytes, t.encoded);
		if ((size_t)n < fs)
			break;
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
	struct run r = { .f = f, .input_name = "stdin", .threads = mig_cpus() };
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
	if ((rc = parse_args(&r, argc, argv)) >= 0)
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
	if (!(in = mig_src_fd(fd, r.input_name))) {
		fprintf(stderr, "%s: out of memory\n", mig_progname);
		rc = MIG_EXIT_SYS;
		goto out;
	}
	rc = r.decode ? decode(&r, in) : encode(&r, in);
out:
	mig_src_free(in);
	if (fd > 0)
		close(fd);
	free(r.meta);
	f->destroy(r.st);
	return rc;
}

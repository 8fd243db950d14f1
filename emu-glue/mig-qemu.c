/*
 * mig-qemu - the sending end: drive a QEMU migration over QMP through a
 * migkit pipeline, and say whether it really succeeded.
 *
 *   mig-qemu migrate    [options] QMP-SOCKET 'PIPELINE'
 *   mig-qemu checkpoint [options] QMP-SOCKET [FILTER...] FILE
 *   mig-qemu restore    [options] FILE [FILTER...] -- [EMULATOR ARGS...]
 *   mig-qemu seal       [--meta KEY=VALUE]... [--meta-file FILE]
 *
 * migrate and checkpoint make QEMU run
 *     exec:exec setsid /bin/bash -c 'exec 2>>D/err; echo $$ >D/pid;
 *         mig-qemu seal --meta-file D/meta | PIPELINE;
 *         echo "${PIPESTATUS[*]}" >D/status'
 * so that the stream leaves QEMU wrapped in an envelope whose END is
 * written only if QEMU's own stream is structurally complete (seal), the
 * exit status of every stage is known (D/status), and the stages' messages
 * reach the user (D/err, relayed as they come). Success is QMP's
 * "completed" and every stage's exit status 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mig.h"
#include "qemu-stream.h"
#include "qmp.h"
#include "tagged.h"

static bool quiet, verbose, json_out;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- strings ----------------------------------------------------------- */

struct str {
	char *s;
	size_t len, cap;
};

static void str_add(struct str *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		if (!(b->s = realloc(b->s, b->cap))) {
			mig_warn("out of memory");
			exit(MIG_EXIT_SYS);
		}
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

/* Single-quoted for the shell. */
static void str_addq(struct str *b, const char *s)
{
	str_add(b, "'");
	for (const char *p = s; *p; p++) {
		char c[2] = { *p, 0 };
		str_add(b, *p == '\'' ? "'\\''" : c);
	}
	str_add(b, "'");
}

/* The stages of a shell pipeline, split at the top-level '|' (not '||'),
 * for messages only: quotes and backslashes are respected. */
static size_t split_stages(const char *pl, char **out, size_t max)
{
	size_t n = 0;
	const char *start = pl;
	char q = 0;

	for (const char *p = pl;; p++) {
		if (*p && q) {
			if (*p == q)
				q = 0;
			else if (*p == '\\' && q == '"' && p[1])
				p++;
			continue;
		}
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			q = *p;
			continue;
		}
		if (*p == '|' && p[1] == '|') {
			p++;
			continue;
		}
		if (*p == '|' || !*p) {
			const char *a = start, *z = p;
			while (a < z && (*a == ' ' || *a == '\t' || *a == '\n'))
				a++;
			while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\n'))
				z--;
			if (n < max)
				out[n++] = strndup(a, (size_t)(z - a));
			if (!*p)
				break;
			start = p + 1;
		}
	}
	return n;
}

static char *self_exe(void)
{
	static char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	if (n <= 0)
		return "mig-qemu";
	buf[n] = '\0';
	return buf;
}

/* A sibling command (mig-recv next to mig-qemu), else its name for PATH. */
static char *sibling(const char *name)
{
	static char buf[PATH_MAX + 32];
	char *dir = strdup(self_exe());
	snprintf(buf, sizeof buf, "%s/%s", dirname(dir), name);
	free(dir);
	return access(buf, X_OK) == 0 ? buf : (char *)name;
}

/* ---- seal ---------------------------------------------------------------- */

#define SEAL_FRAME (1u << 20)

struct seal {
	struct mig_sink *k;
	uint8_t *frame;
	size_t fill;
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
	size_t n = (size_t)got;
	for (const uint8_t *p = buf; n > 0;) {
		size_t k = SEAL_FRAME - s->fill;
		if (n < k)
			k = n;
		memcpy(s->frame + s->fill, p, k);
		s->fill += k;
		p += k;
		n -= k;
		if (s->fill == SEAL_FRAME) {
			if (mig_sink_data(s->k, s->fill, &s->err) < 0 ||
			    !(s->frame = mig_sink_buffer(s->k, &s->err))) {
				s->failed = true;
				errno = EPIPE;
				return -1;
			}
			s->fill = 0;
		}
	}
	return (long)got;
}

static int add_meta_line(struct mig_sink *k, const char *kv, struct mig_err *e)
{
	char *copy = strdup(kv), *eq;
	if (!copy)
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	if (!(eq = strchr(copy, '='))) {
		free(copy);
		return mig_err_set(e, MIG_EXIT_USAGE, "META '%s' is not KEY=VALUE", kv);
	}
	*eq = '\0';
	int r = mig_sink_meta(k, copy, eq + 1, e);
	free(copy);
	return r;
}

static int cmd_seal(int argc, char **argv)
{
	enum { OPT_META = 256, OPT_META_FILE };
	static const struct option lo[] = {
		{ "meta", required_argument, NULL, OPT_META },
		{ "meta-file", required_argument, NULL, OPT_META_FILE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char **metas = calloc((size_t)argc + 1, sizeof *metas), *mfile = NULL;
	size_t nm = 0;
	int c;

	if (!metas) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	/* mig_progname stays "mig-qemu": the seal's messages keep the form
	 * "mig-qemu: seal: ..." that the other subcommands' messages have */
	while ((c = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
		switch (c) {
		case OPT_META: metas[nm++] = optarg; break;
		case OPT_META_FILE: mfile = optarg; break;
		case 'h':
			printf("usage: mig-qemu seal [--meta KEY=VALUE]... "
			       "[--meta-file FILE]\nWrap QEMU's raw stream in an "
			       "envelope whose END is written only if the\nQEMU "
			       "stream is complete. See mig-qemu(1).\n");
			free(metas);
			return 0;
		default:
			free(metas);
			return MIG_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		mig_warn("seal: no arguments expected (got '%s')", argv[optind]);
		free(metas);
		return MIG_EXIT_USAGE;
	}
	if (isatty(1)) {
		mig_warn("seal: refusing to write a stream to a terminal");
		free(metas);
		return MIG_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	mig_pipe_grow(0);
	mig_pipe_grow(1);

	struct seal s = { 0 };
	void *st = mig_filter_envelope.create();
	struct qs_info qi = { 0 };
	char qerr[512];
	int rc = MIG_EXIT_OK;

	if (!(s.k = mig_sink_open(1, &mig_filter_envelope, st, SEAL_FRAME, 1, &s.err)))
		goto fail;
	for (size_t i = 0; i < nm; i++)
		if (add_meta_line(s.k, metas[i], &s.err) < 0)
			goto fail;
	if (mfile) {
		FILE *f = fopen(mfile, "r");
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		if (!f) {
			mig_err_set(&s.err, MIG_EXIT_IO, "%s: %s", mfile, strerror(errno));
			goto fail;
		}
		while ((n = getline(&line, &cap, f)) > 0) {
			if (line[n - 1] == '\n')
				line[--n] = '\0';
			if (n && add_meta_line(s.k, line, &s.err) < 0) {
				fclose(f);
				free(line);
				goto fail;
			}
		}
		fclose(f);
		free(line);
	}
	if (!(s.frame = mig_sink_buffer(s.k, &s.err)))
		goto fail;
	if (qs_scan(seal_pull, &s, 0, &qi, qerr, sizeof qerr) < 0) {
		if (!s.failed && !s.read_failed)
			mig_err_set(&s.err, MIG_EXIT_DATA, "QEMU stream: %s; no END "
				    "written: the stream is marked incomplete", qerr);
		goto fail;
	}
	/* what QEMU writes after its stream's end would be lost: refuse it */
	uint8_t extra;
	ssize_t n;
	while ((n = read(0, &extra, 1)) < 0 && errno == EINTR)
		;
	if (n != 0) {
		mig_err_set(&s.err, MIG_EXIT_DATA, "data after the end of the QEMU "
			    "stream; no END written");
		goto fail;
	}
	if ((s.fill && mig_sink_data(s.k, s.fill, &s.err) < 0) ||
	    mig_sink_end(s.k, &s.err) < 0)
		goto fail;
	goto out;
fail:
	mig_warn("seal: %s", s.err.msg);
	rc = s.err.code ? s.err.code : MIG_EXIT_DATA;
out:
	qs_info_free(&qi);
	mig_sink_free(s.k);
	mig_filter_envelope.destroy(st);
	free(metas);
	return rc;
}

/* ---- QMP helpers ------------------------------------------------------- */

static char qerr_buf[1024];

static json_t *qmp_get(struct qmp *q, const char *cmd, json_t *args)
{
	json_t *ret = NULL;
	int r = qmp_exec(q, cmd, args, &ret, 30000, qerr_buf, sizeof qerr_buf);
	if (r != 0) {
		mig_warn("%s: %s", cmd, qerr_buf);
		return NULL;
	}
	return ret ? ret : json_object();
}

static const char *qmp_status(struct qmp *q, char *buf, size_t len)
{
	json_t *r = qmp_get(q, "query-status", NULL);
	const char *s = r ? json_string_value(json_object_get(r, "status")) : NULL;
	snprintf(buf, len, "%s", s ? s : "unknown");
	json_decref(r);
	return buf;
}

/* ---- driving a migration ------------------------------------------------- */

struct drive {
	const char *qmp_path;
	const char *pipeline;   /* after seal: "| PIPELINE" or "> FILE"... */
	char *stages[64];       /* names, stage 0 is the seal */
	size_t nstages;
	bool send_config;
	const char **meta;
	size_t nmeta;
	uint64_t bandwidth;
	long downtime_ms;
	long timeout_ms;        /* 0: none */
	long grace_ms;          /* for the pipeline to end after QEMU's verdict */
	/* results */
	char src_status[32];
	uint64_t transferred;
	double seconds;
};

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
	interrupted = sig;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return strdup("");
	}
	return buf;
}

/* The source's command line, as a JSON array, from /proc/PID/cmdline. */
static char *cmdline_json(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t len = 0;
	ssize_t n;
	while (buf && len < (1 << 20) - 1 &&
	       (n = read(fd, buf + len, (1 << 20) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (!buf || !len) {
		free(buf);
		return NULL;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1) {
		buf[len] = '\0';
		json_array_append_new(a, json_string(buf + i));
	}
	free(buf);
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

static void relay_err(int fd)
{
	char buf[4096];
	ssize_t n;
	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (write(2, buf, (size_t)n) < 0)
			break;
}

static void fmt_bytes(uint64_t n, char *b, size_t len)
{
	mig_format_bytes(n, b, len);
}

static void show_progress(json_t *m, long t0, bool tty_line)
{
	json_t *ram = json_object_get(m, "ram");
	const char *st = json_string_value(json_object_get(m, "status"));
	uint64_t tr = (uint64_t)json_integer_value(json_object_get(ram, "transferred"));
	uint64_t rem = (uint64_t)json_integer_value(json_object_get(ram, "remaining"));
	double mbps = json_number_value(json_object_get(ram, "mbps"));
	long dt = (long)json_integer_value(json_object_get(m, "expected-downtime"));
	long el = mig_now_ms() - t0;

	if (json_out) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:I}",
				      "event", "progress", "status", st ? st : "",
				      "transferred", (json_int_t)tr,
				      "remaining", (json_int_t)rem, "mbps", mbps,
				      "expected_downtime_ms", (json_int_t)dt,
				      "elapsed_ms", (json_int_t)el);
		json_dumpf(o, stdout, JSON_COMPACT);
		printf("\n");
		fflush(stdout);
		json_decref(o);
	}
	if (tty_line) {
		char a[32], b[32];
		fmt_bytes(tr, a, sizeof a);
		fmt_bytes(rem, b, sizeof b);
		fprintf(stderr, "\rmig-qemu: %s, %s sent, %.0f Mbit/s, %s remaining, "
			"expected downtime %ld ms, %.1f s\033[K", st ? st : "?",
			a, mbps, b, dt, (double)el / 1000);
		fflush(stderr);
	}
}

/* Run the migration; returns the exit status (0: completed and every
 * stage exited 0). */
static int drive(struct drive *dr)
{
	char err[1024], tmpl[PATH_MAX], path[PATH_MAX + 32];
	struct qmp *q;
	int rc = MIG_EXIT_DATA;
	const char *td = getenv("TMPDIR");

	q = qmp_connect(dr->qmp_path, 10000, NULL, NULL, err, sizeof err);
	if (!q) {
		mig_warn("%s", err);
		return MIG_EXIT_IO;
	}
	snprintf(tmpl, sizeof tmpl, "%s/mig-qemu.XXXXXX", td && *td ? td : "/tmp");
	if (!mkdtemp(tmpl)) {
		mig_warn("mkdtemp: %s", strerror(errno));
		qmp_close(q);
		return MIG_EXIT_IO;
	}

	/* META for the seal */
	char was[32];
	qmp_status(q, was, sizeof was);
	snprintf(path, sizeof path, "%s/meta", tmpl);
	FILE *mf = fopen(path, "w");
	if (!mf) {
		mig_warn("%s: %s", path, strerror(errno));
		goto out;
	}
	char host[256] = "", when[64];
	time_t t = time(NULL);
	gethostname(host, sizeof host - 1);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	fprintf(mf, "host=%s\ntime=%s\nqemu.status=%s\n", host, when, was);
	if (dr->send_config) {
		pid_t pid = qmp_peer_pid(q);
		char *cl = pid > 0 ? cmdline_json(pid) : NULL;
		if (!cl) {
			mig_warn("--send-config: cannot read the command line of QEMU "
				 "(pid %ld): %s", (long)pid, strerror(errno));
			fclose(mf);
			goto out;
		}
		fprintf(mf, "qemu.argv=%s\n", cl);
		free(cl);
	}
	for (size_t i = 0; i < dr->nmeta; i++)
		fprintf(mf, "%s\n", dr->meta[i]);
	if (fclose(mf) != 0) {
		mig_warn("%s: %s", path, strerror(errno));
		goto out;
	}

	/* the exec command */
	struct str sc = { 0 }, uri = { 0 };
	str_add(&sc, "exec 2>>");
	snprintf(path, sizeof path, "%s/err", tmpl);
	str_addq(&sc, path);
	str_add(&sc, "; echo $$ >");
	snprintf(path, sizeof path, "%s/pid", tmpl);
	str_addq(&sc, path);
	str_add(&sc, "\n");
	str_addq(&sc, self_exe());
	str_add(&sc, " seal --meta-file ");
	snprintf(path, sizeof path, "%s/meta", tmpl);
	str_addq(&sc, path);
	str_add(&sc, " ");
	str_add(&sc, dr->pipeline);
	str_add(&sc, "\necho \"${PIPESTATUS[*]}\" >");
	snprintf(path, sizeof path, "%s/status", tmpl);
	str_addq(&sc, path);
	str_add(&uri, "exec:exec setsid /bin/bash -c ");
	str_addq(&uri, sc.s);
	free(sc.s);
	if (verbose)
		mig_warn("QEMU runs: %s", uri.s);
	snprintf(path, sizeof path, "%s/err", tmpl);
	int errfd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);

	/* parameters: no bandwidth cap (QEMU's default is 128 MiB/s) */
	json_t *r;
	json_t *params = json_pack("{s:I}", "max-bandwidth", (json_int_t)dr->bandwidth);
	if (dr->downtime_ms > 0)
		json_object_set_new(params, "downtime-limit",
				    json_integer(dr->downtime_ms));
	if (!(r = qmp_get(q, "migrate-set-parameters", params))) {
		free(uri.s);
		goto out;
	}
	json_decref(r);
	json_t *caps = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability",
				 "events", "state", 1);
	if (!(r = qmp_get(q, "migrate-set-capabilities", caps))) {
		free(uri.s);
		goto out;
	}
	json_decref(r);

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	long t0 = mig_now_ms();
	r = qmp_get(q, "migrate", json_pack("{s:s}", "uri", uri.s));
	free(uri.s);
	if (!r)
		goto out;
	json_decref(r);

	/* follow it */
	bool tty_line = !quiet && isatty(2);
	const char *final = NULL;
	char final_buf[32] = "", desc[512] = "";
	long next_show = 0;
	bool cancelled = false;
	for (;;) {
		json_t *m = qmp_get(q, "query-migrate", NULL);
		if (!m) {
			final = "lost";
			break;
		}
		const char *st = json_string_value(json_object_get(m, "status"));
		json_t *ram = json_object_get(m, "ram");
		if (ram)
			dr->transferred = (uint64_t)json_integer_value(
				json_object_get(ram, "transferred"));
		if (st && (!strcmp(st, "completed") || !strcmp(st, "failed") ||
			   !strcmp(st, "cancelled"))) {
			snprintf(final_buf, sizeof final_buf, "%s", st);
			const char *d = json_string_value(json_object_get(m, "error-desc"));
			snprintf(desc, sizeof desc, "%s", d ? d : "");
			final = final_buf;
			if ((json_out || tty_line) && ram)
				show_progress(m, t0, tty_line);
			json_decref(m);
			break;
		}
		if (mig_now_ms() >= next_show) {
			if (json_out || tty_line)
				show_progress(m, t0, tty_line);
			next_show = mig_now_ms() + (json_out ? 1000 : 250);
		}
		json_decref(m);
		relay_err(errfd);
		if (!cancelled && (interrupted ||
				   (dr->timeout_ms && mig_now_ms() - t0 > dr->timeout_ms))) {
			if (tty_line)
				fputc('\n', stderr);
			mig_warn(interrupted ? "interrupted: cancelling the migration"
					     : "timed out after %ld s: cancelling the migration",
				 dr->timeout_ms / 1000);
			json_decref(qmp_get(q, "migrate_cancel", NULL));
			cancelled = true;
			t0 = mig_now_ms() - dr->timeout_ms; /* the grace below */
		}
		if (cancelled && mig_now_ms() - t0 - dr->timeout_ms > dr->grace_ms) {
			final = "stuck";
			break;
		}
		qmp_poll_events(q, 50);
	}
	dr->seconds = (double)(mig_now_ms() - t0) / 1000;
	if (tty_line)
		fputc('\n', stderr);

	/* the pipeline's statuses: written when it ends */
	snprintf(path, sizeof path, "%s/status", tmpl);
	long until = mig_now_ms() + dr->grace_ms;
	char *status = NULL;
	while (!(status = read_file(path)) || !strchr(status, '\n')) {
		free(status);
		status = NULL;
		relay_err(errfd);
		if (mig_now_ms() > until)
			break;
		sleep_ms(20); /* a file written by another process: poll it */
	}
	if (!status) {
		/* stop what is left of the pipeline (its own session) */
		char pidp[PATH_MAX + 16];
		snprintf(pidp, sizeof pidp, "%s/pid", tmpl);
		char *ps = read_file(pidp);
		long pg = ps ? atol(ps) : 0;
		free(ps);
		if (pg > 1) {
			kill((pid_t)-pg, SIGTERM);
			sleep_ms(200);
			kill((pid_t)-pg, SIGKILL);
		}
		mig_warn("the pipeline did not end within %ld s of QEMU's verdict; "
			 "stopped it", dr->grace_ms / 1000);
	}
	relay_err(errfd);
	if (errfd >= 0)
		close(errfd);

	/* verdict */
	int codes[64];
	size_t ncodes = 0;
	bool stages_ok = status != NULL;
	for (char *p = status; p && *p && ncodes < 64;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		codes[ncodes++] = (int)v;
		if (v != 0)
			stages_ok = false;
		p = end;
	}
	free(status);
	if (status && ncodes == 0)
		stages_ok = false;
	/* after a failure QEMU may still be restarting the source */
	for (long until2 = mig_now_ms() + 10000;; sleep_ms(20)) {
		qmp_status(q, dr->src_status, sizeof dr->src_status);
		if ((strcmp(dr->src_status, "finish-migrate") &&
		     strcmp(dr->src_status, "unknown")) || mig_now_ms() > until2)
			break;
	}
	bool ok = final && !strcmp(final, "completed") && stages_ok;
	if (!ok) {
		if (final && strcmp(final, "completed") != 0)
			mig_warn("QEMU: migration %s%s%s", final, *desc ? ": " : "", desc);
		for (size_t i = 0; i < ncodes; i++) {
			if (!codes[i])
				continue;
			const char *name = ncodes == dr->nstages ? dr->stages[i] : "?";
			/* the shell's 128+N: signal N, or a status such as
			 * mig-ssh's 255 or a remote 128+N passed on */
			int sig = codes[i] - 128;
			if (sig > 0 && sig < NSIG)
				mig_warn("stage %zu (%s) failed: exit status %d (signal "
					 "%d, SIG%s, or a status passed on)", i + 1,
					 name, codes[i], sig, sigabbrev_np(sig) ?
					 sigabbrev_np(sig) : "?");
			else
				mig_warn("stage %zu (%s) failed: exit status %d", i + 1,
					 name, codes[i]);
		}
		if (ncodes && ncodes != dr->nstages && !stages_ok)
			mig_warn("(statuses of the pipeline's stages: the PIPELINE is "
				 "not a single pipeline)");
		if (final && !strcmp(final, "completed") && !stages_ok)
			mig_warn("QEMU says completed, but the pipeline failed: do not "
				 "trust the destination");
		if (!strcmp(dr->src_status, "running"))
			mig_warn("the source VM keeps running");
		else
			mig_warn("the source VM is %s%s", dr->src_status,
				 !strcmp(dr->src_status, "postmigrate")
					 ? ": if no destination runs, resume it "
					   "(QMP cont)" : "");
	}
	if (json_out) {
		json_t *st = json_array();
		for (size_t i = 0; i < ncodes; i++)
			json_array_append_new(st, json_pack(
				"{s:s, s:i}", "stage",
				ncodes == dr->nstages ? dr->stages[i] : "?",
				"status", codes[i]));
		json_t *o = json_pack("{s:s, s:s, s:b, s:o, s:s, s:I, s:f, s:s}",
				      "event", "result", "result",
				      ok ? "completed" : "failed", "qemu_completed",
				      final && !strcmp(final, "completed"),
				      "stages", st, "error", desc,
				      "transferred", (json_int_t)dr->transferred,
				      "seconds", dr->seconds,
				      "source_status", dr->src_status);
		json_dumpf(o, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(o);
	}
	rc = ok ? MIG_EXIT_OK : MIG_EXIT_DATA;
	if (ok && !quiet) {
		char b[32];
		fmt_bytes(dr->transferred, b, sizeof b);
		mig_warn("completed in %.2f s, %s of RAM sent; every stage exited 0; "
			 "the source is %s", dr->seconds, b, dr->src_status);
	}
out:
	/* remove our temporary directory */
	for (const char *f = "meta\0err\0pid\0status\0"; *f; f += strlen(f) + 1) {
		snprintf(path, sizeof path, "%s/%s", tmpl, f);
		unlink(path);
	}
	rmdir(tmpl);
	dr->qmp_path = dr->qmp_path;
	if (rc == MIG_EXIT_OK && getenv("MIG_QEMU_RESUME")) {
		/* set by checkpoint --resume */
		json_decref(qmp_get(q, "cont", NULL));
		qmp_status(q, dr->src_status, sizeof dr->src_status);
	}
	qmp_close(q);
	return rc;
}

/* ---- commands -------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-qemu migrate    [options] QMP-SOCKET 'PIPELINE'\n"
		"       mig-qemu checkpoint [options] QMP-SOCKET [FILTER...] FILE\n"
		"       mig-qemu restore    [options] FILE [FILTER...] -- "
		"[EMULATOR ARGS...]\n"
		"       mig-qemu seal       [--meta KEY=VALUE]... [--meta-file F]\n"
		"Drive a QEMU migration over QMP through a migkit pipeline; "
		"success means QEMU\ncompleted AND every stage of the pipeline, "
		"the far side included, exited 0.\n\n"
		"migrate and checkpoint:\n"
		"      --send-config      put the source's command line in "
		"META (qemu.argv)\n"
		"      --meta KEY=VALUE   more META (repeatable)\n"
		"      --bandwidth N      max-bandwidth in bytes/s (default: "
		"unlimited)\n"
		"      --downtime MS      downtime-limit\n"
		"      --timeout SEC      cancel the migration after SEC seconds\n"
		"      --grace SEC        wait for the pipeline after QEMU's "
		"verdict (30)\n"
		"      --json             progress and result as JSON lines "
		"on stdout\n"
		"      --resume           checkpoint: let the VM run on "
		"afterwards\n"
		"restore:\n"
		"      --from-stream      start the emulator from the "
		"checkpoint's META\n"
		"common:\n"
		"  -v, --verbose  -q, --quiet  -h, --help  -V, --version\n\n"
		"Exit status: 0 success; 1 the migration or a stage failed; "
		"2 usage; 3 I/O\nerror (QMP socket, files). See mig-qemu(1).\n");
}

struct common {
	bool send_config, resume, from_stream;
	const char **meta;
	size_t nmeta;
	uint64_t bandwidth;
	long downtime_ms, timeout_ms, grace_ms;
};

static int parse_common(int argc, char **argv, struct common *c)
{
	enum { O_SEND = 256, O_META, O_BW, O_DT, O_TMO, O_GRACE, O_JSON,
	       O_RESUME, O_FROM };
	static const struct option lo[] = {
		{ "send-config", no_argument, NULL, O_SEND },
		{ "meta", required_argument, NULL, O_META },
		{ "bandwidth", required_argument, NULL, O_BW },
		{ "downtime", required_argument, NULL, O_DT },
		{ "timeout", required_argument, NULL, O_TMO },
		{ "grace", required_argument, NULL, O_GRACE },
		{ "json", no_argument, NULL, O_JSON },
		{ "resume", no_argument, NULL, O_RESUME },
		{ "from-stream", no_argument, NULL, O_FROM },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	c->meta = calloc((size_t)argc + 1, sizeof *c->meta);
	c->bandwidth = 1ull << 40;
	c->grace_ms = 30000;
	optind = 1;
	while ((o = getopt_long(argc, argv, "+vqh", lo, NULL)) != -1) {
		switch (o) {
		case O_SEND: c->send_config = true; break;
		case O_META: {
			struct mig_meta m;
			struct mig_err e;
			if (mig_meta_parse((const uint8_t *)optarg, strlen(optarg),
					   &m, &e) < 0) {
				mig_warn("--meta '%s': %s", optarg, e.msg);
				return MIG_EXIT_USAGE;
			}
			mig_meta_clear(&m);
			c->meta[c->nmeta++] = optarg;
			break;
		}
		case O_BW:
			if (mig_parse_size(optarg, &c->bandwidth) < 0) {
				mig_warn("--bandwidth '%s': not a size", optarg);
				return MIG_EXIT_USAGE;
			}
			break;
		case O_DT: c->downtime_ms = atol(optarg); break;
		case O_TMO: c->timeout_ms = atol(optarg) * 1000; break;
		case O_GRACE: c->grace_ms = atol(optarg) * 1000; break;
		case O_JSON: json_out = true; break;
		case O_RESUME: c->resume = true; break;
		case O_FROM: c->from_stream = true; break;
		case 'v': verbose = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "Try 'mig-qemu --help'.\n");
			return MIG_EXIT_USAGE;
		}
	}
	return -1;
}

static void fill_drive(struct drive *dr, const struct common *c)
{
	dr->send_config = c->send_config;
	dr->meta = c->meta;
	dr->nmeta = c->nmeta;
	dr->bandwidth = c->bandwidth;
	dr->downtime_ms = c->downtime_ms;
	dr->timeout_ms = c->timeout_ms;
	dr->grace_ms = c->grace_ms;
	dr->stages[0] = "mig-qemu seal";
	dr->nstages = 1;
}

static int cmd_migrate(int argc, char **argv)
{
	struct common c = { 0 };
	struct drive dr = { 0 };
	int r = parse_common(argc, argv, &c);
	if (r >= 0) {
		free(c.meta);
		return r;
	}
	if (argc - optind != 2) {
		mig_warn("migrate: need QMP-SOCKET and 'PIPELINE'\nTry 'mig-qemu --help'.");
		free(c.meta);
		return MIG_EXIT_USAGE;
	}
	fill_drive(&dr, &c);
	dr.qmp_path = argv[optind];
	struct str pl = { 0 };
	str_add(&pl, "| ");
	str_add(&pl, argv[optind + 1]);
	dr.pipeline = pl.s;
	dr.nstages += split_stages(argv[optind + 1], dr.stages + 1, 63);
	int rc = drive(&dr);
	for (size_t i = 1; i < dr.nstages; i++)
		free(dr.stages[i]);
	free(pl.s);
	free(c.meta);
	return rc;
}

static int cmd_checkpoint(int argc, char **argv)
{
	struct common c = { 0 };
	struct drive dr = { 0 };
	int r = parse_common(argc, argv, &c);
	if (r >= 0) {
		free(c.meta);
		return r;
	}
	if (argc - optind < 2) {
		mig_warn("checkpoint: need QMP-SOCKET and FILE\nTry 'mig-qemu --help'.");
		free(c.meta);
		return MIG_EXIT_USAGE;
	}
	fill_drive(&dr, &c);
	dr.qmp_path = argv[optind];
	const char *file = argv[argc - 1];
	char *dcopy = strdup(file), *bcopy = strdup(file), tmp[PATH_MAX * 2];
	/* QEMU runs the pipeline in its own working directory */
	char *dir = realpath(dirname(dcopy), NULL);
	if (!dir) {
		mig_warn("%s: %s", file, strerror(errno));
		free(dcopy);
		free(bcopy);
		free(c.meta);
		return MIG_EXIT_IO;
	}
	snprintf(tmp, sizeof tmp, "%s/.%s.mig-qemu.%ld", dir, basename(bcopy),
		 (long)getpid());
	free(dir);
	free(dcopy);
	free(bcopy);
	struct str pl = { 0 };
	str_add(&pl, "");
	for (int i = optind + 1; i < argc - 1; i++) {
		str_add(&pl, "| ");
		str_add(&pl, argv[i]);
		str_add(&pl, " ");
		if (dr.nstages < 64)
			dr.stages[dr.nstages++] = argv[i];
	}
	str_add(&pl, "> ");
	str_addq(&pl, tmp);
	dr.pipeline = pl.s;
	if (c.resume)
		setenv("MIG_QEMU_RESUME", "1", 1);
	int rc = drive(&dr);
	if (rc == 0 && rename(tmp, file) < 0) {
		mig_warn("%s: %s", file, strerror(errno));
		rc = MIG_EXIT_IO;
	}
	if (rc != 0) {
		unlink(tmp);
		mig_warn("no checkpoint written to %s", file);
	} else if (!quiet) {
		mig_warn("checkpoint %s written; the VM is %s", file, dr.src_status);
	}
	free(pl.s);
	free(c.meta);
	return rc;
}

static int cmd_restore(int argc, char **argv)
{
	struct common c = { 0 };
	int r = parse_common(argc, argv, &c);
	if (r >= 0) {
		free(c.meta);
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
		return MIG_EXIT_USAGE;
	}
	if (dd < 0)
		dd = argc;
	const char *file = argv[optind];
	int nf = dd - optind - 1;
	int in = open(file, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		mig_warn("%s: %s", file, strerror(errno));
		return MIG_EXIT_IO;
	}
	/* mig-recv's command line */
	char **rv = calloc((size_t)argc + 8, sizeof *rv);
	int n = 0;
	rv[n++] = sibling("mig-recv");
	if (c.from_stream)
		rv[n++] = "--from-stream";
	if (verbose)
		rv[n++] = "-v";
	if (quiet)
		rv[n++] = "-q";
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
	int ns = 0, prev = in;
	for (int i = 0; i <= nf && ns < 63; i++) {
		int p[2] = { -1, -1 };
		bool last = i == nf;
		if (!last && pipe2(p, O_CLOEXEC) < 0) {
			mig_warn("pipe: %s", strerror(errno));
			return MIG_EXIT_SYS;
		}
		pid_t pid = fork();
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
	int rc = 0;
	for (int i = 0; i < ns; i++) {
		int st;
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (code) {
			mig_warn("restore: stage %d (%s) failed: exit status %d", i + 1,
				 names[i], code);
			rc = MIG_EXIT_DATA;
		}
	}
	free(rv);
	return rc;
}

int main(int argc, char **argv)
{
	mig_progname = "mig-qemu";
	if (argc < 2) {
		usage(stderr);
		return MIG_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("mig-qemu (migkit) %s\n", MIG_VERSION_STRING);
		return 0;
	}
	if (!strcmp(cmd, "seal"))
		return cmd_seal(argc - 1, argv + 1);
	if (!strcmp(cmd, "migrate"))
		return cmd_migrate(argc - 1, argv + 1);
	if (!strcmp(cmd, "checkpoint"))
		return cmd_checkpoint(argc - 1, argv + 1);
	if (!strcmp(cmd, "restore"))
		return cmd_restore(argc - 1, argv + 1);
	mig_warn("unknown command '%s' (migrate, checkpoint, restore, seal)\n"
		 "Try 'mig-qemu --help'.", cmd);
	return MIG_EXIT_USAGE;
}

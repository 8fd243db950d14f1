/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-migrate.c - one migration driven over QMP, for migrate and
 * checkpoint: the META, the exec: command QEMU runs (see mig-qemu.c), the
 * progress, the stages' messages and exit statuses, and the verdict.
 * Apart because it is the long run of the command, and the same for both.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"
#include "qemu-converge.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* QMP helpers: a command whose error is reported; the VM's run state. */
static char qerr_buf[1024];

json_t *migqemu_qmp_get(struct qmp *q, const char *cmd, json_t *args)
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
	json_t *r = migqemu_qmp_get(q, "query-status", NULL);
	const char *s = r ? json_string_value(json_object_get(r, "status")) : NULL;
	snprintf(buf, len, "%s", s ? s : "unknown");
	json_decref(r);
	return buf;
}

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

/* The progress line: on a terminal redrawn in place ("\rPROG: ...", the
 * rest of the old line cleared, no newline), else a line of its own
 * (--progress); one write, as mig_warn's. */
static void progress_line(bool in_place, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void progress_line(bool in_place, const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof line, "%s%s: ", in_place ? "\r" : "",
			 mig_progname), m;
	va_list ap;

	if (n < 0 || (size_t)n >= sizeof line)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n = (size_t)(n + m) < sizeof line - 4 ? n + m : (int)sizeof line - 4;
	if (in_place) {
		memcpy(line + n, "\033[K", 3);
		n += 3;
	} else {
		line[n++] = '\n';
	}
	while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
		;
}

/* The ETA as JSON: a number of seconds, or null when not known. */
static json_t *eta_json(const struct watch *w)
{
	return w->eta_s >= 0 ? json_real(w->eta_s) : json_null();
}

static void progress_json(json_t *m, const struct watch *w, long el)
{
	const char *st = json_string_value(json_object_get(m, "status"));
	json_t *o = json_pack(
		"{s:s, s:s, s:I, s:I, s:I, s:f, s:o, s:f, s:I, s:I, s:I, s:f, "
		"s:f, s:I}",
		"event", "progress", "status", st ? st : "",
		"transferred", (json_int_t)w->transferred,
		"remaining", (json_int_t)w->remaining,
		"total", (json_int_t)w->total,
		"percent", w->percent > 0 ? w->percent : 0.0, "eta_s", eta_json(w),
		"mbps", json_number_value(json_object_get(json_object_get(m, "ram"),
							  "mbps")),
		"dirty_sync_count", (json_int_t)w->syncs,
		"expected_downtime_ms", (json_int_t)w->expected_ms,
		"downtime_limit_ms", (json_int_t)w->limit_ms,
		"dirty_rate", w->dirty_bps > 0 ? w->dirty_bps : 0.0,
		"drain_rate", w->fall_bps > 0 ? w->fall_bps : 0.0,
		"elapsed_ms", (json_int_t)el);
	json_t *thr = json_object_get(m, "cpu-throttle-percentage");

	if (thr) /* auto-converge: how much QEMU slows the guest's CPUs */
		json_object_set(o, "cpu_throttle_percent", thr);
	json_dumpf(o, stdout, JSON_COMPACT);
	printf("\n");
	fflush(stdout);
	json_decref(o);
}

/* "42 %, ETA 12 s", or "42 %, ETA unknown" while it is not known. */
static void percent_eta(const struct watch *w, char *buf, size_t len)
{
	if (w->percent < 0)
		snprintf(buf, len, "?");
	else if (w->eta_s >= 0)
		snprintf(buf, len, "%.0f %%, ETA %.0f s", w->percent, w->eta_s);
	else
		snprintf(buf, len, "%.0f %%, ETA unknown", w->percent);
}

/* How progress is shown on stderr. */
enum shown { SHOW_NONE, SHOW_IN_PLACE, SHOW_LINES };

static void show_progress(json_t *m, const struct watch *w, long t0,
			  enum shown how)
{
	long el = mig_now_ms() - t0;

	if (migqemu_json_out)
		progress_json(m, w, el);
	if (how != SHOW_NONE) {
		const char *st = json_string_value(json_object_get(m, "status"));
		double mbps = json_number_value(json_object_get(
			json_object_get(m, "ram"), "mbps"));
		char a[32], b[32], pe[64];
		fmt_bytes(w->transferred, a, sizeof a);
		fmt_bytes(w->remaining, b, sizeof b);
		percent_eta(w, pe, sizeof pe);
		progress_line(how == SHOW_IN_PLACE, "%s, %s sent, %.0f Mbit/s, %s remaining (%s), "
			      "expected downtime %ld ms, %.1f s", st ? st : "?",
			      a, mbps, b, pe, w->expected_ms, (double)el / 1000);
	}
}

/* One migration under way: what migqemu_drive's steps share. */
struct run {
	struct drive *dr;
	struct qmp *q;
	char dir[PATH_MAX];     /* our temporary directory: meta, err, pid, status */
	int errfd;              /* the stages' stderr, relayed as it grows */
	long t0;
	bool tty_line;          /* progress in place on a terminal */
	enum shown how;         /* in place, as lines (--progress), or not */
	struct watch w;         /* rates, rounds, the downtime policy */
	const char *final;      /* QEMU's verdict; "lost", "stuck"; NULL: none */
	char final_buf[32], desc[512];
	char *status;           /* the stages' exit statuses, one line */
	int codes[64];
	size_t ncodes;
	bool stages_ok;
};

static void run_path(const struct run *r, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", r->dir, name);
}

/* The seal's META: where and when, the source's run state, and with
 * --send-config its command line. */
static int write_meta(struct run *r)
{
	char path[PATH_MAX + 32], was[32], host[256] = "", when[64];
	time_t t = time(NULL);
	FILE *mf;

	qmp_status(r->q, was, sizeof was);
	run_path(r, "meta", path, sizeof path);
	if (!(mf = fopen(path, "w"))) {
		mig_warn("%s: %s", path, strerror(errno));
		return -1;
	}
	gethostname(host, sizeof host - 1);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	fprintf(mf, "host=%s\ntime=%s\nqemu.status=%s\n", host, when, was);
	if (r->dr->send_config) {
		pid_t pid = qmp_peer_pid(r->q);
		char *cl = pid > 0 ? cmdline_json(pid) : NULL;
		if (!cl) {
			mig_warn("--send-config: cannot read the command line of QEMU "
				 "(pid %ld): %s", (long)pid, strerror(errno));
			fclose(mf);
			return -1;
		}
		fprintf(mf, "qemu.argv=%s\n", cl);
		free(cl);
	}
	for (size_t i = 0; i < r->dr->nmeta; i++)
		fprintf(mf, "%s\n", r->dr->meta[i]);
	if (fclose(mf) != 0) {
		mig_warn("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The exec: URI QEMU runs (see mig-qemu.c); malloc'd. */
static char *exec_uri(const struct run *r)
{
	char path[PATH_MAX + 32];
	struct str sc = { 0 }, uri = { 0 };

	migqemu_str_add(&sc, "exec 2>>");
	run_path(r, "err", path, sizeof path);
	migqemu_str_addq(&sc, path);
	migqemu_str_add(&sc, "; echo $$ >");
	run_path(r, "pid", path, sizeof path);
	migqemu_str_addq(&sc, path);
	migqemu_str_add(&sc, "\n");
	migqemu_str_addq(&sc, migqemu_self_exe());
	migqemu_str_add(&sc, " seal --meta-file ");
	run_path(r, "meta", path, sizeof path);
	migqemu_str_addq(&sc, path);
	if (r->dr->sign) {
		migqemu_str_add(&sc, " --sign ");
		migqemu_str_addq(&sc, r->dr->sign);
	}
	migqemu_str_add(&sc, " ");
	migqemu_str_add(&sc, r->dr->pipeline);
	migqemu_str_add(&sc, "\necho \"${PIPESTATUS[*]}\" >");
	run_path(r, "status", path, sizeof path);
	migqemu_str_addq(&sc, path);
	migqemu_str_add(&uri, "exec:exec setsid /bin/bash -c ");
	migqemu_str_addq(&uri, sc.s);
	free(sc.s);
	return uri.s;
}

/* Parameters (no bandwidth cap: QEMU's default is 128 MiB/s), the events
 * capability, then migrate. */
static int start(struct run *r, const char *uri)
{
	json_t *ret, *params = json_pack("{s:I}", "max-bandwidth",
					 (json_int_t)r->dr->bandwidth),
		*caps = json_pack("[{s:s, s:b}]", "capability", "events", "state", 1);

	if (r->dr->downtime_ms > 0)
		json_object_set_new(params, "downtime-limit",
				    json_integer(r->dr->downtime_ms));
	migqemu_converge_setup(&r->w, params, caps);
	ret = migqemu_qmp_get(r->q, "migrate-set-parameters", params);
	json_decref(ret);
	if (!ret) {
		json_decref(caps);
		return -1;
	}
	if (!(ret = migqemu_qmp_get(r->q, "migrate-set-capabilities",
			    json_pack("{s:o}", "capabilities", caps))))
		return -1;
	json_decref(ret);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	r->t0 = mig_now_ms();
	if (!(ret = migqemu_qmp_get(r->q, "migrate", json_pack("{s:s}", "uri", uri))))
		return -1;
	json_decref(ret);
	return 0;
}

/* What the final report says besides bytes and time: QEMU's dirty
 * syncs, its downtime, and the pages sent more than once (every page of
 * RAM goes once, as a zero page or whole; the rest were dirtied again). */
static void final_figures(struct drive *dr, json_t *m)
{
	json_t *ram = json_object_get(m, "ram"),
	       *xb = json_object_get(json_object_get(m, "xbzrle-cache"), "pages");
	json_int_t ps = json_integer_value(json_object_get(ram, "page-size"));
	json_int_t sent = json_integer_value(json_object_get(ram, "normal")) +
			  json_integer_value(json_object_get(ram, "duplicate")) +
			  json_integer_value(xb);

	if (!ram)
		return; /* a migration cancelled: what was seen last stays */
	dr->dirty_syncs = (long)json_integer_value(
		json_object_get(ram, "dirty-sync-count"));
	dr->downtime_done_ms = (long)json_integer_value(json_object_get(m, "downtime"));
	dr->pages_resent = ps > 0 ? sent - json_integer_value(
				json_object_get(ram, "total")) / ps : 0;
}

/* One look at query-migrate: true once QEMU has its verdict. */
static bool poll_state(struct run *r, long *next_show)
{
	json_t *m = migqemu_qmp_get(r->q, "query-migrate", NULL);
	if (!m) {
		r->final = "lost";
		return true;
	}
	const char *st = json_string_value(json_object_get(m, "status"));
	json_t *ram = json_object_get(m, "ram");
	bool show = migqemu_json_out || r->how != SHOW_NONE, done = false;

	if (ram) {
		r->dr->transferred = (uint64_t)json_integer_value(
			json_object_get(ram, "transferred"));
		migqemu_watch(&r->w, m, mig_now_ms());
		r->dr->dirty_syncs = r->w.syncs;
	}
	if (st && (!strcmp(st, "completed") || !strcmp(st, "failed") ||
		   !strcmp(st, "cancelled"))) {
		const char *d = json_string_value(json_object_get(m, "error-desc"));
		snprintf(r->final_buf, sizeof r->final_buf, "%s", st);
		snprintf(r->desc, sizeof r->desc, "%s", d ? d : "");
		r->final = r->final_buf;
		final_figures(r->dr, m);
		if (show && ram)
			show_progress(m, &r->w, r->t0, r->how);
		done = true;
	} else if (mig_now_ms() >= *next_show) {
		if (st && !strcmp(st, "active"))
			migqemu_converge_steer(&r->w);
		if (show)
			show_progress(m, &r->w, r->t0, r->how);
		*next_show = mig_now_ms() + (r->tty_line && !migqemu_json_out
					     ? 250 : 1000);
	}
	json_decref(m);
	return done;
}

/* Follow the migration to QEMU's verdict; on a signal or --timeout,
 * cancel it and give QEMU --grace to say so. */
static void follow(struct run *r)
{
	const struct drive *dr = r->dr;
	long next_show = 0;
	bool cancelled = false;

	while (!poll_state(r, &next_show)) {
		relay_err(r->errfd);
		if (!cancelled && (interrupted ||
				   (dr->timeout_ms && mig_now_ms() - r->t0 > dr->timeout_ms))) {
			if (r->tty_line)
				fputc('\n', stderr);
			if (interrupted)
				mig_warn("interrupted: cancelling the migration");
			else
				migqemu_explain_timeout(&r->w, dr->timeout_ms / 1000);
			if (!interrupted)
				mig_warn("cancelling the migration");
			json_decref(migqemu_qmp_get(r->q, "migrate_cancel", NULL));
			cancelled = true;
			r->t0 = mig_now_ms() - dr->timeout_ms; /* the grace below */
		}
		if (cancelled && mig_now_ms() - r->t0 - dr->timeout_ms > dr->grace_ms) {
			r->final = "stuck";
			break;
		}
		qmp_poll_events(r->q, 50);
	}
	r->dr->seconds = (double)(mig_now_ms() - r->t0) / 1000;
	if (r->tty_line)
		fputc('\n', stderr);
}

/* The pipeline's statuses, written when it ends; a pipeline that does
 * not end within --grace is stopped (it runs in its own session). */
static void collect_statuses(struct run *r)
{
	char path[PATH_MAX + 32];
	long until = mig_now_ms() + r->dr->grace_ms;

	run_path(r, "status", path, sizeof path);
	while (!(r->status = read_file(path)) || !strchr(r->status, '\n')) {
		free(r->status);
		r->status = NULL;
		relay_err(r->errfd);
		if (mig_now_ms() > until)
			break;
		sleep_ms(20); /* a file written by another process: poll it */
	}
	if (!r->status) {
		run_path(r, "pid", path, sizeof path);
		char *ps = read_file(path);
		long pg = ps ? atol(ps) : 0;
		free(ps);
		if (pg > 1) {
			kill((pid_t)-pg, SIGTERM);
			sleep_ms(200);
			kill((pid_t)-pg, SIGKILL);
		}
		mig_warn("the pipeline did not end within %ld s of QEMU's verdict; "
			 "stopped it", r->dr->grace_ms / 1000);
	}
	relay_err(r->errfd);
	r->stages_ok = r->status != NULL;
	for (char *p = r->status; p && *p && r->ncodes < 64;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		r->codes[r->ncodes++] = (int)v;
		if (v != 0)
			r->stages_ok = false;
		p = end;
	}
	if (r->status && r->ncodes == 0)
		r->stages_ok = false;
}

/* After a failure QEMU may still be restarting the source: its state once
 * it settles (at most 10 s). */
static void settle_source(struct run *r)
{
	char *st = r->dr->src_status;
	size_t len = sizeof r->dr->src_status;

	for (long until = mig_now_ms() + 10000;; sleep_ms(20)) {
		qmp_status(r->q, st, len);
		if ((strcmp(st, "finish-migrate") && strcmp(st, "unknown")) ||
		    mig_now_ms() > until)
			break;
	}
}

static bool qemu_completed(const struct run *r)
{
	return r->final && !strcmp(r->final, "completed");
}

/* What failed, each stage named, and what state the source is left in. */
static void explain_failure(const struct run *r)
{
	const struct drive *dr = r->dr;

	if (r->final && !qemu_completed(r))
		mig_warn("QEMU: migration %s%s%s", r->final, *r->desc ? ": " : "",
			 r->desc);
	for (size_t i = 0; i < r->ncodes; i++) {
		int code = r->codes[i], sig = code - 128;
		const char *name = r->ncodes == dr->nstages ? dr->stages[i] : "?";
		if (!code)
			continue;
		/* the shell's 128+N: signal N, or a status such as mig-ssh's
		 * 255 or a remote 128+N passed on */
		if (sig > 0 && sig < NSIG)
			mig_warn("stage %zu (%s) failed: exit status %d (signal "
				 "%d, SIG%s, or a status passed on)", i + 1, name,
				 code, sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
		else
			mig_warn("stage %zu (%s) failed: exit status %d", i + 1,
				 name, code);
	}
	if (r->ncodes && r->ncodes != dr->nstages && !r->stages_ok)
		mig_warn("(statuses of the pipeline's stages: the PIPELINE is "
			 "not a single pipeline)");
	if (qemu_completed(r) && !r->stages_ok)
		mig_warn("QEMU says completed, but the pipeline failed: do not "
			 "trust the destination");
	if (!strcmp(dr->src_status, "running"))
		mig_warn("the source VM keeps running");
	else
		mig_warn("the source VM is %s%s", dr->src_status,
			 !strcmp(dr->src_status, "postmigrate")
				 ? ": if no destination runs, resume it (QMP cont)" : "");
}

static void report_json(const struct run *r, bool ok)
{
	const struct drive *dr = r->dr;
	json_t *st = json_array();

	for (size_t i = 0; i < r->ncodes; i++)
		json_array_append_new(st, json_pack(
			"{s:s, s:i}", "stage",
			r->ncodes == dr->nstages ? dr->stages[i] : "?",
			"status", r->codes[i]));
	json_t *o = json_pack("{s:s, s:s, s:b, s:o, s:s, s:I, s:f, s:s, s:I, "
			      "s:I, s:I}",
			      "event", "result", "result",
			      ok ? "completed" : "failed", "qemu_completed",
			      qemu_completed(r), "stages", st, "error", r->desc,
			      "transferred", (json_int_t)dr->transferred,
			      "seconds", dr->seconds, "source_status", dr->src_status,
			      "dirty_sync_count", (json_int_t)dr->dirty_syncs,
			      "pages_resent", (json_int_t)dr->pages_resent,
			      "downtime_ms", (json_int_t)dr->downtime_done_ms);
	json_dumpf(o, stdout, JSON_COMPACT);
	printf("\n");
	json_decref(o);
}

static void report_done(const struct drive *dr)
{
	char b[32];

	fmt_bytes(dr->transferred, b, sizeof b);
	mig_warn("completed in %.2f s, %s of RAM sent (%ld dirty syncs, %lld "
		 "pages re-sent, downtime %ld ms); every stage exited 0; the "
		 "source is %s", dr->seconds, b, dr->dirty_syncs,
		 (long long)dr->pages_resent, dr->downtime_done_ms, dr->src_status);
}

static void remove_dir(const struct run *r)
{
	char path[PATH_MAX + 32];

	for (const char *f = "meta\0err\0pid\0status\0"; *f; f += strlen(f) + 1) {
		run_path(r, f, path, sizeof path);
		unlink(path);
	}
	rmdir(r->dir);
}

/* Run the migration; returns the exit status (0: completed and every
 * stage exited 0). */
int migqemu_drive(struct drive *dr)
{
	struct run r = { .dr = dr, .errfd = -1, .w = { .cv = &dr->cv } };
	char err[1024], path[PATH_MAX + 32], *uri = NULL;
	const char *td = getenv("TMPDIR");
	int rc = MIG_EXIT_DATA;

	if (!(r.q = qmp_connect(dr->qmp_path, 10000, NULL, NULL, err, sizeof err))) {
		mig_warn("%s", err);
		return MIG_EXIT_IO;
	}
	r.w.q = r.q;
	if ((rc = migqemu_converge_check(&r.w, dr->downtime_ms)) != MIG_GO_ON) {
		qmp_close(r.q);
		return rc;
	}
	rc = MIG_EXIT_DATA;
	snprintf(r.dir, sizeof r.dir, "%s/mig-qemu.XXXXXX", td && *td ? td : "/tmp");
	if (!mkdtemp(r.dir)) {
		mig_warn("mkdtemp: %s", strerror(errno));
		qmp_close(r.q);
		return MIG_EXIT_IO;
	}
	if (write_meta(&r) < 0)
		goto out;
	uri = exec_uri(&r);
	if (migqemu_verbose)
		mig_warn("QEMU runs: %s", uri);
	run_path(&r, "err", path, sizeof path);
	r.errfd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (start(&r, uri) < 0)
		goto out;
	r.tty_line = !migqemu_quiet && isatty(2);
	r.how = r.tty_line ? SHOW_IN_PLACE
		: !migqemu_quiet && migqemu_progress ? SHOW_LINES : SHOW_NONE;
	follow(&r);
	collect_statuses(&r);
	settle_source(&r);
	bool ok = qemu_completed(&r) && r.stages_ok;
	if (!ok)
		explain_failure(&r);
	if (migqemu_json_out)
		report_json(&r, ok);
	rc = ok ? MIG_EXIT_OK : MIG_EXIT_DATA;
	if (ok && !migqemu_quiet)
		report_done(dr);
out:
	free(uri);
	free(r.status);
	remove_dir(&r);
	if (r.errfd >= 0)
		close(r.errfd);
	migqemu_converge_restore(&r.w);
	if (rc == MIG_EXIT_OK && dr->resume) {
		json_decref(migqemu_qmp_get(r.q, "cont", NULL));
		qmp_status(r.q, dr->src_status, sizeof dr->src_status);
	}
	qmp_close(r.q);
	return rc;
}

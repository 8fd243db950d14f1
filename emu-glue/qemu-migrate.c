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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"
#include "qmp.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* QMP helpers: a command whose error is reported; the VM's run state. */
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

	if (migqemu_json_out) {
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
int migqemu_drive(struct drive *dr)
{
	char err[1024], tmpl[PATH_MAX], path[PATH_MAX + 32];
	struct qmp *q;
	int rc = MIG_EXIT_DATA, errfd = -1;
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
	migqemu_str_add(&sc, "exec 2>>");
	snprintf(path, sizeof path, "%s/err", tmpl);
	migqemu_str_addq(&sc, path);
	migqemu_str_add(&sc, "; echo $$ >");
	snprintf(path, sizeof path, "%s/pid", tmpl);
	migqemu_str_addq(&sc, path);
	migqemu_str_add(&sc, "\n");
	migqemu_str_addq(&sc, migqemu_self_exe());
	migqemu_str_add(&sc, " seal --meta-file ");
	snprintf(path, sizeof path, "%s/meta", tmpl);
	migqemu_str_addq(&sc, path);
	if (dr->sign) {
		migqemu_str_add(&sc, " --sign ");
		migqemu_str_addq(&sc, dr->sign);
	}
	migqemu_str_add(&sc, " ");
	migqemu_str_add(&sc, dr->pipeline);
	migqemu_str_add(&sc, "\necho \"${PIPESTATUS[*]}\" >");
	snprintf(path, sizeof path, "%s/status", tmpl);
	migqemu_str_addq(&sc, path);
	migqemu_str_add(&uri, "exec:exec setsid /bin/bash -c ");
	migqemu_str_addq(&uri, sc.s);
	free(sc.s);
	if (migqemu_verbose)
		mig_warn("QEMU runs: %s", uri.s);
	snprintf(path, sizeof path, "%s/err", tmpl);
	errfd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);

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
	bool tty_line = !migqemu_quiet && isatty(2);
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
			if ((migqemu_json_out || tty_line) && ram)
				show_progress(m, t0, tty_line);
			json_decref(m);
			break;
		}
		if (mig_now_ms() >= next_show) {
			if (migqemu_json_out || tty_line)
				show_progress(m, t0, tty_line);
			next_show = mig_now_ms() + (migqemu_json_out ? 1000 : 250);
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
	if (migqemu_json_out) {
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
	if (ok && !migqemu_quiet) {
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
	if (errfd >= 0)
		close(errfd);
	if (rc == MIG_EXIT_OK && dr->resume) {
		json_decref(qmp_get(q, "cont", NULL));
		qmp_status(q, dr->src_status, sizeof dr->src_status);
	}
	qmp_close(q);
	return rc;
}

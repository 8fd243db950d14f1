/*
 * recv-feed.c - feeding the emulator: the stream relayed through a ring
 * that holds back its tail until its end is verified, then QEMU's verdict
 * over QMP, then letting go of the VM. Apart from the keeper and the
 * command line because this is the part that decides whether the VM is
 * kept.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mig.h"
#include "mig-recv.h"
#include "qemu-stream.h"
#include "qmp.h"

static int feed_out(struct feed *f, size_t k)
{
	struct mig_err e;
	if (mig_write_all(f->fd, f->ring + f->start, k, &e) < 0) {
		f->write_failed = true;
		f->write_errno = errno;
		return -1;
	}
	f->start = (f->start + k) % f->cap;
	f->len -= k;
	return 0;
}

static int feed_push(struct feed *f, const uint8_t *p, size_t n)
{
	while (n) {
		if (f->len == f->cap) {
			size_t k = f->cap - f->start < f->len ? f->cap - f->start : f->len;
			if (feed_out(f, k) < 0)
				return -1;
		}
		size_t tail = (f->start + f->len) % f->cap;
		size_t room = f->cap - f->len;
		if (room > f->cap - tail)
			room = f->cap - tail;
		size_t k = n < room ? n : room;
		memcpy(f->ring + tail, p, k);
		f->len += k;
		p += k;
		n -= k;
	}
	return 0;
}

static int feed_flush(struct feed *f)
{
	while (f->len) {
		size_t k = f->cap - f->start < f->len ? f->cap - f->start : f->len;
		if (feed_out(f, k) < 0)
			return -1;
	}
	return 0;
}

static long feed_pull(void *ctx, void *buf, size_t len)
{
	struct feed *f = ctx;
	const uint8_t *p;
	size_t n;
	int r = mig_src_chunk(f->src, &p, &n, len, &f->err);
	if (r < 0) {
		f->src_failed = true;
		errno = EIO;
		return -1;
	}
	if (r == 0)
		return 0;
	memcpy(buf, p, n);
	if (feed_push(f, p, n) < 0) {
		errno = EPIPE;
		return -1;
	}
	return (long)n;
}

/* Fail: the emulator is killed before anything else, its words shown. */
static int give_up(struct emu *em, struct feed *f, int code)
{
	migrecv_emu_kill(em);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	migrecv_show_log(em);
	return code;
}

static const char *exit_desc(int st, char *buf, size_t len)
{
	if (st == -1)
		snprintf(buf, len, "exited");
	else if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "stopped");
	return buf;
}

int migrecv_run(struct emu *em, struct feed *f, const char *sock, int timeout_s)
{
	char err[512], ex[64];
	struct qmp *q;
	struct qs_info qi = { 0 };
	char qerr[512];

	q = qmp_connect(sock, timeout_s * 1000, migrecv_emu_alive, em, err, sizeof err);
	if (!q) {
		migrecv_emu_alive(em);
		if (em->exited) {
			int code = give_up(em, f, MIG_EXIT_SYS);
			mig_warn("%s %s at start-up", em->name,
				 exit_desc(em->status, ex, sizeof ex));
			return code;
		}
		int code = give_up(em, f, MIG_EXIT_SYS);
		mig_warn("%s", err);
		return code;
	}
	if (migrecv_verbose)
		mig_warn("%s started (pid %ld), QMP %s; loading the stream", em->name,
			 (long)em->pid, sock);
	if (!(f->ring = malloc(f->cap))) {
		qmp_close(q);
		mig_warn("out of memory");
		return give_up(em, f, MIG_EXIT_SYS);
	}

	/* Relay, following the QEMU stream's structure, holding back its tail. */
	int scanned = qs_scan(feed_pull, f, 0, &qi, qerr, sizeof qerr);
	const uint8_t *p;
	size_t n;
	if (scanned == 0 && !f->write_failed) {
		int r = mig_src_chunk(f->src, &p, &n, 1, &f->err);
		if (r < 0)
			f->src_failed = true;
		else if (r > 0) {
			mig_err_set(&f->err, MIG_EXIT_DATA, "data after the end of "
				    "the QEMU stream (offset %llu)",
				    (unsigned long long)qi.bytes);
			f->src_failed = true;
		}
	}
	qs_info_free(&qi);
	if (f->write_failed) {
		qmp_close(q);
		int code = give_up(em, f, MIG_EXIT_DATA);
		mig_warn("%s stopped reading the stream (%s) and %s; stopped it",
			 em->name, strerror(f->write_errno),
			 exit_desc(em->status, ex, sizeof ex));
		return code;
	}
	if (f->src_failed || scanned < 0) {
		qmp_close(q);
		int code = give_up(em, f, f->src_failed && f->err.code ? f->err.code : MIG_EXIT_DATA);
		if (f->src_failed)
			mig_warn("stdin: %s", f->err.msg);
		else
			mig_warn("stdin: QEMU stream: %s", qerr);
		mig_warn("the stream is not complete: %s not given its end, stopped "
			 "(pid %ld)", em->name, (long)em->pid);
		return code;
	}
	/* The end is verified: the emulator may have it. */
	if (feed_flush(f) < 0) {
		qmp_close(q);
		int code = give_up(em, f, MIG_EXIT_DATA);
		mig_warn("%s stopped reading the stream (%s); stopped it", em->name,
			 strerror(f->write_errno));
		return code;
	}
	close(f->fd);
	f->fd = -1;

	/* Wait for the emulator's verdict. */
	long deadline = mig_now_ms() + timeout_s * 1000L;
	const char *status = NULL;
	json_t *ret = NULL;
	for (;;) {
		int r = qmp_exec(q, "query-migrate", NULL, &ret, 10000, err, sizeof err);
		if (r != 0) {
			qmp_close(q);
			int code = give_up(em, f, MIG_EXIT_DATA);
			mig_warn("%s did not load the stream: %s%s%s", em->name,
				 em->exited ? "it " : "", em->exited ?
				 exit_desc(em->status, ex, sizeof ex) : err, "");
			return code;
		}
		status = json_string_value(json_object_get(ret, "status"));
		if (status && (!strcmp(status, "completed") || !strcmp(status, "failed")))
			break;
		json_decref(ret);
		ret = NULL;
		if (mig_now_ms() > deadline) {
			qmp_close(q);
			int code = give_up(em, f, MIG_EXIT_DATA);
			mig_warn("%s had not loaded the stream %d s after its end "
				 "(status %s); stopped it", em->name, timeout_s,
				 status ? status : "none");
			return code;
		}
		if (qmp_poll_events(q, 20) < 0 && !migrecv_emu_alive(em))
			continue; /* query-migrate reports the loss */
	}
	if (strcmp(status, "completed") != 0) {
		const char *desc = json_string_value(json_object_get(ret, "error-desc"));
		char d2[512];
		snprintf(d2, sizeof d2, "%s", desc ? desc : "");
		json_decref(ret);
		qmp_close(q);
		int code = give_up(em, f, MIG_EXIT_DATA);
		mig_warn("%s failed to load the stream%s%s; stopped it", em->name,
			 *d2 ? ": " : "", d2);
		return code;
	}
	json_decref(ret);
	ret = NULL;
	const char *run_state = "unknown";
	char rs[64] = "";
	if (qmp_exec(q, "query-status", NULL, &ret, 10000, err, sizeof err) == 0) {
		const char *s = json_string_value(json_object_get(ret, "status"));
		snprintf(rs, sizeof rs, "%s", s ? s : "unknown");
		run_state = rs;
	}
	json_decref(ret);
	qmp_close(q);
	/* Let go: the VM is no longer ours to stop. */
	char ack = 0;
	struct pollfd pf = { em->report, POLLIN, 0 };
	if (write(em->ctl, "D", 1) != 1 || poll(&pf, 1, 10000) != 1 ||
	    read(em->report, &ack, 1) != 1 || ack != 'A') {
		int code = give_up(em, f, MIG_EXIT_SYS);
		mig_warn("lost the keeper of %s", em->name);
		return code;
	}
	close(em->ctl);
	close(em->report);
	if (!migrecv_quiet)
		mig_warn("%s loaded the stream and is %s (pid %ld, QMP %s)", em->name,
			 run_state, (long)em->pid, sock);
	return MIG_EXIT_OK;
}

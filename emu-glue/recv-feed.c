/* SPDX-License-Identifier: BSD-2-Clause */
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
	f->released += k;
	return 0;
}

/* How much of the ring's oldest k bytes may go before the end is
 * verified: none from the first device section on. migkit's reader does
 * not parse device state, QEMU does, and completes the load at the first
 * QEMU_VM_EOF and description it meets there: a forged pair followed by
 * more than the ring holds would otherwise reach it before END is
 * checked. So all of the device state must fit in the ring. */
static int releasable(struct feed *f, size_t *k)
{
	uint64_t dev = f->scan ? f->scan->device_offset : 0;

	if (!dev || f->released + *k <= dev)
		return 0;
	*k = dev > f->released ? (size_t)(dev - f->released) : 0;
	if (*k)
		return 0;
	mig_err_set(&f->err, MIG_EXIT_DATA, "QEMU stream: the device state from "
		    "offset %llu is longer than %zu MiB: refused (all of it is "
		    "held back from the emulator until the end is verified)",
		    (unsigned long long)dev, f->cap >> 20);
	f->src_failed = true;
	return -1;
}

static int feed_push(struct feed *f, const uint8_t *p, size_t n)
{
	while (n) {
		if (f->len == f->cap) {
			size_t k = f->cap - f->start < f->len ? f->cap - f->start : f->len;
			if (releasable(f, &k) < 0 || feed_out(f, k) < 0)
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
		errno = f->write_failed ? EPIPE : EIO;
		return -1;
	}
	return (long)n;
}

/* One feeding under way: what migrecv_run's steps share. */
struct run {
	struct emu *em;
	struct feed *f;
	struct qmp *q; /* the emulator's monitor; NULL once closed */
	const char *sock;
	int timeout_s;
};

/* Fail: the monitor closed, the emulator killed before anything else,
 * its words shown; the caller then says why. */
static int give_up(struct run *r, int code)
{
	if (r->q)
		qmp_close(r->q);
	r->q = NULL;
	migrecv_emu_kill(r->em);
	if (r->f->fd >= 0)
		close(r->f->fd);
	r->f->fd = -1;
	migrecv_show_log(r->em);
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

/* The emulator's monitor, once it listens; an emulator that ends first
 * is said to have. */
static int connect_monitor(struct run *r)
{
	char err[512], ex[64];
	struct emu *em = r->em;
	int code;

	r->q = qmp_connect(r->sock, r->timeout_s * 1000, migrecv_emu_alive, em,
			   err, sizeof err);
	if (r->q) {
		if (migrecv_verbose)
			mig_warn("%s started (pid %ld), QMP %s; loading the stream",
				 em->name, (long)em->pid, r->sock);
		return 0;
	}
	migrecv_emu_alive(em);
	if (em->exited) {
		code = give_up(r, MIG_EXIT_SYS);
		mig_warn("%s %s at start-up", em->name,
			 exit_desc(em->status, ex, sizeof ex));
		return code;
	}
	code = give_up(r, MIG_EXIT_SYS);
	mig_warn("%s", err);
	return code;
}

/* Relay the stream, following the QEMU stream's structure, holding back
 * its tail; what follows its end is refused. qs_scan's result. */
static int relay(struct feed *f, char *qerr, size_t qlen)
{
	struct qs_info qi = { 0 };
	const uint8_t *p;
	size_t n;
	int scanned;

	f->scan = &qi;
	scanned = qs_scan(feed_pull, f, 0, &qi, qerr, qlen);
	f->scan = NULL;
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
	return scanned;
}

/* The whole stream to the emulator, its end only once verified. */
static int feed_stream(struct run *r)
{
	char qerr[512], ex[64];
	struct emu *em = r->em;
	struct feed *f = r->f;
	int scanned, code;

	if (!(f->ring = malloc(f->cap))) {
		mig_warn("out of memory");
		return give_up(r, MIG_EXIT_SYS);
	}
	scanned = relay(f, qerr, sizeof qerr);
	if (f->write_failed) {
		code = give_up(r, MIG_EXIT_DATA);
		mig_warn("%s stopped reading the stream (%s) and %s; stopped it",
			 em->name, strerror(f->write_errno),
			 exit_desc(em->status, ex, sizeof ex));
		return code;
	}
	if (f->src_failed || scanned < 0) {
		code = give_up(r, f->src_failed && f->err.code ? f->err.code
							       : MIG_EXIT_DATA);
		if (f->src_failed)
			mig_warn("stdin: %s", f->err.msg);
		else
			mig_warn("stdin: QEMU stream: %s", qerr);
		mig_warn("the stream is not complete: %s not given its end, "
			 "stopped (pid %ld)", em->name, (long)em->pid);
		return code;
	}
	/* The end is verified: the emulator may have it. */
	if (feed_flush(f) < 0) {
		code = give_up(r, MIG_EXIT_DATA);
		mig_warn("%s stopped reading the stream (%s); stopped it", em->name,
			 strerror(f->write_errno));
		return code;
	}
	close(f->fd);
	f->fd = -1;
	return 0;
}

/* query-migrate until the emulator says completed or failed (*ret, its
 * answer), at most --timeout after the stream's end. */
static int await_verdict(struct run *r, json_t **ret)
{
	char err[512], ex[64];
	struct emu *em = r->em;
	long deadline = mig_now_ms() + r->timeout_s * 1000L;
	const char *status;
	int code;

	for (;;) {
		if (qmp_exec(r->q, "query-migrate", NULL, ret, 10000, err,
			     sizeof err) != 0) {
			code = give_up(r, MIG_EXIT_DATA);
			mig_warn("%s did not load the stream: %s%s%s", em->name,
				 em->exited ? "it " : "", em->exited ?
				 exit_desc(em->status, ex, sizeof ex) : err, "");
			return code;
		}
		status = json_string_value(json_object_get(*ret, "status"));
		if (status && (!strcmp(status, "completed") ||
			       !strcmp(status, "failed")))
			return 0;
		json_decref(*ret);
		*ret = NULL;
		if (mig_now_ms() > deadline) {
			code = give_up(r, MIG_EXIT_DATA);
			mig_warn("%s had not loaded the stream %d s after its end "
				 "(status %s); stopped it", em->name, r->timeout_s,
				 status ? status : "none");
			return code;
		}
		if (qmp_poll_events(r->q, 20) < 0 && !migrecv_emu_alive(em))
			continue; /* query-migrate reports the loss */
	}
}

/* The verdict: completed, or the emulator stopped with QEMU's reason. */
static int check_loaded(struct run *r, json_t *ret)
{
	const char *status = json_string_value(json_object_get(ret, "status"));
	const char *desc = json_string_value(json_object_get(ret, "error-desc"));
	char d2[512];
	int code;

	if (!strcmp(status, "completed"))
		return 0;
	snprintf(d2, sizeof d2, "%s", desc ? desc : "");
	code = give_up(r, MIG_EXIT_DATA);
	mig_warn("%s failed to load the stream%s%s; stopped it", r->em->name,
		 *d2 ? ": " : "", d2);
	return code;
}

/* The VM's run state, for the last word ("unknown" if QMP cannot say). */
static void run_state(struct run *r, char *rs, size_t len)
{
	char err[512];
	json_t *ret = NULL;

	snprintf(rs, len, "unknown");
	if (qmp_exec(r->q, "query-status", NULL, &ret, 10000, err, sizeof err) == 0) {
		const char *s = json_string_value(json_object_get(ret, "status"));
		snprintf(rs, len, "%s", s ? s : "unknown");
	}
	json_decref(ret);
}

/* Let go: the VM is no longer ours to stop. */
static int let_go(struct run *r)
{
	struct emu *em = r->em;
	struct pollfd pf = { em->report, POLLIN, 0 };
	char ack = 0;

	if (write(em->ctl, "D", 1) != 1 || poll(&pf, 1, 10000) != 1 ||
	    read(em->report, &ack, 1) != 1 || ack != 'A') {
		int code = give_up(r, MIG_EXIT_SYS);
		mig_warn("lost the keeper of %s", em->name);
		return code;
	}
	close(em->ctl);
	close(em->report);
	return 0;
}

int migrecv_run(struct emu *em, struct feed *f, const char *sock, int timeout_s)
{
	struct run r = { .em = em, .f = f, .sock = sock, .timeout_s = timeout_s };
	json_t *verdict = NULL;
	char rs[64];
	int rc;

	if ((rc = connect_monitor(&r)) != 0 || (rc = feed_stream(&r)) != 0 ||
	    (rc = await_verdict(&r, &verdict)) != 0)
		return rc;
	rc = check_loaded(&r, verdict);
	json_decref(verdict);
	if (rc != 0)
		return rc;
	run_state(&r, rs, sizeof rs);
	qmp_close(r.q);
	r.q = NULL;
	if ((rc = let_go(&r)) != 0)
		return rc;
	if (!migrecv_quiet)
		mig_warn("%s loaded the stream and is %s (pid %ld, QMP %s)", em->name,
			 rs, (long)em->pid, sock);
	return MIG_EXIT_OK;
}

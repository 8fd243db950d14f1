/* SPDX-License-Identifier: BSD-2-Clause */
/* qmp.c - a small QMP client on jansson (see qmp.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"

#define QMP_EVENTS_MAX 64
#define QMP_LINE_MAX (4u << 20)

struct qmp {
	int fd;
	char *buf;
	size_t len, cap;
	json_t *events[QMP_EVENTS_MAX];
	size_t nevents;
	unsigned seq;
};

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void keep_event(struct qmp *q, json_t *ev)
{
	if (q->nevents == QMP_EVENTS_MAX) {
		json_decref(q->events[0]);
		memmove(q->events, q->events + 1,
			(QMP_EVENTS_MAX - 1) * sizeof *q->events);
		q->nevents--;
	}
	q->events[q->nevents++] = ev;
}

/* The next JSON line, waiting until deadline (ms, monotonic). 1 with *out,
 * 0 on timeout, -1 when the connection is gone. */
static int read_msg(struct qmp *q, long deadline, json_t **out, char *err,
		    size_t errlen)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - q->buf) + 1;
			json_error_t je;
			json_t *j = json_loadb(q->buf, n, 0, &je);
			memmove(q->buf, q->buf + n, q->len - n);
			q->len -= n;
			if (!j) {
				snprintf(err, errlen, "QMP: bad JSON from QEMU: %s",
					 je.text);
				return -1;
			}
			*out = j;
			return 1;
		}
		long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { q->fd, POLLIN, 0 };
		int r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "QMP: poll: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			return 0;
		if (q->cap - q->len < 65536) {
			if (q->cap >= QMP_LINE_MAX) {
				snprintf(err, errlen, "QMP: line too long");
				return -1;
			}
			size_t cap = q->cap ? q->cap * 2 : 131072;
			char *b = realloc(q->buf, cap);
			if (!b) {
				snprintf(err, errlen, "QMP: out of memory");
				return -1;
			}
			q->buf = b;
			q->cap = cap;
		}
		ssize_t n = read(q->fd, q->buf + q->len, q->cap - q->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "QMP: connection closed by QEMU%s%s",
				 n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return -1;
		}
		q->len += (size_t)n;
	}
}

static int send_json(struct qmp *q, json_t *j, char *err, size_t errlen)
{
	char *s = json_dumps(j, JSON_COMPACT);
	int rc = 0;

	if (!s) {
		snprintf(err, errlen, "QMP: cannot encode the command");
		return -1;
	}
	size_t len = strlen(s), off = 0;
	s[len] = '\n'; /* json_dumps leaves room for the NUL: reuse it */
	len++;
	while (off < len) {
		ssize_t n = send(q->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "QMP: send: %s", strerror(errno));
			rc = -1;
			break;
		}
		off += (size_t)n;
	}
	free(s);
	return rc;
}

int qmp_exec(struct qmp *q, const char *cmd, json_t *args, json_t **ret,
	     int timeout_ms, char *err, size_t errlen)
{
	char id[32];
	long deadline = now_ms() + timeout_ms;
	json_t *req;

	if (ret)
		*ret = NULL;
	snprintf(id, sizeof id, "migkit-%u", ++q->seq);
	req = json_pack("{s:s, s:s}", "execute", cmd, "id", id);
	if (args)
		json_object_set_new(req, "arguments", args);
	int rc = send_json(q, req, err, errlen);
	json_decref(req);
	if (rc < 0)
		return -1;
	for (;;) {
		json_t *m = NULL;
		int r = read_msg(q, deadline, &m, err, errlen);
		if (r < 0)
			return -1;
		if (r == 0) {
			snprintf(err, errlen, "QMP: no reply to %s within %d ms",
				 cmd, timeout_ms);
			return -1;
		}
		if (json_object_get(m, "event")) {
			keep_event(q, m);
			continue;
		}
		const char *mid = json_string_value(json_object_get(m, "id"));
		if (!mid || strcmp(mid, id) != 0) {
			json_decref(m);
			continue;
		}
		json_t *e = json_object_get(m, "error");
		if (e) {
			const char *desc = json_string_value(json_object_get(e, "desc"));
			snprintf(err, errlen, "%s", desc ? desc : "QMP error");
			json_decref(m);
			return 1;
		}
		if (ret) {
			*ret = json_object_get(m, "return");
			json_incref(*ret);
		}
		json_decref(m);
		return 0;
	}
}

int qmp_poll_events(struct qmp *q, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	char err[256];

	for (;;) {
		json_t *m = NULL;
		int r = read_msg(q, deadline, &m, err, sizeof err);
		if (r <= 0)
			return r;
		if (json_object_get(m, "event"))
			keep_event(q, m);
		else
			json_decref(m);
		deadline = now_ms(); /* only what is there already */
	}
}

json_t *qmp_event_seen(struct qmp *q, const char *name)
{
	for (size_t i = q->nevents; i-- > 0;) {
		const char *n = json_string_value(json_object_get(q->events[i], "event"));
		if (n && !strcmp(n, name))
			return q->events[i];
	}
	return NULL;
}

struct qmp *qmp_connect(const char *path, int timeout_ms,
			bool (*alive)(void *ctx), void *ctx, char *err,
			size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long deadline = now_ms() + timeout_ms;
	struct qmp *q;
	int fd = -1;

	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "QMP socket path too long: %s", path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return NULL;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		int saved = errno;
		close(fd);
		fd = -1;
		if ((saved != ENOENT && saved != ECONNREFUSED) ||
		    now_ms() > deadline || (alive && !alive(ctx))) {
			snprintf(err, errlen, "cannot connect to the QMP socket %s: %s",
				 path, strerror(saved));
			return NULL;
		}
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL); /* the socket does not exist yet: nothing to wait on */
	}
	if (!(q = calloc(1, sizeof *q))) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->fd = fd;
	json_t *greeting = NULL;
	int r = read_msg(q, now_ms() + (timeout_ms > 5000 ? timeout_ms : 5000),
			 &greeting, err, errlen);
	if (r <= 0 || !json_object_get(greeting, "QMP")) {
		if (r == 0)
			snprintf(err, errlen, "no QMP greeting on %s", path);
		else if (r > 0)
			snprintf(err, errlen, "%s: not a QMP greeting", path);
		json_decref(greeting);
		qmp_close(q);
		return NULL;
	}
	json_decref(greeting);
	if (qmp_exec(q, "qmp_capabilities", NULL, NULL, 10000, err, errlen)) {
		qmp_close(q);
		return NULL;
	}
	return q;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	close(q->fd);
	for (size_t i = 0; i < q->nevents; i++)
		json_decref(q->events[i]);
	free(q->buf);
	free(q);
}

pid_t qmp_peer_pid(struct qmp *q)
{
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -1;
	return cr.pid;
}

char *qmp_unix_path(const char *spec)
{
	const char *p = spec;
	if (!strncmp(p, "unix:", 5))
		p += 5;
	else if (strchr(p, ':'))
		return NULL; /* tcp:, stdio, chardev ids... */
	/* QEMU doubles a comma to put one in a value */
	char *out = malloc(strlen(p) + 1), *o = out;
	if (!out)
		return NULL;
	for (; *p; p++) {
		if (*p == ',') {
			if (p[1] != ',')
				break;
			p++;
		}
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qmp.h - a small QMP client (QEMU Machine Protocol) on jansson, shared by
 * mig-recv and mig-qemu: connect to a unix socket, negotiate, run
 * commands, see events, and find out who is at the other end.
 *
 * One command at a time; events that arrive meanwhile are kept (the last
 * QMP_EVENTS_MAX) and can be looked at with qmp_event_seen().
 */
#ifndef MIGKIT_QMP_H
#define MIGKIT_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

struct qmp;

/* Connect to the unix socket PATH, retrying for up to timeout_ms while it
 * does not exist or does not listen yet (alive(ctx) false stops early),
 * read the greeting and send qmp_capabilities. NULL with a message in
 * err. */
struct qmp *qmp_connect(const char *path, int timeout_ms,
			bool (*alive)(void *ctx), void *ctx, char *err,
			size_t errlen);
void qmp_close(struct qmp *q);

/*
 * Run CMD with ARGS (a JSON object, or NULL; the reference is stolen).
 * Returns 0 with *ret set to the "return" value (a new reference; ret may
 * be NULL), 1 when QEMU answered with an error (its desc in err), -1 when
 * the connection failed or timed out (message in err).
 */
int qmp_exec(struct qmp *q, const char *cmd, json_t *args, json_t **ret,
	     int timeout_ms, char *err, size_t errlen);

/* Read and keep whatever events arrive within timeout_ms. -1 if the
 * connection is gone. */
int qmp_poll_events(struct qmp *q, int timeout_ms);
/* The most recent event named NAME seen so far, or NULL (borrowed). */
json_t *qmp_event_seen(struct qmp *q, const char *name);

/* The pid at the other end of the socket (SO_PEERCRED), or -1. */
pid_t qmp_peer_pid(struct qmp *q);

/* "unix:PATH[,opts]" or "PATH" of a -qmp argument: the socket path, or
 * NULL when it is not a unix socket (malloc'ed). */
char *qmp_unix_path(const char *spec);

#endif

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ssh-prefetch.c - stdin read while the connection is set up.
 *
 * Connecting, the key exchange, the host key check, authentication and
 * starting the command take a round trip each (0.1 s on loopback, more on
 * a real link). Until now the stage before mig-ssh stalled on a full pipe
 * for all of it. Here a thread reads stdin into memory meanwhile, at most
 * PREFETCH_MAX bytes; the transfer sends these bytes first, in order, once
 * the command runs.
 *
 * Nothing changes about what is sent or to whom: the thread only reads,
 * the bytes go out through the transfer after the host key was verified,
 * we logged in and the command started. On any failure before that they
 * are dropped with the memory; mig-ssh exits 255 as before and the stage
 * before it gets EPIPE on its next write.
 *
 * Only a pipe or a socket is read ahead: a file or a terminal makes
 * nobody wait, and a file's offset (shared with whoever reads it next)
 * must not move when mig-ssh fails. Apart from the transfer because it
 * runs beside the set-up, in a thread that touches nothing of libssh.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig-ssh.h"

/* Room for one more read: the last chunk if it has some, else a new one;
 * NULL when the bound is reached or memory is short (then the transfer
 * reads the rest itself, as it would have). */
static uint8_t *room(struct prefetch *p, size_t *space)
{
	if (p->nchunks && p->len[p->nchunks - 1] < BUF_SIZE) {
		*space = BUF_SIZE - p->len[p->nchunks - 1];
		return p->chunk[p->nchunks - 1] + p->len[p->nchunks - 1];
	}
	if (p->nchunks == PREFETCH_CHUNKS ||
	    !(p->chunk[p->nchunks] = malloc(BUF_SIZE)))
		return NULL;
	p->len[p->nchunks++] = 0;
	*space = BUF_SIZE;
	return p->chunk[p->nchunks - 1];
}

/* One read into the buffer: false when reading ahead is over (the bound,
 * stdin's end, an error kept for the transfer to report in its turn). */
static bool read_some(struct prefetch *p)
{
	size_t space;
	uint8_t *at = room(p, &space);
	ssize_t n;

	if (!at)
		return false;
	n = read(0, at, space);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n < 0)
		p->err = errno;
	else if (n == 0)
		p->eof = true;
	else {
		p->len[p->nchunks - 1] += (size_t)n;
		p->bytes += (size_t)n;
	}
	return n > 0;
}

/* The thread: read while stdin has data, until told to stop. */
static void *reader(void *arg)
{
	struct prefetch *p = arg;

	for (;;) {
		struct pollfd f[2] = { { .fd = p->stop[0], .events = POLLIN },
				       { .fd = 0, .events = POLLIN } };
		/* poll() failing is no read error: the transfer reads on */
		if (poll(f, 2, -1) < 0 && errno != EINTR)
			break;
		if (f[0].revents)
			break;
		if (f[1].revents && !read_some(p))
			break;
	}
	return NULL;
}

/* Only a pipe or a socket makes a writer wait (see above). */
static bool worth_it(void)
{
	struct stat st;

	return fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Start reading ahead. Without a thread (no pipe, no memory) the transfer
 * simply reads stdin itself, as it did before: never an error. */
void migssh_prefetch_start(struct prefetch *p)
{
	*p = (struct prefetch){ .stop = { -1, -1 } };
	if (!worth_it() || pipe2(p->stop, O_CLOEXEC) < 0)
		return;
	if (pthread_create(&p->thread, NULL, reader, p) != 0) {
		close(p->stop[0]);
		close(p->stop[1]);
		p->stop[0] = p->stop[1] = -1;
		return;
	}
	p->started = p->running = true;
}

/* Stop the thread and wait for it: from here its fields are ours. */
void migssh_prefetch_stop(struct prefetch *p)
{
	if (!p->running)
		return;
	/* the pipe never fills: one byte, and the thread reads none of it */
	while (write(p->stop[1], "", 1) < 0 && errno == EINTR)
		;
	pthread_join(p->thread, NULL);
	p->running = false;
	close(p->stop[0]);
	close(p->stop[1]);
	p->stop[0] = p->stop[1] = -1;
}

/* The transfer has something of ours to take: bytes, stdin's end or the
 * read error met ahead. */
bool migssh_prefetch_pending(const struct prefetch *p)
{
	return p->next < p->nchunks || p->eof || p->err;
}

/* The oldest chunk not yet taken, now the caller's (BUF_SIZE bytes of
 * room, *len used), or NULL when none is left. */
uint8_t *migssh_prefetch_take(struct prefetch *p, size_t *len)
{
	uint8_t *c;

	if (p->next == p->nchunks)
		return NULL;
	c = p->chunk[p->next];
	*len = p->len[p->next];
	p->chunk[p->next++] = NULL;
	return c;
}

/* Whatever was not taken: dropped (mig-ssh failed before sending it). */
void migssh_prefetch_free(struct prefetch *p)
{
	migssh_prefetch_stop(p);
	for (size_t i = p->next; i < p->nchunks; i++)
		free(p->chunk[i]);
	p->next = p->nchunks;
}

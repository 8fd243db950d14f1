/* SPDX-License-Identifier: BSD-2-Clause */
/* source.c - reading a stream in chunks, whatever produces it. */
#include <errno.h>
#include <poll.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "source-private.h"

/* Below this, a read goes through the source's buffer; above it, straight
 * into the caller's. */
#define DIRECT_MIN (64u << 10)

void mig_src_init(struct mig_src *s, const struct mig_src_ops *ops,
		  const char *name)
{
	memset(s, 0, sizeof *s);
	s->ops = ops;
	s->name = name;
}

uint64_t mig_src_offset(const struct mig_src *s)
{
	return s->offset;
}

const char *mig_src_name(const struct mig_src *s)
{
	return s->name;
}

static size_t buffered(const struct mig_src *s)
{
	return s->looklen - s->lookpos + s->curlen;
}

/* Make sure cur holds something unless the source has ended. */
static int fill(struct mig_src *s, struct mig_err *e)
{
	if (s->curlen > 0 || s->lookpos < s->looklen)
		return 1;
	if (s->ended)
		return 0;
	int r = s->ops->next(s, &s->cur, &s->curlen, e);
	if (r == 0) {
		s->ended = true;
		s->curlen = 0;
	}
	return r;
}

int mig_src_chunk(struct mig_src *s, const uint8_t **p, size_t *len,
		  size_t max, struct mig_err *e)
{
	int r = fill(s, e);
	if (r <= 0)
		return r;
	if (s->lookpos < s->looklen) {
		size_t n = s->looklen - s->lookpos;
		*p = s->look + s->lookpos;
		*len = n < max ? n : max;
		s->lookpos += *len;
	} else {
		*p = s->cur;
		*len = s->curlen < max ? s->curlen : max;
		s->cur += *len;
		s->curlen -= *len;
	}
	s->offset += *len;
	return 1;
}

/* At most len bytes, what the source gives in one step (buffered bytes,
 * or one read); 0 only at the end. */
static long read_some(struct mig_src *s, uint8_t *out, size_t len,
		      struct mig_err *e)
{
	if (buffered(s) == 0 && !s->ended && s->ops->read_direct &&
	    len >= DIRECT_MIN) {
		long n = s->ops->read_direct(s, out, len, e);
		if (n < 0)
			return -1;
		if (n == 0)
			s->ended = true;
		s->offset += (uint64_t)n;
		return n;
	}
	const uint8_t *p;
	size_t n;
	int r = mig_src_chunk(s, &p, &n, len, e);
	if (r <= 0)
		return r;
	memcpy(out, p, n);
	return (long)n;
}

long mig_src_read(struct mig_src *s, void *buf, size_t len, struct mig_err *e)
{
	uint8_t *out = buf;
	size_t done = 0;

	while (done < len) {
		long n = read_some(s, out + done, len - done, e);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (long)done;
}

/* Nothing left in cur: has input been idle until deadline (ms,
 * mig_now_ms())? 1 idle, 0 not (or the source cannot tell), -1 error. */
static int idle_until(struct mig_src *s, long deadline, struct mig_err *e)
{
	if (s->curlen > 0 || s->ended || !s->ops->wait)
		return 0;
	long left = deadline - mig_now_ms();
	int r = s->ops->wait(s, left > 0 ? (int)left : 0, e);

	return r < 0 ? -1 : !r;
}

long mig_src_read_idle(struct mig_src *s, void *buf, size_t len, int idle_ms,
		       bool *idle, struct mig_err *e)
{
	long done = 0, deadline = 0;

	*idle = false;
	if (idle_ms <= 0)
		return mig_src_read(s, buf, len, e);
	while ((size_t)done < len) {
		if (done > 0 && buffered(s) == 0) {
			int r = idle_until(s, deadline, e);
			if (r < 0)
				return -1;
			if (r > 0) {
				*idle = true;
				break;
			}
		}
		/* what is there now: a read takes what one read(2) gives */
		long n = read_some(s, (uint8_t *)buf + done, len - (size_t)done,
				   e);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += n;
		deadline = mig_now_ms() + idle_ms; /* idle from the last byte */
	}
	return done;
}

long mig_src_pull_read(void *pull, void *buf, size_t len)
{
	struct mig_src_pull *p = pull;
	long n = mig_src_read(p->src, buf, len, p->err);

	if (n < 0) {
		p->failed = true;
		errno = EIO;
	}
	return n;
}

/* mig_src_peek; with idle_ms > 0, once a byte is in, no waiting for more
 * than idle_ms after the last one came. */
static int peek(struct mig_src *s, size_t n, int idle_ms, const uint8_t **p,
		size_t *got, struct mig_err *e)
{
	long deadline = 0;

	if (n > MIG_PEEK_MAX)
		n = MIG_PEEK_MAX;
	if (s->lookpos == s->looklen && s->curlen >= n) {
		*p = s->cur;
		*got = n;
		return 0;
	}
	/* Gather n bytes into look, ahead of what is left of cur. */
	memmove(s->look, s->look + s->lookpos, s->looklen - s->lookpos);
	s->looklen -= s->lookpos;
	s->lookpos = 0;
	while (s->looklen < n) {
		if (s->curlen == 0) {
			if (s->ended)
				break;
			if (idle_ms > 0 && s->looklen > 0) {
				int r = idle_until(s, deadline, e);
				if (r < 0)
					return -1;
				if (r > 0)
					break;
			}
			int r = s->ops->next(s, &s->cur, &s->curlen, e);
			if (r < 0)
				return -1;
			if (r == 0) {
				s->ended = true;
				s->curlen = 0;
				break;
			}
			deadline = mig_now_ms() + idle_ms;
		}
		size_t take = n - s->looklen;
		if (take > s->curlen)
			take = s->curlen;
		memcpy(s->look + s->looklen, s->cur, take);
		s->looklen += take;
		s->cur += take;
		s->curlen -= take;
	}
	*p = s->look;
	*got = s->looklen;
	return 0;
}

int mig_src_peek(struct mig_src *s, size_t n, const uint8_t **p, size_t *got,
		 struct mig_err *e)
{
	return peek(s, n, 0, p, got, e);
}

int mig_src_peek_idle(struct mig_src *s, size_t n, int idle_ms,
		      const uint8_t **p, size_t *got, struct mig_err *e)
{
	return peek(s, n, idle_ms, p, got, e);
}

bool mig_src_ready(struct mig_src *s)
{
	if (buffered(s) > 0 || s->ended || !s->ops->ready)
		return true;
	return s->ops->ready(s);
}

void mig_src_free(struct mig_src *s)
{
	if (s)
		s->ops->free(s);
}

/* ---- A file descriptor --------------------------------------------------- */

#define FD_BUF (1u << 20)

struct fd_src {
	struct mig_src base;
	int fd;
	int watch; /* the output whose reader's end is watched, or -1 */
	bool polled; /* fd_wait just saw input (or its end): read at once */
	uint8_t *buf;
};

/* Wait for input, or for the reader of f->watch to go: a stage whose
 * downstream died must fail at once, not at its next write, which a
 * compressor may make only megabytes later: QEMU must get EPIPE while it
 * is still sending, so that the migration fails and the source runs on.
 * At most ms milliseconds (-1: no limit): 1 ready, 0 timed out, -1. */
static int wait_input(const struct fd_src *f, int ms, struct mig_err *e)
{
	struct pollfd p[2] = { { .fd = f->fd, .events = POLLIN },
			       { .fd = f->watch, .events = 0 } };
	long deadline = mig_now_ms() + ms;

	for (;;) {
		int n = poll(p, f->watch >= 0 ? 2 : 1, ms);
		if (n < 0) {
			if (errno != EINTR)
				return mig_err_set(e, MIG_EXIT_IO, "poll: %s",
						   strerror(errno));
			if (ms >= 0 && (ms = (int)(deadline - mig_now_ms())) < 0)
				ms = 0;
			continue;
		}
		if (n == 0)
			return 0;
		if (f->watch >= 0 && (p[1].revents & (POLLERR | POLLHUP)) &&
		    !(p[0].revents & POLLIN))
			return mig_err_set(e, MIG_EXIT_IO, "write to stdout: %s",
					   strerror(EPIPE));
		return 1;
	}
}

static long fd_read(struct mig_src *s, void *buf, size_t len, struct mig_err *e)
{
	struct fd_src *f = (struct fd_src *)s;

	for (;;) {
		if (f->watch >= 0 && !f->polled && wait_input(f, -1, e) < 0)
			return -1;
		f->polled = false;
		ssize_t n = read(f->fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) { /* non-blocking, from our spawner */
			if (wait_input(f, -1, e) < 0)
				return -1;
			continue;
		}
		return mig_err_set(e, MIG_EXIT_IO, "read: %s", strerror(errno));
	}
}

static int fd_next(struct mig_src *s, const uint8_t **p, size_t *len,
		   struct mig_err *e)
{
	struct fd_src *f = (struct fd_src *)s;

	if (!f->buf && !(f->buf = malloc(FD_BUF)))
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	long n = fd_read(s, f->buf, FD_BUF, e);
	if (n <= 0)
		return (int)n;
	*p = f->buf;
	*len = (size_t)n;
	return 1;
}

static bool fd_ready(struct mig_src *s)
{
	struct pollfd p = { .fd = ((struct fd_src *)s)->fd, .events = POLLIN };

	return poll(&p, 1, 0) != 0; /* data, end, error or EINTR: go on */
}

static int fd_wait(struct mig_src *s, int ms, struct mig_err *e)
{
	struct fd_src *f = (struct fd_src *)s;
	int r = wait_input(f, ms, e);

	f->polled = r > 0; /* the read that follows need not poll again */
	return r;
}

static void fd_free(struct mig_src *s)
{
	struct fd_src *f = (struct fd_src *)s;

	free(f->buf);
	free(f);
}

static const struct mig_src_ops fd_ops = {
	.next = fd_next,
	.read_direct = fd_read,
	.ready = fd_ready,
	.wait = fd_wait,
	.free = fd_free,
};

struct mig_src *mig_src_fd(int fd, const char *name)
{
	struct fd_src *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	mig_src_init(&f->base, &fd_ops, name);
	f->fd = fd;
	f->watch = -1;
	return &f->base;
}

void mig_src_fd_watch(struct mig_src *s, int out)
{
	struct stat st;

	/* only a pipe or a socket has a reader that can go */
	if (fstat(out, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		((struct fd_src *)s)->watch = out;
}

/* ---- Memory ------------------------------------------------------------------ */

struct mem_src {
	struct mig_src base;
	const uint8_t *p;
	size_t len, pos, chunk;
};

static int mem_next(struct mig_src *s, const uint8_t **p, size_t *len,
		    struct mig_err *e)
{
	struct mem_src *m = (struct mem_src *)s;

	(void)e;
	if (m->pos == m->len)
		return 0;
	*p = m->p + m->pos;
	*len = m->len - m->pos < m->chunk ? m->len - m->pos : m->chunk;
	m->pos += *len;
	return 1;
}

static void mem_free(struct mig_src *s)
{
	free(s);
}

static const struct mig_src_ops mem_ops = { .next = mem_next, .free = mem_free };

struct mig_src *mig_src_mem(const void *p, size_t len, size_t chunk,
			    const char *name)
{
	struct mem_src *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	mig_src_init(&m->base, &mem_ops, name);
	m->p = p;
	m->len = len;
	m->chunk = chunk ? chunk : SIZE_MAX;
	return &m->base;
}

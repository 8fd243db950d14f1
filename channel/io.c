/* SPDX-License-Identifier: BSD-2-Clause */
/* io.c - writing to descriptors that may be pipes, slow, or closed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mig.h"

/* The kernel's pipe size limit for unprivileged users is usually 1 MiB;
 * root may go further, but 1 MiB already matches our frame size. */
#define PIPE_WANT (1 << 20)

void mig_pipe_grow(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode))
		return;
	for (int size = PIPE_WANT; size >= 64 << 10; size /= 2)
		if (fcntl(fd, F_SETPIPE_SZ, size) >= 0)
			return;
}

ssize_t mig_pread_full(int fd, void *buf, size_t n, off_t at)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, at + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Wait until fd is writable again when a spawner handed us a
 * non-blocking descriptor. */
static int wait_writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static int io_error(struct mig_err *e, int fd)
{
	const char *what = fd == 1 ? "stdout" : "output";

	return mig_err_set(e, MIG_EXIT_IO, "write to %s: %s", what,
			   strerror(errno));
}

int mig_writev_all(int fd, const void *a, size_t alen, const void *b,
		   size_t blen, struct mig_err *e)
{
	struct iovec iov[2] = {
		{ (void *)a, alen },
		{ (void *)b, blen },
	};
	struct iovec *v = iov;
	int cnt = 2;

	while (cnt > 0) {
		if (v->iov_len == 0) {
			v++, cnt--;
			continue;
		}
		ssize_t n = writev(fd, v, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && wait_writable(fd) == 0)
				continue;
			return io_error(e, fd);
		}
		while (cnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++, cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int mig_write_all(int fd, const void *buf, size_t len, struct mig_err *e)
{
	return mig_writev_all(fd, buf, len, NULL, 0, e);
}

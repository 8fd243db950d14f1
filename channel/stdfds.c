/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stdfds.c - standard descriptors that were closed when we started.
 *
 * A program started with descriptor 0, 1 or 2 closed would hand that
 * number to the first file or socket it opens, and then write its stream
 * or its messages into that file (mig-tee once put the forwarded stream
 * into its own checkpoint). So every command first opens /dev/null on
 * each closed one, as OpenSSH and the BSD tools do, and remembers which
 * were closed: a closed stdin is an empty input, a closed stderr loses
 * only messages, but data for a closed stdout would vanish silently, so
 * a command that has data for stdout fails instead (mig_stdout_check).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"

static bool was_closed[3];

static bool fd_closed(int fd)
{
	return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

int mig_stdfds_ensure(bool closed[3])
{
	int rc = 0;

	for (int fd = 0; fd < 3; fd++)
		was_closed[fd] = fd_closed(fd);
	for (int fd = 0; fd < 3; fd++) {
		if (!was_closed[fd])
			continue;
		/* the lowest free number: fd itself, as those below are open */
		int n = open("/dev/null", O_RDWR);
		if (n < 0) {
			rc = -1;
			break;
		}
		if (n != fd) { /* cannot happen, but never leave fd free */
			dup2(n, fd);
			close(n);
		}
	}
	if (rc < 0 && !fd_closed(STDERR_FILENO) && !was_closed[STDERR_FILENO])
		mig_warn("/dev/null: %s", strerror(errno));
	for (int fd = 0; closed && fd < 3; fd++)
		closed[fd] = was_closed[fd];
	return rc;
}

bool mig_stdout_closed(void)
{
	return was_closed[STDOUT_FILENO];
}

int mig_stdout_check(struct mig_err *e)
{
	if (was_closed[STDOUT_FILENO])
		return mig_err_set(e, MIG_EXIT_IO, "stdout: closed");
	return 0;
}

int mig_stdout_finish(void)
{
	struct mig_err e = { 0 };

	if (fflush(stdout) != 0 || ferror(stdout))
		mig_err_set(&e, MIG_EXIT_IO, "stdout: %s", strerror(errno));
	else if (mig_stdout_check(&e) == 0)
		return MIG_EXIT_OK;
	mig_warn("%s", e.msg);
	return e.code;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * no-tmpfile.c - an LD_PRELOAD shim for the tests: open() and openat()
 * with O_TMPFILE fail with EOPNOTSUPP, as they do on a filesystem that
 * has no unnamed files, so that mig-tee's fallback to a named temporary
 * is tested on any machine, without root or a mount. Every other open
 * goes on to libc's openat(). tests/tee.bats builds it:
 *     cc -shared -fPIC -o no-tmpfile.so no-tmpfile.c -ldl
 */
#undef _FORTIFY_SOURCE /* its inline open() would clash with ours */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/types.h>

/* O_TMPFILE includes O_DIRECTORY: all of its bits must be there. */
#define IS_TMPFILE(flags) (((flags) & O_TMPFILE) == O_TMPFILE)
/* The mode argument is passed only when the open may create a file. */
#define NEEDS_MODE(flags) ((flags) & O_CREAT || IS_TMPFILE(flags))

typedef int (*openat_fn)(int, const char *, int, ...);

static int shim_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	static openat_fn next;

	if (IS_TMPFILE(flags)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (!next)
		next = (openat_fn)dlsym(RTLD_NEXT, "openat");
	return next(dirfd, path, flags, mode);
}

/* The four entry points differ only in their names and whether they take
 * a directory: each reads its optional mode and goes to shim_openat(). */
#define SHIM_MODE(flags, mode)                                   \
	do {                                                     \
		va_list ap;                                      \
		va_start(ap, flags);                             \
		if (NEEDS_MODE(flags))                           \
			mode = va_arg(ap, mode_t);               \
		va_end(ap);                                      \
	} while (0)

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	SHIM_MODE(flags, mode);
	return shim_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	SHIM_MODE(flags, mode);
	return shim_openat(dirfd, path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	SHIM_MODE(flags, mode);
	return shim_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	SHIM_MODE(flags, mode);
	return shim_openat(AT_FDCWD, path, flags, mode);
}

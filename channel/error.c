/* SPDX-License-Identifier: BSD-2-Clause */
/* error.c - error values and the program's messages. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"

const char *mig_progname = "mig";
bool mig_verbose;

int mig_err_set(struct mig_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

int mig_err_prefix(struct mig_err *e, const char *fmt, ...)
{
	char prefix[512];
	size_t pl, rl;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	pl = strlen(prefix);
	rl = strlen(e->msg);
	if (pl + rl >= sizeof e->msg)
		rl = sizeof e->msg - 1 - pl; /* keep the context, cut the end */
	memmove(e->msg + pl, e->msg, rl);
	memcpy(e->msg, prefix, pl);
	e->msg[pl + rl] = '\0';
	return -1;
}

/* One message, one write(2) of at most PIPE_BUF bytes: the stages of a
 * pipeline share one stderr, and a message written in pieces can be cut
 * by another stage's (the fault tests saw it). Longer messages are cut. */
void mig_warn(const char *fmt, ...)
{
	char line[PIPE_BUF];
	size_t room = sizeof line - 1; /* the newline's place */
	int n = snprintf(line, room, "%s: ", mig_progname);
	va_list ap;

	if (n < 0)
		return;
	if ((size_t)n < room) {
		va_start(ap, fmt);
		int m = vsnprintf(line + n, room - (size_t)n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n >= room)
		n = (int)room - 1;
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
		;
}

int mig_usage_error(const char *fmt, ...)
{
	char m[PIPE_BUF / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	mig_warn("%s\nTry '%s --help'.", m, mig_progname);
	return MIG_EXIT_USAGE;
}

int mig_print_version(void)
{
	printf("%s (migkit) %s\n", mig_progname, MIG_VERSION_STRING);
	return mig_stdout_finish();
}

int mig_unknown_option(char **argv)
{
	if (optopt && optopt < 256)
		return mig_usage_error("unknown or incomplete option '-%c'", optopt);
	return mig_usage_error("unknown or incomplete option '%s'",
			       argv[optind - 1]);
}

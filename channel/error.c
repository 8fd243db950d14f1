/* error.c - error values and the program's messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mig.h"

const char *mig_progname = "mig";

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

void mig_warn(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", mig_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * escape.c - bytes from a stream, made safe to print.
 *
 * META values, machine and device names come from whoever wrote the
 * stream; printed as they are, ESC [ 2 J clears the reader's terminal and
 * a newline forges a line of output. Everything but printable ASCII is
 * shown as \xNN, and a backslash as \\, so the text is one line of plain
 * characters and says exactly which bytes were there.
 */
#include <stdint.h>
#include <stdlib.h>

#include "mig.h"

char *mig_escape(const void *bytes, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = bytes;
	char *out = len <= (SIZE_MAX - 1) / 4 ? malloc(4 * len + 1) : NULL;
	char *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (p[i] >= 0x20 && p[i] < 0x7f) {
			*o++ = (char)p[i];
		} else {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[p[i] >> 4];
			*o++ = hex[p[i] & 15];
		}
	}
	*o = '\0';
	return out;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/* tap.h - a minimal TAP producer for the C unit tests. */
#ifndef MIG_TAP_H
#define MIG_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                        \
	do {                                                                 \
		int ok_ = !!(cond);                                          \
		printf("%sok %d - ", ok_ ? "" : "not ", ++tap_n);            \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		if (!ok_) {                                                  \
			tap_failed++;                                        \
			printf("#   failed at %s:%d: %s\n", __FILE__,          \
			       __LINE__, #cond);                             \
		}                                                            \
	} while (0)

/* The error message contains the expected words. */
#define ok_msg(e, words, ...)                                                \
	do {                                                                 \
		ok(strstr((e)->msg, (words)) != NULL, __VA_ARGS__);          \
		if (!strstr((e)->msg, (words)))                              \
			printf("#   message was: %s\n", (e)->msg);           \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif

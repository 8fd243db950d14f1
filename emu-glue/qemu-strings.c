/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-strings.c - the strings mig-qemu builds for the shell: a growing
 * string with single quotes, a pipeline's stages named for messages, and
 * the paths of mig-qemu itself and of its siblings. Apart because migrate,
 * checkpoint and restore all build command lines with them.
 */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"

void migqemu_str_add(struct str *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		if (!(b->s = realloc(b->s, b->cap))) {
			mig_warn("out of memory");
			exit(MIG_EXIT_SYS);
		}
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

/* Single-quoted for the shell. */
void migqemu_str_addq(struct str *b, const char *s)
{
	migqemu_str_add(b, "'");
	for (const char *p = s; *p; p++) {
		char c[2] = { *p, 0 };
		migqemu_str_add(b, *p == '\'' ? "'\\''" : c);
	}
	migqemu_str_add(b, "'");
}

/* The stages of a shell pipeline, split at the top-level '|' (not '||'),
 * for messages only: quotes and backslashes are respected. */
size_t migqemu_split_stages(const char *pl, char **out, size_t max)
{
	size_t n = 0;
	const char *start = pl;
	char q = 0;

	for (const char *p = pl;; p++) {
		if (*p && q) {
			if (*p == q)
				q = 0;
			else if (*p == '\\' && q == '"' && p[1])
				p++;
			continue;
		}
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			q = *p;
			continue;
		}
		if (*p == '|' && p[1] == '|') {
			p++;
			continue;
		}
		if (*p == '|' || !*p) {
			const char *a = start, *z = p;
			while (a < z && (*a == ' ' || *a == '\t' || *a == '\n'))
				a++;
			while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\n'))
				z--;
			if (n < max)
				out[n++] = strndup(a, (size_t)(z - a));
			if (!*p)
				break;
			start = p + 1;
		}
	}
	return n;
}

char *migqemu_self_exe(void)
{
	static char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	if (n <= 0)
		return "mig-qemu";
	buf[n] = '\0';
	return buf;
}

/* A sibling command (mig-recv next to mig-qemu), else its name for PATH. */
char *migqemu_sibling(const char *name)
{
	static char buf[PATH_MAX + 32];
	char *dir = strdup(migqemu_self_exe());
	if (!dir)
		return (char *)name; /* found on PATH, then */
	snprintf(buf, sizeof buf, "%s/%s", dirname(dir), name);
	free(dir);
	return access(buf, X_OK) == 0 ? buf : (char *)name;
}

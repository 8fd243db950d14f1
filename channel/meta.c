/* SPDX-License-Identifier: BSD-2-Clause */
/* meta.c - KEY=VALUE metadata, as carried in META frames. */
#include <stdlib.h>
#include <string.h>

#include "mig.h"

static bool key_char(uint8_t c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '.' || c == '_' || c == '-');
}

int mig_meta_parse(const uint8_t *p, size_t len, struct mig_meta *m,
		   struct mig_err *e)
{
	const uint8_t *eq = memchr(p, '=', len);
	size_t klen, vlen;

	memset(m, 0, sizeof *m);
	if (!eq)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "META is not KEY=VALUE (no '=')");
	klen = (size_t)(eq - p);
	vlen = len - klen - 1;
	if (klen == 0 || klen > MIG_META_KEY_MAX)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "META key must be 1 to %d characters",
				   MIG_META_KEY_MAX);
	for (size_t i = 0; i < klen; i++)
		if (!key_char(p[i], i == 0))
			return mig_err_set(e, MIG_EXIT_DATA,
					   "META key has a character outside "
					   "[A-Za-z0-9._-] at position %zu",
					   i + 1);
	if (vlen > MIG_META_VALUE_MAX)
		return mig_err_set(e, MIG_EXIT_DATA,
				   "META value is longer than %u bytes",
				   MIG_META_VALUE_MAX);
	if (memchr(eq + 1, '\0', vlen))
		return mig_err_set(e, MIG_EXIT_DATA,
				   "META value contains a NUL byte");
	m->key = strndup((const char *)p, klen);
	m->value = malloc(vlen + 1);
	if (!m->key || !m->value) {
		mig_meta_clear(m);
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	}
	memcpy(m->value, eq + 1, vlen);
	m->value[vlen] = '\0';
	m->value_len = vlen;
	return 0;
}

void mig_meta_clear(struct mig_meta *m)
{
	free(m->key);
	free(m->value);
	memset(m, 0, sizeof *m);
}

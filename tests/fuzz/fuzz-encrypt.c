/* SPDX-License-Identifier: BSD-2-Clause */
/* fuzz-encrypt.c - mig-decrypt's decoder on arbitrary input, with a fixed
 * test key (a key file made at start, 0600 as the filter requires). The
 * seeds are streams encrypted under it (tests/fuzz/make-seeds). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"
#include "fuzz.h"

extern const struct mig_filter mig_filter_encrypt;
static char key_path[64];

/* The fixed key: bytes 0, 1, 2 ... 31. */
static void make_key_file(void)
{
	uint8_t bytes[MIG_KEY_BYTES];
	struct mig_key k;
	struct mig_err e;
	char text[MIG_KEY_TEXT_MAX];
	FILE *f;

	for (int i = 0; i < MIG_KEY_BYTES; i++)
		bytes[i] = (uint8_t)i;
	snprintf(key_path, sizeof key_path, "/tmp/mig-fuzz-key.%ld", (long)getpid());
	if (mig_crypto_init(&e) < 0 || mig_key_make(&k, MIG_KEY_SYMMETRIC, bytes, &e) < 0)
		abort();
	size_t n = mig_key_text(&k, text, sizeof text);
	mig_key_free(&k);
	umask(077);
	if (!n || !(f = fopen(key_path, "w")) || fwrite(text, 1, n, f) != n || fclose(f))
		abort();
}

static void remove_key_file(void)
{
	unlink(key_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct mig_filter *f = &mig_filter_encrypt;
	int threads = size > 0 && (data[size - 1] & 1) ? 3 : 1;
	struct mig_src *in, *l = NULL;
	struct mig_err e = { 0 };
	void *st;

	if (!key_path[0]) {
		make_key_file();
		atexit(remove_key_file);
	}
	in = fuzz_src(&data, &size);
	st = f->create();
	for (const struct mig_option *o = f->options; st && o && o->long_name; o++)
		if (strcmp(o->long_name, "key") == 0 && f->set_option(st, o, key_path, &e) < 0)
			abort();
	if (st && (l = mig_src_layer(in, f, st, threads, &e)))
		fuzz_drain(l, &e);
	mig_src_free(l);
	if (st)
		f->destroy(st);
	mig_src_free(in);
	return 0;
}

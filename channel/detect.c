/* SPDX-License-Identifier: BSD-2-Clause */
/* detect.c - the layer kinds, and telling what a stream is from its start. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "header.h"
#include "mig.h"

/* The registry of mig-stream(5): kind numbers are never reused. The frame
 * flags are those each kind defines (compress: 0x01, stored), so that
 * readers that only follow the framing (walk.c) refuse the others too. */
static const struct mig_kind kinds[] = {
	{ MIG_KIND_CHECKSUM, "checksum", "mig-checksum -d", 0 },
	{ MIG_KIND_COMPRESS, "compress", "mig-decompress", 0x01 },
	{ MIG_KIND_ENCRYPT, "encrypt", "mig-decrypt", 0 },
	{ MIG_KIND_ENVELOPE, "envelope", "mig-envelope -d", 0 },
	{ MIG_KIND_DELTA, "delta", "mig-delta -d --base BASE", 0 },
};

/*
 * Kinds 128 to 254 are for filters built outside migkit (mig-stream(5)):
 * such a filter names its kind in a file of MIG_KINDS_DIR (or the
 * directory the environment's MIG_KINDS_DIR names), one line
 * "ID NAME PEELER...", so that every decoder and mig-info can say what a
 * layer of it is and what peels it. Read once, on the first such kind met.
 */
#ifndef MIG_KINDS_DIR
#define MIG_KINDS_DIR "/usr/local/share/migkit/kinds.d"
#endif
#define PRIVATE_FIRST 128
#define PRIVATE_LAST 254

static struct mig_kind private_kinds[PRIVATE_LAST - PRIVATE_FIRST + 1];
static char private_text[PRIVATE_LAST - PRIVATE_FIRST + 1][2][64];

static void register_line(const char *line)
{
	unsigned id;
	char name[64], peeler[64];
	int at = 0;

	if (sscanf(line, "%u %63s %n", &id, name, &at) != 2 || !at ||
	    id < PRIVATE_FIRST || id > PRIVATE_LAST)
		return;
	snprintf(peeler, sizeof peeler, "%.*s", (int)strcspn(line + at, "\n"),
		 line + at);
	struct mig_kind *k = &private_kinds[id - PRIVATE_FIRST];
	char (*t)[64] = private_text[id - PRIVATE_FIRST];
	snprintf(t[0], sizeof t[0], "%s", name);
	snprintf(t[1], sizeof t[1], "%s", peeler);
	*k = (struct mig_kind){ (uint8_t)id, t[0], t[1], 0 };
}

static FILE *fopenat(DIR *d, const char *name)
{
	int fd = openat(dirfd(d), name, O_RDONLY | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;

	if (fd >= 0 && !f)
		close(fd);
	return f;
}

static void read_private_kinds(void)
{
	static bool done;
	const char *dir = getenv("MIG_KINDS_DIR");
	DIR *d;
	struct dirent *de;

	if (done)
		return;
	done = true;
	if (!(d = opendir(dir && *dir ? dir : MIG_KINDS_DIR)))
		return;
	while ((de = readdir(d))) {
		char line[256];
		FILE *f;
		if (de->d_name[0] == '.' || !(f = fopenat(d, de->d_name)))
			continue;
		if (fgets(line, sizeof line, f))
			register_line(line);
		fclose(f);
	}
	closedir(d);
}

const struct mig_kind *mig_kind_by_id(uint8_t id)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (kinds[i].id == id)
			return &kinds[i];
	if (id < PRIVATE_FIRST || id > PRIVATE_LAST)
		return NULL;
	read_private_kinds();
	return private_kinds[id - PRIVATE_FIRST].id ? &private_kinds[id - PRIVATE_FIRST]
						    : NULL;
}

static const uint8_t qemu_magic[4] = { 'Q', 'E', 'V', 'M' };
static const uint8_t mig_magic[4] = { MIG_MAGIC_0, MIG_MAGIC_1, MIG_MAGIC_2,
				      MIG_MAGIC_3 };

static void classify(struct mig_detect *d, const uint8_t *p, size_t got)
{
	memcpy(d->head, p, got);
	d->headlen = got;
	if (got == 0)
		d->type = MIG_INPUT_EMPTY;
	else if (got >= 4 && memcmp(p, qemu_magic, 4) == 0)
		d->type = MIG_INPUT_QEMU;
	else if (memcmp(p, mig_magic, got < 4 ? got : 4) == 0) {
		/* also a magic cut short: a truncated header, not garbage */
		d->type = MIG_INPUT_LAYER;
		d->version = got > 4 ? p[4] : 0;
		d->kind = got > 5 ? p[5] : 0;
	} else
		d->type = MIG_INPUT_UNKNOWN;
}

int mig_detect(struct mig_src *s, struct mig_detect *d, struct mig_err *e)
{
	const uint8_t *p;
	size_t got;

	memset(d, 0, sizeof *d);
	if (mig_src_peek(s, sizeof d->head, &p, &got, e) < 0)
		return -1;
	classify(d, p, got);
	return 0;
}

int mig_detect_idle(struct mig_src *s, struct mig_detect *d, int idle_ms,
		    struct mig_err *e)
{
	const uint8_t *p;
	size_t got;

	if (idle_ms <= 0)
		return mig_detect(s, d, e);
	memset(d, 0, sizeof *d);
	if (mig_src_peek_idle(s, sizeof d->head, idle_ms, &p, &got, e) < 0)
		return -1;
	classify(d, p, got);
	/* fewer bytes than a magic that could still become one: a layer's
	 * header is being written (whole headers are, in one write) */
	if (d->type == MIG_INPUT_LAYER && got < 4) {
		if (mig_src_peek(s, 4, &p, &got, e) < 0)
			return -1;
		classify(d, p, got);
	}
	return 0;
}

void mig_detect_describe(const struct mig_detect *d, char *buf, size_t len)
{
	const struct mig_kind *k;
	char hex[3 * sizeof d->head + 1] = "";
	size_t at = 0;

	switch (d->type) {
	case MIG_INPUT_EMPTY:
		snprintf(buf, len, "empty");
		return;
	case MIG_INPUT_QEMU:
		snprintf(buf, len, "a raw QEMU stream");
		return;
	case MIG_INPUT_LAYER:
		if (d->headlen < 6)
			snprintf(buf, len, "a truncated mig layer header");
		else if (d->version != MIG_FORMAT_VERSION)
			snprintf(buf, len, "a mig stream of format version %u",
				 d->version);
		else if ((k = mig_kind_by_id(d->kind)))
			snprintf(buf, len, "%s %s layer", mig_article(k->name),
				 k->name);
		else
			snprintf(buf, len, "a mig layer of unknown kind %u",
				 d->kind);
		return;
	case MIG_INPUT_UNKNOWN:
		for (size_t i = 0; i < d->headlen; i++)
			at += (size_t)snprintf(hex + at, sizeof hex - at,
					       "%s%02x", i ? " " : "",
					       d->head[i]);
		snprintf(buf, len, "not a mig stream (it starts %s)", hex);
		return;
	}
}

/* detect.c - the layer kinds, and telling what a stream is from its start. */
#include <stdio.h>
#include <string.h>

#include "header.h"
#include "mig.h"

/* The registry of mig-stream(5): kind numbers are never reused. The frame
 * flags are those each kind defines (compress: 0x01, stored), so that
 * readers that only follow the framing (walk.c) refuse the others too. */
static const struct mig_kind kinds[] = {
	{ 1, "checksum", "mig-checksum -d", 0 },
	{ 2, "compress", "mig-decompress", 0x01 },
	{ 3, "encrypt", "mig-decrypt", 0 },
	{ 4, "envelope", "mig-envelope -d", 0 },
};

const struct mig_kind *mig_kind_by_id(uint8_t id)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (kinds[i].id == id)
			return &kinds[i];
	return NULL;
}

static const uint8_t qemu_magic[4] = { 'Q', 'E', 'V', 'M' };
static const uint8_t mig_magic[4] = { MIG_MAGIC_0, MIG_MAGIC_1, MIG_MAGIC_2,
				      MIG_MAGIC_3 };

int mig_detect(struct mig_src *s, struct mig_detect *d, struct mig_err *e)
{
	const uint8_t *p;
	size_t got;

	memset(d, 0, sizeof *d);
	if (mig_src_peek(s, sizeof d->head, &p, &got, e) < 0)
		return -1;
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

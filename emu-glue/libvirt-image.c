/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libvirt-image: parse the header of a libvirt save image (see
 * libvirt-image.h for the layout and where it comes from).
 */
#define _POSIX_C_SOURCE 200809L

#include "libvirt-image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const format_names[LV_FORMAT_COUNT] = {
	"raw", "gzip", "bzip2", "xz", "lzop", "zstd", "sparse",
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

bool lv_is_image(const void *p, size_t n)
{
	size_t k = n < LV_MAGIC_LEN ? n : LV_MAGIC_LEN;

	return k > 0 && (memcmp(p, LV_MAGIC_SAVE, k) == 0 ||
			 memcmp(p, LV_MAGIC_PART, k) == 0);
}

const char *lv_format_name(uint32_t format)
{
	return format < LV_FORMAT_COUNT ? format_names[format] : "unknown";
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* The five fields after the magic, in the writer's byte order, which the
 * version tells: libvirt swaps when the version is above its own. */
static int parse_fields(const unsigned char *h, struct lv_image *o, char *err,
			size_t errlen)
{
	uint32_t (*get)(const unsigned char *) = le32;

	if (le32(h + 16) != LV_VERSION && be32(h + 16) == LV_VERSION) {
		get = be32;
		o->swapped = true;
	}
	o->version = get(h + 16);
	o->data_len = get(h + 20);
	o->was_running = get(h + 24);
	o->format = get(h + 28);
	o->cookie_offset = get(h + 32);
	if (o->version != LV_VERSION)
		return fail(err, errlen, "libvirt header: unsupported version "
			    "%u at offset 16 (expected %u)", le32(h + 16),
			    LV_VERSION);
	return 0;
}

int lv_parse_header(const unsigned char *h, struct lv_image *o, char *err,
		    size_t errlen)
{
	memset(o, 0, sizeof *o);
	if (memcmp(h, LV_MAGIC_SAVE, LV_MAGIC_LEN) == 0)
		o->complete = true;
	else if (memcmp(h, LV_MAGIC_PART, LV_MAGIC_LEN) != 0)
		return fail(err, errlen, "not a libvirt save image (its magic "
			    "is neither " LV_MAGIC_SAVE " nor " LV_MAGIC_PART ")");
	if (parse_fields(h, o, err, errlen) < 0)
		return -1;
	if (o->format >= LV_FORMAT_COUNT)
		return fail(err, errlen, "libvirt header: unknown image format "
			    "%u at offset 28", o->format);
	if (o->was_running > 1)
		return fail(err, errlen, "libvirt header: running flag %u at "
			    "offset 24 (expected 0 or 1)", o->was_running);
	if (o->data_len == 0 || o->data_len > LV_DATA_MAX)
		return fail(err, errlen, "libvirt header: data length %u at "
			    "offset 20 (expected 1 to %u bytes of XML, cookie "
			    "and padding)", o->data_len, LV_DATA_MAX);
	if (o->cookie_offset >= o->data_len)
		return fail(err, errlen, "libvirt header: cookie offset %u at "
			    "offset 32 is not inside the %u bytes of data",
			    o->cookie_offset, o->data_len);
	o->stream_offset = LV_HEADER_LEN + (uint64_t)o->data_len;
	return 0;
}

/* A NUL-terminated string at the start of d[0..n): its copy, or NULL
 * with a message naming what (the XML or the cookie). */
static char *copy_string(const unsigned char *d, size_t n, size_t *len,
			 const char *what, uint64_t at, char *err,
			 size_t errlen)
{
	const unsigned char *nul = memchr(d, '\0', n);
	char *s;

	if (!nul) {
		fail(err, errlen, "libvirt header: the %s at offset %llu has no "
		     "terminating NUL within its %zu bytes", what,
		     (unsigned long long)at, n);
		return NULL;
	}
	*len = (size_t)(nul - d);
	if (!(s = malloc(*len + 1))) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(s, d, *len + 1);
	return s;
}

int lv_parse_data(const unsigned char *d, struct lv_image *o, char *err,
		  size_t errlen)
{
	size_t xml_room = o->cookie_offset ? o->cookie_offset : o->data_len;

	o->xml = copy_string(d, xml_room, &o->xml_len, "domain XML",
			     LV_HEADER_LEN, err, errlen);
	if (!o->xml)
		return -1;
	if (o->xml_len == 0)
		return fail(err, errlen, "libvirt header: the domain XML at "
			    "offset %u is empty", LV_HEADER_LEN);
	if (o->cookie_offset) {
		o->cookie = copy_string(d + xml_room, o->data_len - xml_room,
					&o->cookie_len, "cookie",
					LV_HEADER_LEN + (uint64_t)xml_room,
					err, errlen);
		if (!o->cookie)
			return -1;
	}
	return 0;
}

/* Exactly n bytes, or -1: truncated (what names the part) or an error. */
static int read_full(long (*rd)(void *, void *, size_t), void *ctx,
		     unsigned char *buf, size_t n, uint64_t at,
		     const char *what, char *err, size_t errlen)
{
	size_t got = 0;

	while (got < n) {
		errno = 0;
		long k = rd(ctx, buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return fail(err, errlen, "read error at offset %llu: %s",
				    (unsigned long long)(at + got),
				    errno ? strerror(errno) : "unknown error");
		if (k == 0)
			return fail(err, errlen, "truncated: the input ends at "
				    "offset %llu, inside the libvirt %s (%zu "
				    "more bytes expected)",
				    (unsigned long long)(at + got), what,
				    n - got);
		got += (size_t)k;
	}
	return 0;
}

int lv_read(long (*rd)(void *, void *, size_t), void *ctx,
	    struct lv_image *o, char *err, size_t errlen)
{
	unsigned char h[LV_HEADER_LEN];
	unsigned char *d;
	int rc;

	memset(o, 0, sizeof *o);
	if (read_full(rd, ctx, h, sizeof h, 0, "header", err, errlen) < 0 ||
	    lv_parse_header(h, o, err, errlen) < 0)
		return -1;
	if (!(d = malloc(o->data_len)))
		return fail(err, errlen, "out of memory");
	rc = read_full(rd, ctx, d, o->data_len, LV_HEADER_LEN,
		       "domain XML, cookie and padding", err, errlen);
	if (rc == 0)
		rc = lv_parse_data(d, o, err, errlen);
	free(d);
	return rc;
}

void lv_image_free(struct lv_image *img)
{
	if (!img)
		return;
	free(img->xml);
	free(img->cookie);
	memset(img, 0, sizeof *img);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libvirt-image: the header libvirt's QEMU driver writes in front of the
 * QEMU stream of a saved image (virsh save, managedsave, the memory file
 * of an external snapshot).  Layout, as libvirt 9.0 writes and reads it
 * (src/qemu/qemu_saveimage.c, virQEMUSaveHeader; integers in the host's
 * byte order, a reader swaps them when the version looks swapped):
 *
 *   16 bytes  magic "LibvirtQemudPart" while libvirt writes the image,
 *             "LibvirtQemudSave" once it is complete (libvirt re-opens
 *             the file at the end and writes the header again)
 *   u32       version (2)
 *   u32       data_len: XML + cookie + zero padding (64 KiB when saved)
 *   u32       was_running (1: restore starts the guest)
 *   u32       format: 0 raw, 1 gzip, 2 bzip2, 3 xz, 4 lzop (5 zstd and
 *             6 sparse in later libvirts); not raw: what follows is the
 *             output of the program of that name run with -c
 *   u32       cookieOffset (0: no cookie; else where it starts in data)
 *   14 x u32  unused (zero)
 *   data_len  the domain XML (NUL-terminated), the cookie (XML,
 *             NUL-terminated), zeros
 *   then the QEMU stream (or the compressor's output) to the end.
 *
 * The functions here only parse: they never write, and refuse what
 * libvirt itself would refuse on restore (a bad magic or version, an
 * unknown format, an empty or absurd data length).
 */
#ifndef MIGKIT_LIBVIRT_IMAGE_H
#define MIGKIT_LIBVIRT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LV_MAGIC_LEN   16
#define LV_MAGIC_SAVE  "LibvirtQemudSave"
#define LV_MAGIC_PART  "LibvirtQemudPart"
#define LV_HEADER_LEN  92u
#define LV_VERSION     2u
/* XML, cookie and padding must fit the stream reader's 1 MiB buffer;
 * libvirt's own are a few KiB plus 64 KiB of padding. */
#define LV_DATA_MAX    (960u * 1024)

enum lv_format {
	LV_FORMAT_RAW = 0,
	LV_FORMAT_GZIP,
	LV_FORMAT_BZIP2,
	LV_FORMAT_XZ,
	LV_FORMAT_LZOP,
	LV_FORMAT_ZSTD,
	LV_FORMAT_SPARSE,
	LV_FORMAT_COUNT,
};

struct lv_image {
	bool     complete;      /* magic LibvirtQemudSave (else ...Part) */
	bool     swapped;       /* written on a host of the other byte order */
	uint32_t version, data_len, was_running, format, cookie_offset;
	char    *xml;           /* the domain XML, NUL-terminated */
	size_t   xml_len;       /* strlen(xml) */
	char    *cookie;        /* NULL without a cookie */
	size_t   cookie_len;
	uint64_t stream_offset; /* where the QEMU stream starts: 92 + data_len */
};

/* Do the first n bytes of p start like a libvirt image (n >= 16 for a
 * yes; fewer bytes that match a magic's beginning are a maybe: true)? */
bool lv_is_image(const void *p, size_t n);

/* The 92-byte fixed header into *out.  0, or -1 with a message in err. */
int lv_parse_header(const unsigned char *h, struct lv_image *out, char *err,
		    size_t errlen);

/* The data_len bytes after the header (XML, cookie, padding): copies the
 * XML and the cookie.  0, or -1 with a message (out of memory included). */
int lv_parse_data(const unsigned char *d, struct lv_image *out, char *err,
		  size_t errlen);

/* Header and data through a read(2)-like callback (as qs_read_fn), which
 * is left at the first byte of the QEMU stream.  0, or -1 with a message
 * ("truncated: ..." when the input ends inside). */
int lv_read(long (*rd)(void *ctx, void *buf, size_t len), void *ctx,
	    struct lv_image *out, char *err, size_t errlen);

/* "raw", "gzip", ... or "unknown". */
const char *lv_format_name(uint32_t format);

void lv_image_free(struct lv_image *img);

#endif /* MIGKIT_LIBVIRT_IMAGE_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-stream: a one-pass, pull-based reader of QEMU's raw migration
 * stream (savevm format version 3, as written by QEMU 7.2 to 10.2 to
 * "exec:", "fd:" or a file), used by mig-info to describe a stream in the
 * spirit of QEMU's scripts/analyze-migration.py.  What each release adds
 * (SWITCHOVER_START, MULTIFD_FLUSH, mapped-ram, early-setup device state)
 * is read from QEMU's sources; whatever is not understood is refused by
 * name (mig-compact(1), "QEMU versions").
 *
 * Unlike analyze-migration.py it never seeks: it works on a pipe, reads
 * the stream once, in large chunks, and its memory use is bounded
 * (about 1 MiB of read buffer plus a QS_TAIL_MAX ring) whatever the
 * stream length.
 *
 * What is parsed structurally:
 *   - the header (magic, version) and the configuration section
 *     (machine type, and its subsections target-page-bits,
 *     capabilities and uuid);
 *   - every "ram" section (setup with the RAM block list, iterations,
 *     completion), page record by page record, counted per block;
 *   - COMMAND records (PING and, from QEMU 10.0, SWITCHOVER_START; all
 *     others refused) and section footers in between.
 * A stream is complete only in the order QEMU's precopy writes it
 * (migration/savevm.c): the configuration section, the ram setup (START,
 * with its block list), iterations (PART), the ram completion (END, which
 * must leave at least one page sent), then device state (FULL sections),
 * QEMU_VM_EOF and the VMDESCRIPTION trailer.  A QEMU_VM_EOF before device
 * state, device state before the ram END, or no configuration is reported
 * as an error (messages starting "incomplete:" for an early end);
 * another iterable module's START (block migration, dirty bitmaps, VFIO)
 * as unsupported.
 *
 * Device-state sections carry no length, so from the first FULL section
 * that is not "ram" on, the rest of the stream is consumed opaquely; only the
 * last QS_TAIL_MAX bytes are kept, to find the QEMU_VM_EOF byte and the
 * VMDESCRIPTION trailer (0x06, be32 N, N bytes of JSON ending the
 * stream), whose JSON gives the device list.
 */
#ifndef MIGKIT_QEMU_STREAM_H
#define MIGKIT_QEMU_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libvirt-image.h"

#define QS_MAGIC   0x5145564Du          /* "QEVM" */
#define QS_VERSION 3u

/* The VMDESCRIPTION trailer must lie within the last QS_TAIL_MAX bytes. */
#define QS_TAIL_MAX (16u * 1024 * 1024)

/*
 * Pull callback: read up to len bytes into buf.  Return the number of
 * bytes read (> 0), 0 at end of stream, or < 0 on error with errno set
 * (EINTR is retried).  qs_scan asks for large pieces (hundreds of KiB or
 * more); the callback may return fewer bytes than asked, as read(2) does.
 */
typedef long (*qs_read_fn)(void *ctx, void *buf, size_t len);

/* Ready-made callback over a file descriptor: ctx points to an int fd. */
long qs_read_fd(void *ctx, void *buf, size_t len);

struct qs_ramblock {
    char     id[256];          /* RAMBlock idstr, e.g. "mem", "pc.bios" */
    uint64_t size;             /* used_length in bytes */
    uint64_t normal_pages;     /* PAGE records (full page data) */
    uint64_t zero_pages;       /* ZERO records (one fill byte) */
    uint64_t other_pages;      /* XBZRLE and COMPRESS_PAGE records */
};

struct qs_device {             /* one entry of the vmdesc "devices" array */
    char     name[256];        /* section idstr, e.g. "cpu", "0000:00:1f.2/ich9_ahci" */
    uint32_t instance;         /* "instance_id" */
    uint32_t version;          /* "version" */
};

struct qs_info {
    /*
     * A libvirt save image (virsh save, managedsave): libvirt's header, the
     * domain XML and padding before the QEMU stream, read and skipped
     * (libvirt-image.h).  Offsets below then count from the file's start.
     * Only a raw image is read on (another format is the output of an
     * external compressor: an error), and it is complete only if its
     * magic is LibvirtQemudSave.
     */
    bool     has_libvirt;
    struct lv_image libvirt;

    /* header and configuration section */
    uint32_t magic, version;   /* QS_MAGIC, QS_VERSION */
    bool     has_config;       /* a configuration section (0x07) was present */
    char     machine[256];     /* e.g. "pc-q35-7.2"; "" without configuration */
    char     capabilities[256];/* validated capabilities sent in the
                                  configuration, space separated ("" if none) */

    /* ram section (structurally parsed) */
    size_t   nblocks;
    struct qs_ramblock *blocks;   /* from the setup stage's MEM_SIZE list */
    uint64_t ram_total;           /* the MEM_SIZE value (sum of block sizes) */
    uint64_t page_size;           /* target page size used for PAGE records:
                                     4096 unless the configuration says otherwise */
    uint64_t normal_pages, zero_pages, other_pages;  /* totals over all blocks */

    /*
     * Section headers seen in the structurally parsed part of the stream
     * (from the header up to and including the header of the first
     * device-state section).  The device-state sections after that are
     * opaque: see ndevices for their list.
     */
    uint64_t sections_start, sections_part, sections_end, sections_full;
    uint64_t commands;            /* QEMU_VM_COMMAND records */

    /* byte accounting */
    uint64_t bytes;               /* total stream length */
    uint64_t ram_bytes;           /* bytes of ram sections, headers and footers included */
    uint64_t device_bytes;        /* from the first device section to the EOF byte */
    uint64_t device_offset;       /* offset of the first device section (0 if none) */
    uint64_t vmdesc_offset;       /* offset of the 0x06 byte (0 if none) */
    uint64_t vmdesc_bytes;        /* 5 + JSON length (0 if none) */

    /* the ram section as a loader needs it (for mig-compact) */
    uint32_t ram_section_id;      /* section id of the ram START */
    bool     section_footers;     /* sections end with a footer (0x7E + id) */
    uint64_t multifd_flushes;     /* RAM_SAVE_FLAG_MULTIFD_FLUSH records (8.1+) */

    /* end of stream */
    bool     has_eof;             /* QEMU_VM_EOF (0x00) seen where it belongs */
    bool     has_vmdesc;          /* the VMDESCRIPTION trailer was found and parsed */
    char     first_device[256];   /* idstr of the first device section, e.g. "timer" */
    size_t   ndevices;
    struct qs_device *devices;    /* from the vmdesc JSON "devices" */
};

/* Flags for qs_scan. */
enum {
    /*
     * Accept a stream that ends with QEMU_VM_EOF but has no VMDESCRIPTION
     * trailer (machines with suppress-vmdesc).  Without this flag such an
     * ending is reported as truncation, because QEMU 7.2 precopy always
     * sends the trailer and a stream cut right after the EOF byte looks
     * exactly the same.
     */
    QS_ALLOW_NO_VMDESC = 1u << 0,
    /*
     * Accept a RAM section without a single page record: the stream a
     * delta layer carries (mig-delta(1)), whose pages the base holds when
     * none changed.  Without it such a stream carries no RAM: an error.
     */
    QS_ALLOW_NO_PAGES = 1u << 1,
};

/*
 * Read a whole migration stream, or a raw libvirt save image, through
 * rd(ctx, ...) and describe it in *out.  Returns 0 on success; -1 on a malformed, truncated or unreadable
 * stream, with a one-line message naming the byte offset in err (if err
 * is not NULL and errlen > 0): truncation messages start with
 * "truncated:".  On failure *out holds what was parsed before the error
 * (out->bytes then counts the bytes read so far).  Either way, call
 * qs_info_free(out) afterwards.  rd is never called again once it has
 * returned 0 or an error.
 */
int qs_scan(qs_read_fn rd, void *ctx, unsigned flags, struct qs_info *out,
            char *err, size_t errlen);

/*
 * Hooks: qs_scan_hooks reports what it reads, for a program that rebuilds
 * the stream (mig-compact) or looks at every page (mig-info's re-sent
 * page count).  Any hook may be NULL.  A hook returns 0 to go on, or -1
 * to stop the scan, which then fails with the message "stopped: "
 * followed by whatever the hook wrote into hook_err (the hook's ctx may
 * hold more).
 */
enum qs_page_kind {
    QS_PAGE_ZERO = 1,       /* ZERO record: the page is filled with `fill` */
    QS_PAGE_DATA,           /* PAGE record: data holds page_size bytes */
    QS_PAGE_XBZRLE,         /* XBZRLE record: data holds its encoding
                               (xbzrle.h), data_len bytes */
    QS_PAGE_COMPRESS,       /* COMPRESS_PAGE record (zlib; data NULL) */
};

struct qs_page {
    size_t   block;                 /* index into info->blocks */
    uint64_t addr;                  /* offset of the page in its block */
    unsigned kind;                  /* enum qs_page_kind */
    uint8_t  fill;                  /* QS_PAGE_ZERO */
    const unsigned char *data;      /* QS_PAGE_DATA, QS_PAGE_XBZRLE (with a
                                       page hook): valid during the call */
    size_t   data_len;              /* its length */
    uint64_t offset;                /* stream offset of the record */
    uint64_t data_offset;           /* stream offset of data[0] */
    uint64_t record_bytes;          /* the whole record, header included */
};

struct qs_hooks {
    void *ctx;
    /*
     * Every byte of the stream except page records, in order and in
     * pieces (header, configuration, section headers, MEM_SIZE and EOS
     * records, footers, commands, device state, EOF, VMDESCRIPTION).
     */
    int (*bytes)(void *ctx, const unsigned char *p, size_t n);
    /* Each page record, in stream order. */
    int (*page)(void *ctx, const struct qs_info *info, const struct qs_page *pg);
    /*
     * At each item of the stream after the configuration, before its
     * bytes: type is the section type byte (0x01 START, 0x02 PART,
     * 0x03 END, 0x04 FULL, 0x08 COMMAND), command the command number for
     * COMMAND.  Device state comes as one FULL item: what follows it
     * (more sections, EOF, VMDESCRIPTION) is read opaquely.
     */
    int (*item)(void *ctx, unsigned type, uint64_t offset, unsigned command);
    char hook_err[256];
};

/*
 * qs_scan with hooks (h may be NULL: then it is qs_scan).  With a page
 * hook, page records are read whole (PAGE data contiguous, so the page
 * size must be at most 1 MiB).  With or without hooks, a RAM record
 * carries one kind only (QEMU's loader refuses any other), so a page
 * record never also carries MEM_SIZE or EOS and can be dropped alone.
 */
int qs_scan_hooks(qs_read_fn rd, void *ctx, unsigned flags, struct qs_hooks *h,
                  struct qs_info *out, char *err, size_t errlen);

/* Free what qs_scan allocated in *info and reset it; safe to call twice. */
void qs_info_free(struct qs_info *info);

#endif /* MIGKIT_QEMU_STREAM_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-stream: one-pass, pull-based reader of QEMU's migration stream
 * (savevm format v3).  See qemu-stream.h for what is parsed and how.
 *
 * Stream layout handled here (QEMU 7.2 to 10.2 precopy, all integers big endian):
 *
 *   be32 magic "QEVM", be32 version 3
 *   0x07 configuration: be32 len + machine type, then optional
 *        subsections (0x05, u8 len + name, be32 version, fields)
 *   sections:
 *     0x01 START / 0x04 FULL: be32 id, u8 len + idstr, be32 instance, be32 version
 *     0x02 PART  / 0x03 END : be32 id
 *     each followed by its content and a footer 0x7E + be32 id
 *     0x08 COMMAND: be16 command, be16 length, payload
 *   0x00 QEMU_VM_EOF
 *   0x06 VMDESCRIPTION: be32 N, N bytes of JSON (end of stream)
 *
 *   "ram" content: be64 records (page address | flags in the low bits),
 *   see parse_ram().
 */
#define _POSIX_C_SOURCE 200809L

#include "qemu-stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#define RD_BUF_CAP   (1u << 20)    /* structural read buffer */
#define MAX_BLOCKS   4096          /* more RAM blocks than this is absurd */
#define MAX_CAPS     256           /* capabilities in the configuration */
#define DEFAULT_PAGE 4096u         /* TARGET_PAGE_SIZE of x86 and most targets */

/* section types (migration/savevm.c) */
enum {
    VM_EOF        = 0x00,
    SEC_START     = 0x01,
    SEC_PART      = 0x02,
    SEC_END       = 0x03,
    SEC_FULL      = 0x04,
    SEC_SUB       = 0x05,
    SEC_VMDESC    = 0x06,
    SEC_CONFIG    = 0x07,
    SEC_COMMAND   = 0x08,
    SEC_FOOTER    = 0x7E,
};

/* QEMU_VM_COMMAND's sub-commands (migration/savevm.c, enum qemu_vm_cmd;
 * the same numbers in QEMU 7.2 to 10.2, SWITCHOVER_START added in 10.0).
 * A precopy stream through exec: has no return path and no postcopy, so
 * only PING and SWITCHOVER_START pass: the others would have the
 * destination open a return path, or, for POSTCOPY_LISTEN and
 * POSTCOPY_RUN, load the rest in a thread of its own and start the guest
 * before the end was verified; PACKAGED embeds a whole nested stream.
 * SWITCHOVER_START (no payload) is sent by 10.0+ (machine types 10.0 and
 * later: property send-switchover-start) right before the completion
 * stage; the destination only tells its devices (VFIO) the switchover
 * begins: it carries no page and loads nothing. */
#define MIG_CMD_PING             2
#define MIG_CMD_SWITCHOVER_START 11
static const char *const command_names[] = {
    "INVALID", "OPEN_RETURN_PATH", "PING", "POSTCOPY_ADVISE", "POSTCOPY_LISTEN",
    "POSTCOPY_RUN", "POSTCOPY_RAM_DISCARD", "PACKAGED", "ENABLE_COLO",
    "POSTCOPY_RESUME", "RECV_BITMAP", "SWITCHOVER_START",
};

/* RAM record flags (migration/ram.c; migration/ram.h from 10.0 on).  The
 * same values in QEMU 7.2 to 10.2: MULTIFD_FLUSH was added in 8.1,
 * COMPRESS_PAGE removed in 9.1 (the compress capability), FULL unused
 * since 2009; QEMU says no flag can be added above 0x200. */
#define RF_FULL          0x001u   /* obsolete since 2009 */
#define RF_ZERO          0x002u
#define RF_MEM_SIZE      0x004u
#define RF_PAGE          0x008u
#define RF_EOS           0x010u
#define RF_CONTINUE      0x020u
#define RF_XBZRLE        0x040u
#define RF_HOOK          0x080u   /* RDMA */
#define RF_COMPRESS      0x100u   /* QEMU 7.2 to 9.0 */
#define RF_MULTIFD_FLUSH 0x200u   /* QEMU >= 8.1, no payload */
#define RF_PAGE_KINDS    (RF_ZERO | RF_PAGE | RF_XBZRLE | RF_COMPRESS)
#define RF_KNOWN         0x3FFu

#define XBZRLE_ENCODING  0x01

typedef unsigned long long ull;

struct rdr {
    qs_read_fn rd;
    void *ctx;
    unsigned char *buf;
    size_t pos, len;      /* unread bytes are buf[pos..len) */
    uint64_t base;        /* stream offset of buf[0] */
    bool eof;
    char *err;
    size_t errlen;
    struct qs_hooks *h;   /* NULL, or the caller's hooks */
    uint64_t tapped;      /* bytes before this offset went to h->bytes (or were held) */
    bool hold;            /* inside a page record: its bytes are not tapped */
};

struct scan {
    struct rdr r;
    struct qs_info *out;
    unsigned flags;
    bool ignore_shared;     /* x-ignore-shared: block list carries addresses */
    bool have_ram;          /* the ram START (setup) was read */
    bool ram_ended;         /* the ram END (completion stage) was read */
    uint32_t ram_id;
    size_t cur_block;       /* last block named, for CONTINUE records */
    size_t blocks_cap;
};

#define NO_BLOCK ((size_t)-1)

/* ------------------------------------------------------------------ */
/* errors                                                               */

static int fail(struct rdr *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct rdr *r, const char *fmt, ...)
{
    if (r->err && r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static uint64_t off(const struct rdr *r) { return r->base + r->pos; }
static uint64_t end_off(const struct rdr *r) { return r->base + r->len; }

/* The stream ended with `missing` bytes of `what` (which began at `start`) absent. */
static int truncated(struct rdr *r, const char *what, uint64_t start,
                     uint64_t missing)
{
    uint64_t end = end_off(r);
    if (end <= start)
        return fail(r, "truncated: stream ends at offset %llu, where %s was expected",
                    (ull)end, what);
    return fail(r, "truncated: stream ends inside %s at offset %llu "
                "(it starts at offset %llu; %llu more bytes expected)",
                what, (ull)end, (ull)start, (ull)missing);
}

/* ------------------------------------------------------------------ */
/* hooks                                                                */

static int hook_failed(struct rdr *r)
{
    return fail(r, "stopped: %s", r->h->hook_err);
}

static bool tapping(const struct rdr *r) { return r->h && r->h->bytes; }

/* Bytes that are not in the read buffer (the tail's ring) to h->bytes. */
static int tap_raw(struct rdr *r, const unsigned char *p, size_t n)
{
    if (!tapping(r) || !n)
        return 0;
    r->tapped += n;
    return r->h->bytes(r->h->ctx, p, n) ? hook_failed(r) : 0;
}

/*
 * Consumed bytes up to stream offset upto (still in the buffer) to
 * h->bytes, unless they belong to a page record (hold).  Called before
 * the buffer drops bytes, and at each item and page record.
 */
static int tap_to(struct rdr *r, uint64_t upto)
{
    if (!tapping(r) || upto <= r->tapped)
        return 0;
    if (r->hold) {
        r->tapped = upto;
        return 0;
    }
    const unsigned char *p = r->buf + (r->tapped - r->base);
    size_t n = (size_t)(upto - r->tapped);
    r->tapped = upto;
    return r->h->bytes(r->h->ctx, p, n) ? hook_failed(r) : 0;
}

static int item_hook(struct rdr *r, unsigned type, uint64_t at, unsigned cmd)
{
    if (!r->h || !r->h->item)
        return 0;
    if (tap_to(r, at))
        return -1;
    return r->h->item(r->h->ctx, type, at, cmd) ? hook_failed(r) : 0;
}

/* ------------------------------------------------------------------ */
/* buffered reading                                                     */

long qs_read_fd(void *ctx, void *buf, size_t len)
{
    return (long)read(*(int *)ctx, buf, len);
}

/* One call of the callback: > 0 bytes, 0 at EOF, -1 on error (err set). */
static long pull(struct rdr *r, void *dst, size_t len)
{
    if (r->eof)
        return 0;
    for (;;) {
        errno = 0;
        long n = r->rd(r->ctx, dst, len);
        if (n > 0) {
            if ((size_t)n > len)
                return fail(r, "read callback returned %ld bytes for a %zu-byte request",
                            n, len);
            return n;
        }
        if (n == 0) {
            r->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        int e = errno;
        return fail(r, "read error at offset %llu: %s", (ull)end_off(r),
                    e ? strerror(e) : "unknown error");
    }
}

/* Make n (<= RD_BUF_CAP) contiguous bytes available at buf + pos. */
static int fill(struct rdr *r, size_t n, const char *what, uint64_t start)
{
    if (r->len - r->pos >= n)
        return 0;
    if (r->pos) {
        if (tap_to(r, r->base + r->pos))
            return -1;
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->base += r->pos;
        r->len -= r->pos;
        r->pos = 0;
    }
    while (r->len < n) {
        long got = pull(r, r->buf + r->len, RD_BUF_CAP - r->len);
        if (got < 0)
            return -1;
        if (got == 0)
            return truncated(r, what, start, n - r->len);
        r->len += (size_t)got;
    }
    return 0;
}

/* Consume n bytes of any length without keeping them. */
static int skip(struct rdr *r, uint64_t n, const char *what, uint64_t start)
{
    while (n) {
        size_t avail = r->len - r->pos;
        if (!avail) {
            if (tap_to(r, r->base + r->len))
                return -1;
            r->base += r->len;
            r->pos = r->len = 0;
            long got = pull(r, r->buf, RD_BUF_CAP);
            if (got < 0)
                return -1;
            if (got == 0)
                return truncated(r, what, start, n);
            r->len = (size_t)got;
            continue;
        }
        size_t k = avail < n ? avail : (size_t)n;
        r->pos += k;
        n -= k;
    }
    return 0;
}

static uint8_t get8(struct rdr *r) { return r->buf[r->pos++]; }

static uint16_t get16(struct rdr *r)
{
    const unsigned char *p = r->buf + r->pos;
    r->pos += 2;
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get32(struct rdr *r)
{
    uint32_t v = be32(r->buf + r->pos);
    r->pos += 4;
    return v;
}

static uint64_t get64(struct rdr *r)
{
    uint64_t hi = get32(r);
    return hi << 32 | get32(r);
}

/* Copy n raw bytes (already filled) into a NUL-terminated string. */
static void getstr(struct rdr *r, char *dst, size_t n)
{
    memcpy(dst, r->buf + r->pos, n);
    dst[n] = '\0';
    r->pos += n;
}

/* Is every byte of s printable ASCII?  (idstrs and machine types are) */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* configuration section                                                */

/*
 * One capability of the configuration: QEMU 7.2 to 10.2 send only those
 * both ends must agree on (should_validate_capability in
 * migration/savevm.c): x-ignore-shared (4.0+: the block list carries each
 * block's guest address, shared blocks send no page) and mapped-ram
 * (9.0+).  A mapped-ram stream is a file: each RAM block's pages lie at
 * fixed, aligned offsets of the file QEMU seeks to, not in the stream's
 * order, so nothing of it can be read or rebuilt here.  Any other name is
 * one this reader does not know the effect of.
 */
static int check_capability(struct scan *s, const char *cap, uint64_t at)
{
    struct rdr *r = &s->r;
    if (!strcmp(cap, "x-ignore-shared")) {
        s->ignore_shared = true;
        return 0;
    }
    if (!strcmp(cap, "mapped-ram"))
        return fail(r, "unsupported: mapped-ram stream (QEMU 9.0+ capability mapped-ram) "
                    "at offset %llu: its pages are not in the stream but at fixed offsets "
                    "of the file QEMU wrote; load it with QEMU's own file: migration",
                    (ull)at);
    return fail(r, "unsupported: unknown capability '%s' in the configuration at offset "
                "%llu (QEMU 7.2 to 10.2 send only x-ignore-shared and mapped-ram)",
                printable(cap) ? cap : "?", (ull)at);
}

/* configuration/capabilities: be32 count, then u8 len + name each. */
static int parse_capabilities(struct scan *s, uint64_t so)
{
    struct rdr *r = &s->r;
    struct qs_info *o = s->out;

    if (fill(r, 4, "configuration/capabilities", so))
        return -1;
    uint32_t n = get32(r);
    if (n > MAX_CAPS)
        return fail(r, "absurd capability count %u in the configuration at offset %llu",
                    n, (ull)so);
    for (uint32_t i = 0; i < n; i++) {
        char cap[256];
        uint64_t co = off(r);
        if (fill(r, 1, "configuration/capabilities", so))
            return -1;
        uint8_t cl = get8(r);
        if (fill(r, cl, "configuration/capabilities", so))
            return -1;
        getstr(r, cap, cl);
        if (check_capability(s, cap, co))
            return -1;
        size_t used = strlen(o->capabilities);
        snprintf(o->capabilities + used, sizeof o->capabilities - used,
                 "%s%s", used ? " " : "", cap);
    }
    return 0;
}

/* One configuration subsection (0x05, u8 len + name, be32 version,
 * fields): target-page-bits, capabilities or uuid. */
static int parse_config_sub(struct scan *s, uint64_t so)
{
    struct rdr *r = &s->r;
    char name[256];

    if (fill(r, 2, "configuration subsection", so))
        return -1;
    r->pos++;
    uint8_t nl = get8(r);
    if (fill(r, (size_t)nl + 4, "configuration subsection header", so))
        return -1;
    getstr(r, name, nl);
    (void)get32(r);                             /* subsection version */

    if (!strcmp(name, "configuration/target-page-bits")) {
        if (fill(r, 4, "configuration/target-page-bits", so))
            return -1;
        uint32_t bits = get32(r);
        if (bits < 9 || bits > 24)
            return fail(r, "absurd target-page-bits %u in the configuration at offset %llu",
                        bits, (ull)so);
        s->out->page_size = (uint64_t)1 << bits;
        return 0;
    }
    if (!strcmp(name, "configuration/capabilities"))
        return parse_capabilities(s, so);
    if (!strcmp(name, "configuration/uuid")) {
        if (fill(r, 16, "configuration/uuid", so))
            return -1;
        r->pos += 16;
        return 0;
    }
    return fail(r, "unknown configuration subsection '%s' at offset %llu",
                printable(name) ? name : "?", (ull)so);
}

/* 0x07, be32 len + machine type, then subsections. */
static int parse_config(struct scan *s)
{
    struct rdr *r = &s->r;
    struct qs_info *o = s->out;
    uint64_t start = off(r);

    if (fill(r, 5, "configuration section", start))
        return -1;
    r->pos++;                                   /* 0x07 */
    uint32_t len = get32(r);
    if (len == 0 || len >= sizeof o->machine)
        return fail(r, "absurd machine type length %u in the configuration section at offset %llu",
                    len, (ull)start);
    if (fill(r, len, "configuration section (machine type)", start))
        return -1;
    getstr(r, o->machine, len);
    if (!printable(o->machine))
        return fail(r, "machine type in the configuration section at offset %llu is not printable text",
                    (ull)start);
    o->has_config = true;

    /* Subsections follow while the next byte is QEMU_VM_SUBSECTION. */
    for (;;) {
        uint64_t so = off(r);
        if (fill(r, 1, "first section after the configuration", so))
            return -1;
        if (r->buf[r->pos] != SEC_SUB)
            return 0;
        if (parse_config_sub(s, so))
            return -1;
    }
}

/* ------------------------------------------------------------------ */
/* ram section                                                          */

static int add_block(struct scan *s, const char *id, uint64_t size, uint64_t at)
{
    struct qs_info *o = s->out;
    if (o->nblocks >= MAX_BLOCKS)
        return fail(&s->r, "absurd number of RAM blocks (more than %d) at offset %llu",
                    MAX_BLOCKS, (ull)at);
    for (size_t i = 0; i < o->nblocks; i++)
        if (!strcmp(o->blocks[i].id, id))
            return fail(&s->r, "RAM block '%s' listed twice at offset %llu", id, (ull)at);
    if (o->nblocks == s->blocks_cap) {
        size_t cap = s->blocks_cap ? s->blocks_cap * 2 : 16;
        struct qs_ramblock *nb = realloc(o->blocks, cap * sizeof *nb);
        if (!nb)
            return fail(&s->r, "out of memory");
        o->blocks = nb;
        s->blocks_cap = cap;
    }
    struct qs_ramblock *b = &o->blocks[o->nblocks++];
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", id);
    b->size = size;
    return 0;
}

/*
 * At the ram END: a stream whose RAM section ends without a single page
 * record carries no RAM (QEMU's first pass sends every page, an empty one
 * as a ZERO record).  Not every page is required: virtio-mem's unplugged
 * memory and pages a balloon reports free are legitimately never sent.
 */
static int check_ram_sent(struct scan *s, uint64_t at)
{
    const struct qs_info *o = s->out;
    if (s->flags & QS_ALLOW_NO_PAGES)
        return 0;
    for (size_t i = 0; i < o->nblocks; i++)
        if (o->blocks[i].normal_pages || o->blocks[i].zero_pages ||
            o->blocks[i].other_pages)
            return 0;
    return fail(&s->r, "incomplete: the RAM section ends (END at offset %llu) without a "
                "single page: the stream carries no RAM", (ull)at);
}

/* The MEM_SIZE record's block list: u8 len + idstr + be64 size, until
 * the sizes add up to the announced total. */
static int parse_block_list(struct scan *s, uint64_t total, uint64_t rec)
{
    struct rdr *r = &s->r;
    if (s->out->nblocks)
        return fail(r, "second RAM block list (MEM_SIZE) at offset %llu", (ull)rec);
    if (total == 0)
        return fail(r, "empty RAM (MEM_SIZE 0) at offset %llu", (ull)rec);
    s->out->ram_total = total;
    uint64_t left = total;
    while (left) {
        uint64_t bo = off(r);
        char id[256];
        if (fill(r, 1, "RAM block list", bo))
            return -1;
        uint8_t nl = get8(r);
        if (nl == 0)
            return fail(r, "empty RAM block name at offset %llu", (ull)bo);
        if (fill(r, (size_t)nl + 8, "RAM block list", bo))
            return -1;
        getstr(r, id, nl);
        uint64_t size = get64(r);
        if (!printable(id))
            return fail(r, "RAM block name at offset %llu is not printable text", (ull)bo);
        if (size == 0 || size > left)
            return fail(r, "absurd size %llu of RAM block '%s' at offset %llu "
                        "(%llu bytes of MEM_SIZE left)", (ull)size, id, (ull)bo, (ull)left);
        if (s->ignore_shared) {                 /* be64 guest address */
            if (fill(r, 8, "RAM block list", bo))
                return -1;
            r->pos += 8;
        }
        if (add_block(s, id, size, bo))
            return -1;
        left -= size;
    }
    return 0;
}

/* Name of the block a page record refers to (CONTINUE or u8 len + idstr). */
static int record_block(struct scan *s, unsigned flags, uint64_t rec, size_t *bi)
{
    struct rdr *r = &s->r;
    struct qs_info *o = s->out;
    if (flags & RF_CONTINUE) {
        if (s->cur_block == NO_BLOCK)
            return fail(r, "ram record with CONTINUE but no previous block at offset %llu",
                        (ull)rec);
        *bi = s->cur_block;
        return 0;
    }
    char id[256];
    if (fill(r, 1, "ram record block name", rec))
        return -1;
    uint8_t nl = get8(r);
    if (fill(r, nl, "ram record block name", rec))
        return -1;
    getstr(r, id, nl);
    for (size_t i = 0; i < o->nblocks; i++) {
        if (!strcmp(o->blocks[i].id, id)) {
            *bi = s->cur_block = i;
            return 0;
        }
    }
    return fail(r, "unknown RAM block '%s' at offset %llu (not in the setup list)",
                printable(id) ? id : "?", (ull)rec);
}

/* The payload of a ZERO, PAGE, XBZRLE or COMPRESS record (kind), counted
 * for its block. */
static int parse_page(struct scan *s, unsigned kind, unsigned flags,
                      uint64_t addr, uint64_t rec)
{
    struct rdr *r = &s->r;
    const uint64_t psz = s->out->page_size;
    size_t bi = 0;

    if (record_block(s, flags, rec, &bi))
        return -1;
    struct qs_ramblock *b = &s->out->blocks[bi];
    if (addr >= b->size)
        return fail(r, "page address 0x%llx beyond RAM block '%s' (size 0x%llx) at offset %llu",
                    (ull)addr, b->id, (ull)b->size, (ull)rec);
    struct qs_page pg = { .block = bi, .addr = addr, .offset = rec };
    if (kind == RF_ZERO) {
        if (fill(r, 1, "zero page record", rec))
            return -1;
        pg.kind = QS_PAGE_ZERO;
        pg.fill = get8(r);                      /* fill byte, 0 since QEMU 2.x */
        b->zero_pages++;
    } else if (kind == RF_PAGE && r->h && r->h->page) {
        if (psz > RD_BUF_CAP)
            return fail(r, "page size %llu too large to hand pages over whole (at most %u)",
                        (ull)psz, RD_BUF_CAP);
        if (fill(r, psz, "ram page", rec))
            return -1;
        pg.kind = QS_PAGE_DATA;
        pg.data = r->buf + r->pos;
        pg.data_len = psz;
        pg.data_offset = off(r);
        r->pos += psz;
        b->normal_pages++;
    } else if (kind == RF_PAGE) {
        if (skip(r, psz, "ram page", rec))
            return -1;
        b->normal_pages++;
    } else if (kind == RF_XBZRLE) {
        if (fill(r, 3, "XBZRLE page header", rec))
            return -1;
        uint8_t enc = get8(r);
        uint16_t len = get16(r);
        if (enc != XBZRLE_ENCODING || len > psz)
            return fail(r, "bad XBZRLE page header (encoding %u, length %u) at offset %llu",
                        enc, len, (ull)rec);
        if (r->h && r->h->page) {   /* handed over, as a page's data is */
            if (fill(r, len, "XBZRLE page", rec))
                return -1;
            pg.data = r->buf + r->pos;
            pg.data_len = len;
            pg.data_offset = off(r);
            r->pos += len;
        } else if (skip(r, len, "XBZRLE page", rec)) {
            return -1;
        }
        pg.kind = QS_PAGE_XBZRLE;
        b->other_pages++;
    } else {
        if (fill(r, 4, "compressed page header", rec))
            return -1;
        uint32_t len = get32(r);
        if (len == 0 || len > 2 * psz)
            return fail(r, "absurd compressed page length %u at offset %llu",
                        len, (ull)rec);
        if (skip(r, len, "compressed page", rec))
            return -1;
        pg.kind = QS_PAGE_COMPRESS;
        b->other_pages++;
    }
    pg.record_bytes = off(r) - rec;
    if (r->h && r->h->page && r->h->page(r->h->ctx, s->out, &pg))
        return hook_failed(r);
    return 0;
}

/*
 * A page record with hooks: its bytes go to the page hook, not to the
 * bytes hook, so a rebuilt stream can leave it out or move it (a record
 * is one kind only: record_kind).
 */
static int hooked_page(struct scan *s, unsigned kind, unsigned flags,
                       uint64_t addr, uint64_t rec)
{
    struct rdr *r = &s->r;
    if (tap_to(r, rec))
        return -1;
    r->hold = true;
    int rc = parse_page(s, kind, flags, addr, rec);
    r->hold = false;
    if (rc)
        return -1;
    r->tapped = off(r);
    return 0;
}

/* "ZERO|EOS" for flags 0x12, into buf (for messages). */
static void flag_names(unsigned flags, char *buf, size_t n)
{
    static const char *const names[] = {
        "FULL", "ZERO", "MEM_SIZE", "PAGE", "EOS", "CONTINUE", "XBZRLE",
        "HOOK", "COMPRESS_PAGE", "MULTIFD_FLUSH",
    };
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        if (flags & (1u << i) && used < n)
            used += (size_t)snprintf(buf + used, n - used, "%s%s",
                                     used ? "|" : "", names[i]);
}

/*
 * The flags of one record as QEMU's loader reads them (ram_load_precopy,
 * the same in 7.2 to 10.2): exactly one kind per record, CONTINUE only
 * on a page; every other combination it refuses ("Unknown combination of
 * migration flags"), so it is refused here too.  *kind: the one flag.
 */
static int record_kind(struct rdr *r, unsigned flags, uint64_t rec, unsigned *kind)
{
    char names[96];
    if (flags & RF_HOOK)
        return fail(r, "unsupported ram flag 0x80 (RAM_SAVE_FLAG_HOOK, RDMA) at offset %llu",
                    (ull)rec);
    if (flags & RF_FULL)
        return fail(r, "unsupported ram flag 0x01 (obsolete RAM_SAVE_FLAG_FULL) at offset %llu",
                    (ull)rec);
    if (flags & ~RF_KNOWN)
        return fail(r, "unknown ram flags 0x%x at offset %llu", flags & ~RF_KNOWN, (ull)rec);
    unsigned k = flags & ~RF_CONTINUE;
    if (!k && flags)
        return fail(r, "ram flag CONTINUE without a page at offset %llu", (ull)rec);
    if (!k)
        return fail(r, "ram record without a flag at offset %llu (QEMU's loader refuses it)",
                    (ull)rec);
    flag_names(flags, names, sizeof names);
    if (k & (k - 1))
        return fail(r, "ram record with flags 0x%x (%s) at offset %llu: QEMU writes one "
                    "kind of record per header and its loader refuses this combination",
                    flags, names, (ull)rec);
    if ((flags & RF_CONTINUE) && !(k & RF_PAGE_KINDS))
        return fail(r, "ram flag CONTINUE without a page at offset %llu (flags 0x%x, %s)",
                    (ull)rec, flags, names);
    *kind = k;
    return 0;
}

/*
 * Records until EOS.  Each starts with be64 (address | flags), flags in
 * the bits below the page size, one kind per record:
 *   MEM_SIZE  total RAM size; the block list follows
 *   ZERO      [block] + one fill byte
 *   PAGE      [block] + page_size bytes
 *   XBZRLE    [block] + u8 encoding (1) + be16 len + len bytes
 *   COMPRESS  [block] + be32 len + len bytes (zlib; QEMU 7.2 to 9.0)
 *   MULTIFD_FLUSH (8.1+): no payload; the multifd channels synchronise
 *             here: this stream is the main channel and the pages went
 *             on the others (counted; compaction refuses it)
 *   EOS       end of this section's ram data
 * where [block] is nothing with CONTINUE, else u8 len + block idstr.
 */
static int parse_ram(struct scan *s)
{
    struct rdr *r = &s->r;
    const uint64_t psz = s->out->page_size;

    for (;;) {
        uint64_t rec = off(r);
        if (fill(r, 8, "ram record header", rec))
            return -1;
        uint64_t v = get64(r);
        unsigned flags = (unsigned)(v & (psz - 1));
        uint64_t addr = v & ~(psz - 1);
        unsigned kind = 0;

        if (record_kind(r, flags, rec, &kind))
            return -1;
        switch (kind) {
        case RF_EOS:
            return 0;
        case RF_MEM_SIZE:
            if (parse_block_list(s, addr, rec))
                return -1;
            break;
        case RF_MULTIFD_FLUSH:
            s->out->multifd_flushes++;
            break;
        default:                                /* one of RF_PAGE_KINDS */
            if (r->h ? hooked_page(s, kind, flags, addr, rec)
                     : parse_page(s, kind, flags, addr, rec))
                return -1;
        }
    }
}

/* Optional section footer: 0x7E + be32 id of the section just read. */
static int parse_footer(struct scan *s, uint32_t id)
{
    struct rdr *r = &s->r;
    uint64_t fo = off(r);
    if (fill(r, 1, "section footer or next section", fo))
        return -1;
    if (r->buf[r->pos] != SEC_FOOTER)
        return 0;                   /* machine types before 2.4 send none */
    if (fill(r, 5, "section footer", fo))
        return -1;
    r->pos++;
    uint32_t fid = get32(r);
    if (fid != id)
        return fail(r, "section footer for section %u at offset %llu, expected section %u",
                    fid, (ull)fo, id);
    s->out->section_footers = true;
    return 0;
}

/* ------------------------------------------------------------------ */
/* opaque tail: device state, EOF, VMDESCRIPTION                        */

static int rotate_left(unsigned char *a, size_t n, size_t k)
{
    if (k == 0 || k == n)
        return 0;
    if (k <= n / 2) {
        unsigned char *t = malloc(k);
        if (!t)
            return -1;
        memcpy(t, a, k);
        memmove(a, a + k, n - k);
        memcpy(a + n - k, t, k);
        free(t);
    } else {
        unsigned char *t = malloc(n - k);
        if (!t)
            return -1;
        memcpy(t, a + k, n - k);
        memmove(a + (n - k), a, k);
        memcpy(a, t, n - k);
        free(t);
    }
    return 0;
}

static int parse_vmdesc(struct scan *s, const unsigned char *json, size_t n, uint64_t at)
{
    struct qs_info *o = s->out;
    json_error_t je;
    json_t *root = json_loadb((const char *)json, n, 0, &je);
    if (!root)
        return fail(&s->r, "VMDESCRIPTION JSON at offset %llu does not parse: %s (JSON line %d)",
                    (ull)at, je.text, je.line);
    int rc = -1;
    json_t *devs = json_object_get(root, "devices");
    if (!json_is_object(root) || !json_is_array(devs)) {
        fail(&s->r, "VMDESCRIPTION JSON at offset %llu has no \"devices\" array", (ull)at);
        goto out;
    }
    json_t *ps = json_object_get(root, "page_size");
    if (json_is_integer(ps)) {
        json_int_t p = json_integer_value(ps);
        if (p > 0 && (uint64_t)p != o->page_size) {
            if (o->nblocks) {
                fail(&s->r, "page size mismatch: ram records parsed with %llu-byte pages, "
                     "but the VMDESCRIPTION says %lld", (ull)o->page_size, (long long)p);
                goto out;
            }
            o->page_size = (uint64_t)p;
        }
    }
    size_t nd = json_array_size(devs);
    if (nd) {
        o->devices = calloc(nd, sizeof *o->devices);
        if (!o->devices) {
            fail(&s->r, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(devs, i);
        const char *name = json_string_value(json_object_get(d, "name"));
        if (!name) {
            fail(&s->r, "VMDESCRIPTION JSON at offset %llu: device %zu has no name", (ull)at, i);
            goto out;
        }
        struct qs_device *qd = &o->devices[o->ndevices++];
        snprintf(qd->name, sizeof qd->name, "%s", name);
        qd->instance = (uint32_t)json_integer_value(json_object_get(d, "instance_id"));
        qd->version = (uint32_t)json_integer_value(json_object_get(d, "version"));
    }
    o->has_vmdesc = true;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The stream's last bytes, kept while the rest is consumed opaquely. */
struct tail {
    unsigned char *ring;   /* the last len bytes, in order once read */
    size_t len;
    uint64_t total;        /* the stream's length */
    bool wrapped;          /* more than QS_TAIL_MAX bytes were consumed */
};

/* Consume the rest of the stream, keeping its last QS_TAIL_MAX bytes. */
static int read_tail(struct scan *s, struct tail *t)
{
    struct rdr *r = &s->r;
    const size_t cap = QS_TAIL_MAX;

    if (!(t->ring = malloc(cap)))
        return fail(r, "out of memory");
    size_t w = r->len - r->pos;                 /* leftover of the read buffer */
    memcpy(t->ring, r->buf + r->pos, w);
    t->total = end_off(r);
    if (tap_to(r, off(r)) || tap_raw(r, t->ring, w))
        return -1;
    for (;;) {
        if (w == cap) {
            w = 0;
            t->wrapped = true;
        }
        r->base = t->total;                     /* for messages */
        r->pos = r->len = 0;
        long got = pull(r, t->ring + w, cap - w);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        if (tap_raw(r, t->ring + w, (size_t)got))
            return -1;
        w += (size_t)got;
        t->total += (uint64_t)got;
    }
    r->base = t->total;
    s->out->bytes = t->total;
    t->len = t->wrapped ? cap : w;
    if (t->wrapped && rotate_left(t->ring, cap, w))
        return fail(r, "out of memory");
    return 0;
}

/* A trailer cut short: QEMU_VM_EOF, then a VMDESCRIPTION header whose
 * length (len; 0 if the cut is inside it) runs past the end. */
struct cut_trailer {
    bool found;
    uint64_t at, len;
};

/*
 * Scan backwards for 0x06 + be32 N with exactly N bytes left, '{' first:
 * true with *at its index in the tail; else false, with *cut set if a
 * trailer seems cut short.
 */
static bool find_vmdesc(const struct tail *t, size_t *at, struct cut_trailer *cut)
{
    const unsigned char *T = t->ring;
    const size_t L = t->len;
    const uint64_t tbase = t->total - L;        /* stream offset of T[0] */

    for (size_t i = L; i-- > 0;) {
        if (T[i] != SEC_VMDESC)
            continue;
        bool after_eof = i > 0 && T[i - 1] == VM_EOF;
        if (L - i < 6) {
            if (after_eof && !cut->found)       /* cut inside the be32 length */
                *cut = (struct cut_trailer){ true, tbase + i, 0 };
            continue;
        }
        uint32_t n = be32(T + i + 1);
        if (T[i + 5] != '{')
            continue;
        if ((uint64_t)n != L - i - 5) {
            if (n > L - i - 5 && after_eof && !cut->found)  /* cut inside the JSON */
                *cut = (struct cut_trailer){ true, tbase + i, n };
            continue;
        }
        *at = i;
        return true;
    }
    return false;
}

/* No whole trailer: a cut one, the end of a suppress-vmdesc machine's
 * stream (QS_ALLOW_NO_VMDESC), or a cut inside device state. */
static int no_vmdesc(struct scan *s, const struct tail *t,
                     const struct cut_trailer *cut, uint64_t dev_start)
{
    struct rdr *r = &s->r;
    const unsigned char *T = t->ring;
    const size_t L = t->len;
    const uint64_t total = t->total;

    if (cut->found && cut->len)
        return fail(r, "truncated: stream ends inside the VMDESCRIPTION JSON at offset %llu "
                    "(%llu bytes announced at offset %llu, %llu present)",
                    (ull)total, (ull)cut->len, (ull)cut->at, (ull)(total - cut->at - 5));
    if (cut->found)
        return fail(r, "truncated: stream ends inside the VMDESCRIPTION header at offset %llu "
                    "(it starts at offset %llu)", (ull)total, (ull)cut->at);

    /* Does the stream end with EOF right after a section? */
    bool eof_end = L >= 1 && T[L - 1] == VM_EOF &&
                   L >= 6 && T[L - 6] == SEC_FOOTER;
    if (eof_end && (s->flags & QS_ALLOW_NO_VMDESC)) {
        s->out->has_eof = true;
        s->out->device_bytes = total - 1 - dev_start;
        return 0;
    }
    if (eof_end)
        return fail(r, "truncated: stream ends at offset %llu right after QEMU_VM_EOF, without the "
                    "VMDESCRIPTION trailer that QEMU sends unless the machine suppresses it",
                    (ull)total);
    return fail(r, "truncated: stream ends inside device state at offset %llu "
                "(no QEMU_VM_EOF and VMDESCRIPTION trailer found%s)", (ull)total,
                t->wrapped ? " in the last 16 MiB" : "");
}

/*
 * Consume the rest of the stream opaquely, keeping its last QS_TAIL_MAX
 * bytes, then find "0x00 0x06 be32(N) {...N bytes" ending the stream.
 * `dev_start` is the offset of the first device section.
 */
static int scan_tail(struct scan *s, uint64_t dev_start)
{
    struct qs_info *o = s->out;
    struct tail t = { 0 };
    struct cut_trailer cut = { 0 };
    size_t i;
    int rc = -1;

    if (read_tail(s, &t))
        goto out;
    if (!find_vmdesc(&t, &i, &cut)) {
        rc = no_vmdesc(s, &t, &cut, dev_start);
        goto out;
    }
    uint64_t at = t.total - t.len + i;
    if (i == 0 || t.ring[i - 1] != VM_EOF) {
        fail(&s->r, "VMDESCRIPTION at offset %llu is not preceded by QEMU_VM_EOF", (ull)at);
        goto out;
    }
    uint32_t n = be32(t.ring + i + 1);
    o->has_eof = true;
    o->vmdesc_offset = at;
    o->vmdesc_bytes = 5 + (uint64_t)n;
    o->device_bytes = at - 1 - dev_start;
    rc = parse_vmdesc(s, t.ring + i + 5, n, at);
out:
    free(t.ring);
    return rc;
}

/* ------------------------------------------------------------------ */
/* top level                                                            */

/*
 * QEMU's precopy writes (migration/savevm.c): the header, the
 * configuration, the setup (a START section per iterable handler: here
 * "ram", whose setup lists the RAM blocks), iterations (PART), the
 * completion (END), then the state of every other device (FULL
 * sections), QEMU_VM_EOF and the VMDESCRIPTION trailer.  A stream is
 * complete only in that order; these name what is missing where it is
 * not.
 */
static int early_eof(struct scan *s, uint64_t at)
{
    if (!s->have_ram)
        return fail(&s->r, "incomplete: QEMU_VM_EOF at offset %llu before any RAM section: "
                    "the stream carries no RAM", (ull)at);
    if (!s->ram_ended)
        return fail(&s->r, "incomplete: QEMU_VM_EOF at offset %llu before the END of the "
                    "RAM section (its completion stage)", (ull)at);
    return fail(&s->r, "incomplete: QEMU_VM_EOF at offset %llu with no device state "
                "before it", (ull)at);
}

/*
 * Device state QEMU 8.0+ saves in the setup, before any page (a vmsd with
 * early_setup; up to 10.2 only virtio-mem's): like every device section
 * it carries no length, so the RAM records after it cannot be found.
 */
static int early_setup_state(struct scan *s, const char *name, uint64_t so)
{
    if (s->ram_ended || strcmp(name, "virtio-mem-device-early"))
        return 0;
    return fail(&s->r, "unsupported: early-setup device state (section '%s', virtio-mem, "
                "QEMU 8.0+) at offset %llu: device sections carry no length, so the RAM "
                "records after it cannot be read", name, (ull)so);
}

/* The first FULL section that is not ram: device state, opaque from here. */
static int device_state(struct scan *s, const char *name, uint64_t so)
{
    struct qs_info *o = s->out;
    if (early_setup_state(s, name, so))
        return -1;
    if (!s->have_ram)
        return fail(&s->r, "incomplete: device state (section '%s') at offset %llu before "
                    "any RAM section: the stream carries no RAM", name, (ull)so);
    if (!s->ram_ended)
        return fail(&s->r, "incomplete: device state (section '%s') at offset %llu before "
                    "the END of the RAM section (its completion stage)", name, (ull)so);
    snprintf(o->first_device, sizeof o->first_device, "%s", name);
    o->device_offset = so;
    return scan_tail(s, so);
}

/* START or FULL: the ram setup, or the first device's state. */
static int parse_named_section(struct scan *s, uint8_t t, uint64_t so)
{
    struct rdr *r = &s->r;
    struct qs_info *o = s->out;

    if (fill(r, 6, "section header", so))
        return -1;
    r->pos++;
    uint32_t id = get32(r);
    uint8_t nl = get8(r);
    char name[256];
    if (fill(r, (size_t)nl + 8, "section header", so))
        return -1;
    getstr(r, name, nl);
    uint32_t inst = get32(r);
    uint32_t ver = get32(r);
    if (nl == 0 || !printable(name))
        return fail(r, "bad section name in section header at offset %llu", (ull)so);
    if (t == SEC_START)
        o->sections_start++;
    else
        o->sections_full++;
    bool ram = !strcmp(name, "ram") && inst == 0;
    if (t == SEC_FULL && !ram)
        return device_state(s, name, so);
    if (!ram)
        return fail(r, "unsupported: iterable section '%s' at offset %llu (block migration, "
                    "dirty bitmaps or VFIO); only \"ram\" is read", name, (ull)so);
    if (t == SEC_FULL || s->have_ram)
        return fail(r, "unexpected %s section for \"ram\" at offset %llu",
                    t == SEC_FULL ? "FULL" : "second START", (ull)so);
    if (ver != 4)
        return fail(r, "unsupported \"ram\" section version %u at offset %llu (expected 4)",
                    ver, (ull)so);
    s->have_ram = true;
    s->ram_id = id;
    o->ram_section_id = id;
    if (parse_ram(s) || parse_footer(s, id))
        return -1;
    if (!o->nblocks)
        return fail(r, "the ram setup (START section at offset %llu) lists no RAM blocks",
                    (ull)so);
    o->ram_bytes += off(r) - so;
    return 0;
}

/* PART or END of the ram section: iterations, then its completion. */
static int parse_ram_section(struct scan *s, uint8_t t, uint64_t so)
{
    struct rdr *r = &s->r;
    struct qs_info *o = s->out;
    const char *kind = t == SEC_PART ? "PART" : "END";

    if (fill(r, 5, "section header", so))
        return -1;
    r->pos++;
    uint32_t id = get32(r);
    if (!s->have_ram || id != s->ram_id)
        return fail(r, "%s section for unknown section id %u at offset %llu",
                    kind, id, (ull)so);
    if (s->ram_ended)
        return fail(r, "ram %s section at offset %llu after the ram END section",
                    kind, (ull)so);
    if (t == SEC_PART)
        o->sections_part++;
    else
        o->sections_end++;
    if (parse_ram(s) || parse_footer(s, id))
        return -1;
    o->ram_bytes += off(r) - so;
    if (t == SEC_END) {
        s->ram_ended = true;
        return check_ram_sent(s, so);
    }
    return 0;
}

/* COMMAND: be16 number, be16 length, payload.  Only PING (be32 payload)
 * and SWITCHOVER_START (none) pass, each with the length QEMU's loader
 * insists on (mig_cmd_args in migration/savevm.c). */
static int parse_command(struct scan *s, uint64_t so)
{
    struct rdr *r = &s->r;
    if (fill(r, 5, "command", so))
        return -1;
    r->pos++;
    uint16_t cmd = get16(r);
    uint16_t len = get16(r);
    if (cmd != MIG_CMD_PING && cmd != MIG_CMD_SWITCHOVER_START) {
        if (cmd >= sizeof command_names / sizeof *command_names)
            return fail(r, "unknown command %u at offset %llu", cmd, (ull)so);
        return fail(r, "unsupported command %s (%u) at offset %llu: only precopy "
                    "streams without a return path are carried",
                    command_names[cmd], cmd, (ull)so);
    }
    unsigned want = cmd == MIG_CMD_PING ? 4 : 0;
    if (len != want)
        return fail(r, "command %s (%u) at offset %llu with length %u: QEMU's loader "
                    "takes only %u", command_names[cmd], cmd, (ull)so, len, want);
    if (item_hook(r, SEC_COMMAND, so, cmd))
        return -1;
    if (skip(r, len, "command", so))
        return -1;
    s->out->commands++;
    return 0;
}

/*
 * libvirt's header, domain XML and padding in front of the QEMU stream of
 * a saved image: parsed, kept in out->libvirt and skipped (their bytes
 * still go to the bytes hook, so a rebuilt image keeps them as they were).
 */
static int parse_libvirt(struct scan *s)
{
    struct rdr *r = &s->r;
    struct lv_image *lv = &s->out->libvirt;

    if (fill(r, LV_HEADER_LEN, "the libvirt header", 0))
        return -1;
    s->out->has_libvirt = true;
    if (lv_parse_header(r->buf + r->pos, lv, r->err, r->errlen))
        return -1;
    r->pos += LV_HEADER_LEN;
    if (fill(r, lv->data_len, "the libvirt domain XML, cookie and padding",
             LV_HEADER_LEN) ||
        lv_parse_data(r->buf + r->pos, lv, r->err, r->errlen))
        return -1;
    r->pos += lv->data_len;
    if (lv->format != LV_FORMAT_RAW)
        return fail(r, "libvirt image of format %s (%u): what follows its header "
                    "at offset %llu is the output of the program '%s', not a QEMU "
                    "stream this reader can verify", lv_format_name(lv->format),
                    lv->format, (ull)lv->stream_offset, lv_format_name(lv->format));
    return 0;
}

static int parse_header(struct scan *s)
{
    struct rdr *r = &s->r;
    struct qs_info *o = s->out;

    if (fill(r, 1, "the stream header", 0))
        return -1;
    if (lv_is_image(r->buf + r->pos, 1) && parse_libvirt(s))
        return -1;
    uint64_t so = off(r);
    if (fill(r, 8, "the stream header", so))
        return -1;
    o->magic = get32(r);
    if (o->magic != QS_MAGIC)
        return fail(r, "bad magic 0x%08x at offset %llu (expected 0x%08x \"QEVM\"): "
                    "not a QEMU migration stream", o->magic, (ull)so, QS_MAGIC);
    o->version = get32(r);
    if (o->version != QS_VERSION)
        return fail(r, "unsupported stream version %u at offset %llu (expected %u)",
                    o->version, (ull)so + 4, QS_VERSION);
    if (fill(r, 1, "configuration section", so + 8))
        return -1;
    if (r->buf[r->pos] != SEC_CONFIG)
        return fail(r, "no configuration section at offset %llu (found byte 0x%02x): "
                    "QEMU sends one, naming the machine type, before any section",
                    (ull)so + 8, r->buf[r->pos]);
    return parse_config(s);
}

/* A libvirt image whose QEMU stream is whole is complete only once libvirt
 * re-wrote its header with the final magic. */
static int libvirt_finished(struct scan *s)
{
    if (!s->out->has_libvirt || s->out->libvirt.complete)
        return 0;
    return fail(&s->r, "incomplete: the libvirt header says " LV_MAGIC_PART
                ": libvirt had not finished this image (it writes "
                LV_MAGIC_SAVE " last, after the QEMU stream)");
}

/* Returns 0 once the tail (device state, EOF, VMDESCRIPTION) is verified. */
static int parse_stream(struct scan *s)
{
    struct rdr *r = &s->r;

    if (parse_header(s))
        return -1;
    for (;;) {
        uint64_t so = off(r);
        if (fill(r, 1, "a section or QEMU_VM_EOF", so))
            return -1;
        uint8_t t = r->buf[r->pos];
        int rc;
        if (t >= SEC_START && t <= SEC_FULL && item_hook(r, t, so, 0))
            return -1;
        switch (t) {
        case SEC_START:
        case SEC_FULL:
            rc = parse_named_section(s, t, so);
            if (rc || s->out->device_offset)
                return rc;              /* the tail was read, or an error */
            break;
        case SEC_PART:
        case SEC_END:
            if (parse_ram_section(s, t, so))
                return -1;
            break;
        case SEC_COMMAND:
            if (parse_command(s, so))
                return -1;
            break;
        case VM_EOF:
            return early_eof(s, so);
        case SEC_CONFIG:
            return fail(r, "unexpected second configuration section at offset %llu", (ull)so);
        case SEC_VMDESC:
            return fail(r, "VMDESCRIPTION at offset %llu without a preceding QEMU_VM_EOF", (ull)so);
        case SEC_FOOTER:
            return fail(r, "section footer at offset %llu outside a section", (ull)so);
        default:
            return fail(r, "unknown section type 0x%02x at offset %llu", t, (ull)so);
        }
    }
}

int qs_scan(qs_read_fn rd, void *ctx, unsigned flags, struct qs_info *out,
            char *err, size_t errlen)
{
    return qs_scan_hooks(rd, ctx, flags, NULL, out, err, errlen);
}

int qs_scan_hooks(qs_read_fn rd, void *ctx, unsigned flags, struct qs_hooks *h,
                  struct qs_info *out, char *err, size_t errlen)
{
    struct scan s;
    memset(&s, 0, sizeof s);
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    s.r.rd = rd;
    s.r.ctx = ctx;
    s.r.err = err;
    s.r.errlen = errlen;
    s.out = out;
    s.flags = flags;
    s.r.h = h;
    s.cur_block = NO_BLOCK;
    out->page_size = DEFAULT_PAGE;

    if (!rd)
        return fail(&s.r, "no read function");
    s.r.buf = malloc(RD_BUF_CAP);
    if (!s.r.buf)
        return fail(&s.r, "out of memory");

    int rc = parse_stream(&s);
    if (rc == 0)
        rc = libvirt_finished(&s);
    if (!out->bytes)
        out->bytes = end_off(&s.r);
    for (size_t i = 0; i < out->nblocks; i++) {
        out->normal_pages += out->blocks[i].normal_pages;
        out->zero_pages += out->blocks[i].zero_pages;
        out->other_pages += out->blocks[i].other_pages;
    }
    free(s.r.buf);
    return rc;
}

void qs_info_free(struct qs_info *info)
{
    if (!info)
        return;
    free(info->blocks);
    free(info->devices);
    lv_image_free(&info->libvirt);
    memset(info, 0, sizeof *info);
}

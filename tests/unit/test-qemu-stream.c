/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit test of emu-glue/qemu-stream.c against a real QEMU migration
 * stream (argv[1]), e.g. made from a paused q35 VM migrated once with
 * `migrate exec:cat > FILE`.  TAP-style output; exit status 1 on any
 * failure, 2 on a usage or setup error.
 *
 *   gcc -std=c11 -Wall -Wextra -O2 -I emu-glue emu-glue/qemu-stream.c \
 *       tests/unit/test-qemu-stream.c $(pkg-config --cflags --libs jansson)
 *   ./a.out /path/to/stream
 */
#define _POSIX_C_SOURCE 200809L

#include "qemu-stream.h"
#include "tap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long long ull;

/* ------------------------------------------------------------------ */
/* A reader over segments of memory, returning pieces of chosen sizes. */

struct seg { const unsigned char *p; size_t len; };

struct mreader {
    struct seg segs[4];
    size_t nsegs, si, so;         /* current segment and offset in it */
    const size_t *pieces;         /* piece sizes, cycled; NULL: as asked */
    size_t npieces, k;
    size_t calls;
};

static long mread(void *ctx, void *buf, size_t len)
{
    struct mreader *m = ctx;
    m->calls++;
    while (m->si < m->nsegs && m->so == m->segs[m->si].len) {
        m->si++;
        m->so = 0;
    }
    if (m->si == m->nsegs)
        return 0;
    size_t n = m->segs[m->si].len - m->so;
    if (n > len)
        n = len;
    if (m->pieces) {
        size_t want = m->pieces[m->k++ % m->npieces];
        if (n > want)
            n = want;
    }
    memcpy(buf, m->segs[m->si].p + m->so, n);
    m->so += n;
    return (long)n;
}

static void mr_init(struct mreader *m, const size_t *pieces, size_t npieces)
{
    memset(m, 0, sizeof *m);
    m->pieces = pieces;
    m->npieces = npieces;
}

static void mr_add(struct mreader *m, const void *p, size_t len)
{
    m->segs[m->nsegs].p = p;
    m->segs[m->nsegs].len = len;
    m->nsegs++;
}

/* A reader that repeats one filler block `count` times (synthetic device state). */
struct filler { const unsigned char *blk; size_t blen; uint64_t left; };

struct chain {                   /* memory head, filler, memory tail */
    struct mreader head, tail;
    struct filler fill;
    int stage;
};

static long chain_read(void *ctx, void *buf, size_t len)
{
    struct chain *c = ctx;
    long n;
    if (c->stage == 0) {
        if ((n = mread(&c->head, buf, len)) != 0)
            return n;
        c->stage = 1;
    }
    if (c->stage == 1) {
        if (c->fill.left) {
            size_t k = len < c->fill.blen ? len : c->fill.blen;
            if (k > c->fill.left)
                k = (size_t)c->fill.left;
            memcpy(buf, c->fill.blk, k);
            c->fill.left -= k;
            return (long)k;
        }
        c->stage = 2;
    }
    return mread(&c->tail, buf, len);
}

/* ------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static const struct qs_ramblock *find_block(const struct qs_info *in, const char *id)
{
    for (size_t i = 0; i < in->nblocks; i++)
        if (!strcmp(in->blocks[i].id, id))
            return &in->blocks[i];
    return NULL;
}

static int has_device(const struct qs_info *in, const char *name)
{
    for (size_t i = 0; i < in->ndevices; i++)
        if (!strcmp(in->devices[i].name, name))
            return 1;
    return 0;
}

/* Same description, field by field (the pointers excepted). */
static int same_info(const struct qs_info *a, const struct qs_info *b)
{
    struct qs_info x = *a, y = *b;
    x.blocks = y.blocks = NULL;
    x.devices = y.devices = NULL;
    if (memcmp(&x, &y, sizeof x))
        return 0;
    if (a->nblocks && memcmp(a->blocks, b->blocks, a->nblocks * sizeof *a->blocks))
        return 0;
    if (a->ndevices && memcmp(a->devices, b->devices, a->ndevices * sizeof *a->devices))
        return 0;
    return 1;
}

static const unsigned char *data;
static size_t dlen;

/* Scan data[0..len) (or a patched copy) through pieces; return rc, fill err. */
static int scan_mem(const unsigned char *p, size_t len, const size_t *pieces,
                    size_t npieces, unsigned flags, struct qs_info *in,
                    char *err, size_t errlen)
{
    struct mreader m;
    mr_init(&m, pieces, npieces);
    mr_add(&m, p, len);
    return qs_scan(mread, &m, flags, in, err, errlen);
}

/* Offset of the first record of the first ram PART section: after the
 * configuration, the ram START header, the setup's MEM_SIZE block list,
 * EOS, the footer and the PART header. */
static uint64_t first_part_records(const struct qs_info *in)
{
    uint64_t o = 8 + 1 + 4 + strlen(in->machine);
    o += 1 + 4 + 1 + 3 + 4 + 4 + 8;
    for (size_t i = 0; i < in->nblocks; i++)
        o += 1 + strlen(in->blocks[i].id) + 8;
    return o + 8 + 5 + 5;
}

static unsigned char *find_bytes(unsigned char *hay, size_t n, const void *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k))
            return hay + i;
    return NULL;
}

static long eio(void *ctx, void *b, size_t l)
{
    (void)ctx, (void)b, (void)l;
    errno = EIO;
    return -1;
}

static const size_t odd[] = { 1, 7, 4093, 65536, 3, 4096, 5 };
#define NODD (sizeof odd / sizeof odd[0])

/* Expect a failure whose message contains `word` (and, if set, `word2`). */
static void expect_fail(const unsigned char *p, size_t len, unsigned flags,
                        const char *word, const char *word2, const char *what)
{
    struct qs_info in;
    char err[512], err2[512];
    int rc = scan_mem(p, len, NULL, 0, flags, &in, err, sizeof err);
    qs_info_free(&in);
    int rc2 = scan_mem(p, len, odd, NODD, flags, &in, err2, sizeof err2);
    qs_info_free(&in);
    ok(rc == -1 && strstr(err, word) && (!word2 || strstr(err, word2)) &&
          rc2 == -1 && !strcmp(err, err2),
          "%s: rc %d, \"%s\"%s", what, rc, err,
          rc2 == -1 && !strcmp(err, err2) ? "" : " (differs with odd pieces)");
}


/* A stream made of pieces of the real one (and of literal bytes). */
struct piece { const void *p; size_t len; };

static unsigned char *splice_pieces(const struct piece *pc, size_t n, size_t *len)
{
    size_t total = 0, o = 0;
    for (size_t i = 0; i < n; i++)
        total += pc[i].len;
    unsigned char *b = malloc(total ? total : 1);
    if (!b)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        memcpy(b + o, pc[i].p, pc[i].len);
        o += pc[i].len;
    }
    *len = total;
    return b;
}

static void expect_pieces_fail(const struct piece *pc, size_t n, const char *word,
                               const char *word2, const char *what)
{
    size_t len;
    unsigned char *b = splice_pieces(pc, n, &len);
    expect_fail(b, len, 0, word, word2, what);
    free(b);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/*
 * The end must come where QEMU's precopy puts it: configuration, ram
 * START (with its block list), PART..., ram END (with pages), device
 * state, then QEMU_VM_EOF and the VMDESCRIPTION.  Every other order is
 * incomplete, whatever trailer follows.
 */
static void test_ram_incomplete(const struct qs_info *in, uint64_t end);
static void test_commands(const struct qs_info *in, uint64_t end);

static void test_order(const struct qs_info *in)
{
    const uint64_t cfg_end = 8 + 1 + 4 + strlen(in->machine);
    const uint64_t part = first_part_records(in) - 5;   /* first PART header */
    const uint64_t dev = in->device_offset;
    const uint64_t eof = in->vmdesc_offset - 1;         /* EOF + VMDESCRIPTION */
    const unsigned char *d = data;
    const size_t tail = dlen - (size_t)eof;

    /* the ram END section: the last ram section before the device state */
    uint64_t end = 0;
    for (uint64_t o = part; o + 5 < dev; o++)
        if (d[o] == 0x7E && d[o + 5] == 0x03 && !memcmp(d + o + 1, d + o + 6, 4))
            end = o + 5;
    ok(end > part, "the ram END section found at offset %llu", (ull)end);

    struct piece early_cfg[] = { { d, cfg_end }, { d + eof, tail } };
    expect_pieces_fail(early_cfg, 2, "QEMU_VM_EOF at offset", "carries no RAM",
                       "EOF right after the configuration");
    struct piece early_setup[] = { { d, part }, { d + eof, tail } };
    expect_pieces_fail(early_setup, 2, "QEMU_VM_EOF at offset", "before the END of the RAM section",
                       "EOF right after the ram setup");
    struct piece early_part[] = { { d, end }, { d + eof, tail } };
    expect_pieces_fail(early_part, 2, "QEMU_VM_EOF at offset", "before the END of the RAM section",
                       "EOF right after the last ram PART");
    struct piece early_end[] = { { d, dev }, { d + eof, tail } };
    expect_pieces_fail(early_end, 2, "QEMU_VM_EOF at offset", "with no device state",
                       "EOF right after the ram END");
    struct piece no_ram[] = { { d, cfg_end }, { d + dev, dlen - dev } };
    expect_pieces_fail(no_ram, 2, "device state (section 'timer')", "carries no RAM",
                       "device state without any ram section");
    struct piece no_end[] = { { d, end }, { d + dev, dlen - dev } };
    expect_pieces_fail(no_end, 2, "device state (section 'timer')",
                       "before the END of the RAM section", "device state without the ram END");
    struct piece no_cfg[] = { { d, 8 }, { d + cfg_end, dlen - cfg_end } };
    expect_pieces_fail(no_cfg, 2, "no configuration section at offset 8", NULL,
                       "no configuration section");
    struct piece part_after[] = { { d, dev }, { d + part, end - part }, { d + dev, dlen - dev } };
    expect_pieces_fail(part_after, 3, "ram PART section at offset", "after the ram END section",
                       "a ram PART after the ram END");
    test_ram_incomplete(in, end);
    test_commands(in, end);
}

/* QEMU_VM_COMMAND records: PING passes; postcopy, a return path, a nested
 * stream or a number QEMU 7.2 does not know are refused by name. `end`
 * is the offset of the ram END section. */
static void test_commands(const struct qs_info *in, uint64_t end)
{
    const uint64_t cfg_end = 8 + 1 + 4 + strlen(in->machine);
    const unsigned char *d = data;
    static const unsigned char ping[] = { 0x08, 0, 2, 0, 4, 0, 0, 0, 1 };
    static const unsigned char advise[] = { 0x08, 0, 3, 0, 0 };
    static const unsigned char run[] = { 0x08, 0, 5, 0, 0 };
    static const unsigned char ret_path[] = { 0x08, 0, 1, 0, 0 };
    static const unsigned char unknown[] = { 0x08, 0, 99, 0, 0 };
    char want[128];

    struct piece with_ping[] = { { d, cfg_end }, { ping, sizeof ping },
                                 { d + cfg_end, dlen - cfg_end } };
    size_t len;
    unsigned char *b = splice_pieces(with_ping, 3, &len);
    struct qs_info got;
    char err[512];
    ok(scan_mem(b, len, odd, NODD, 0, &got, err, sizeof err) == 0 && got.commands == 1,
       "a PING command passes: \"%s\"", err);
    qs_info_free(&got);
    free(b);

    struct piece with_advise[] = { { d, cfg_end }, { advise, sizeof advise },
                                   { d + cfg_end, dlen - cfg_end } };
    snprintf(want, sizeof want, "unsupported command POSTCOPY_ADVISE (3) at offset %llu: "
             "only precopy streams without a return path are carried", (ull)cfg_end);
    expect_pieces_fail(with_advise, 3, want, NULL, "POSTCOPY_ADVISE after the configuration");
    struct piece with_run[] = { { d, end }, { run, sizeof run }, { d + end, dlen - end } };
    snprintf(want, sizeof want, "unsupported command POSTCOPY_RUN (5) at offset %llu", (ull)end);
    expect_pieces_fail(with_run, 3, want, NULL, "POSTCOPY_RUN before the ram END");
    struct piece with_rp[] = { { d, cfg_end }, { ret_path, sizeof ret_path },
                               { d + cfg_end, dlen - cfg_end } };
    expect_pieces_fail(with_rp, 3, "unsupported command OPEN_RETURN_PATH (1)", NULL,
                       "OPEN_RETURN_PATH");
    struct piece with_unknown[] = { { d, cfg_end }, { unknown, sizeof unknown },
                                    { d + cfg_end, dlen - cfg_end } };
    snprintf(want, sizeof want, "unknown command 99 at offset %llu", (ull)cfg_end);
    expect_pieces_fail(with_unknown, 3, want, NULL, "an unknown command");
}

/* A ram section that carries no RAM, or another module's, or a setup
 * without its block list; `end` is the offset of the ram END section. */
static void test_ram_incomplete(const struct qs_info *in, uint64_t end)
{
    const uint64_t cfg_end = 8 + 1 + 4 + strlen(in->machine);
    const uint64_t part = first_part_records(in) - 5;   /* first PART header */
    const uint64_t dev = in->device_offset;
    const unsigned char *d = data;

    /* The setup and an END carrying no page at all: EOS and footer only. */
    unsigned char empty_end[1 + 4 + 8 + 5] = { 0x03 };
    memcpy(empty_end + 1, d + end + 1, 4);
    empty_end[1 + 4 + 7] = 0x10;                        /* RAM_SAVE_FLAG_EOS */
    empty_end[13] = 0x7E;
    memcpy(empty_end + 14, d + end + 1, 4);
    struct piece no_pages[] = { { d, part }, { empty_end, sizeof empty_end },
                                { d + dev, dlen - dev } };
    expect_pieces_fail(no_pages, 3, "without a single page", "carries no RAM",
                       "a ram section without a single page");

    /* Another iterable module's START (block migration, dirty bitmaps). */
    unsigned char *bad = malloc(dlen);
    if (!bad)
        exit(2);
    memcpy(bad, d, dlen);
    memcpy(bad + cfg_end + 1 + 4 + 1, "blk", 3);
    expect_fail(bad, dlen, 0, "unsupported: iterable section 'blk'", NULL,
                "a START section of another iterable module");
    /* A START without the MEM_SIZE block list: its first record made EOS. */
    unsigned char setup[1 + 4 + 1 + 3 + 4 + 4 + 8 + 5];
    memcpy(setup, d + cfg_end, 1 + 4 + 1 + 3 + 4 + 4);
    memset(setup + 17, 0, 8);
    setup[24] = 0x10;
    setup[25] = 0x7E;
    put32(setup + 26, (uint32_t)(d[cfg_end + 1] << 24 | d[cfg_end + 2] << 16 |
                                 d[cfg_end + 3] << 8 | d[cfg_end + 4]));
    struct piece no_list[] = { { d, cfg_end }, { setup, sizeof setup }, { d + dev, dlen - dev } };
    expect_pieces_fail(no_list, 3, "lists no RAM blocks", NULL, "a ram setup without its block list");
    free(bad);
}

/* The file straight from its descriptor: the test everything else needs. */
static int scan_file(const char *path, struct qs_info *in, off_t *size)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    char err[512];

    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(2);
    }
    *size = st.st_size;
    int rc = qs_scan(qs_read_fd, &fd, 0, in, err, sizeof err);
    ok(rc == 0, "qs_scan of %s through qs_read_fd succeeds%s%s", path,
       rc ? ": " : "", rc ? err : "");
    close(fd);
    return rc;
}

/* The stream in memory (data, dlen) for the piecewise and damaged variants. */
static void load_file(const char *path, off_t size)
{
    unsigned char *buf = malloc((size_t)size + 1);
    FILE *f = fopen(path, "rb");

    if (!buf || !f || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot load %s\n", path);
        exit(2);
    }
    fclose(f);
    data = buf;
    dlen = (size_t)size;
}

/* What a paused q35 VM migrated once looks like. */
static void test_description(const struct qs_info *in, off_t size)
{
    ok(in->magic == QS_MAGIC && in->version == QS_VERSION,
       "magic 0x%08x, version %u", in->magic, in->version);
    ok(in->has_config && !strncmp(in->machine, "pc-q35-", 7),
       "configuration names a q35 machine type (\"%s\")", in->machine);
    ok(in->bytes == (uint64_t)size, "bytes %llu equal the file size %llu",
       (ull)in->bytes, (ull)size);
    ok(in->page_size == 4096, "page size %llu", (ull)in->page_size);

    const struct qs_ramblock *mem = find_block(in, "mem");
    ok(mem && mem->size >= 1 << 20,
       "RAM block \"mem\" (the memory-backend id) is listed, size %llu",
       mem ? (ull)mem->size : 0ULL);
    ok(find_block(in, "pc.bios") && find_block(in, "pc.rom") &&
       find_block(in, "/rom@etc/acpi/tables"),
       "firmware blocks pc.bios, pc.rom and /rom@etc/acpi/tables are listed (%zu blocks)",
       in->nblocks);
}

/* Every block's pages, each sent once; the totals are their sums. */
static void test_pages(const struct qs_info *in)
{
    uint64_t sum = 0, nn = 0, nz = 0, no = 0;
    int all_once = 1;

    for (size_t i = 0; i < in->nblocks; i++) {
        const struct qs_ramblock *b = &in->blocks[i];
        sum += b->size;
        nn += b->normal_pages;
        nz += b->zero_pages;
        no += b->other_pages;
        if (b->normal_pages + b->zero_pages != b->size / in->page_size || b->other_pages) {
            all_once = 0;
            printf("# block %s: size %llu = %llu pages, normal %llu + zero %llu, other %llu\n",
                   b->id, (ull)b->size, (ull)(b->size / in->page_size),
                   (ull)b->normal_pages, (ull)b->zero_pages, (ull)b->other_pages);
        }
    }
    ok(sum == in->ram_total, "block sizes add up to MEM_SIZE %llu", (ull)in->ram_total);
    ok(all_once, "paused VM migrated once: every block has normal + zero pages = size / page size");
    ok(nn == in->normal_pages && nz == in->zero_pages && no == in->other_pages,
       "page totals (normal %llu, zero %llu, other %llu) are the sums over blocks",
       (ull)in->normal_pages, (ull)in->zero_pages, (ull)in->other_pages);
}

/* The sections, the end markers, the devices and where each part lies. */
static void test_sections(const struct qs_info *in)
{
    ok(in->sections_start == 1 && in->sections_end == 1 && in->sections_full == 1 &&
       !strcmp(in->first_device, "timer"),
       "sections: 1 START (ram), %llu PART, 1 END, then device state from \"%s\"",
       (ull)in->sections_part, in->first_device);
    ok(in->has_eof && in->has_vmdesc, "QEMU_VM_EOF and the VMDESCRIPTION trailer are found");
    ok(in->ndevices > 0 && has_device(in, "cpu") && has_device(in, "timer"),
       "vmdesc lists %zu devices, among them cpu and timer", in->ndevices);
    ok(in->device_offset > 0 &&
       in->device_offset + in->device_bytes + 1 == in->vmdesc_offset &&
       in->vmdesc_offset + in->vmdesc_bytes == in->bytes &&
       in->ram_bytes < in->device_offset,
       "byte accounting: ram %llu, device state %llu at %llu, vmdesc %llu at %llu",
       (ull)in->ram_bytes, (ull)in->device_bytes, (ull)in->device_offset,
       (ull)in->vmdesc_bytes, (ull)in->vmdesc_offset);
}

/* Memory stays bounded: 512 MiB of opaque device state inserted after
 * the first device section header.  Run first, while the RSS peak is
 * still only the loaded file. */
static void test_bounded_memory(const struct qs_info *in)
{
    static unsigned char blk[1 << 16];
    size_t hdr = in->device_offset + 1 + 4 + 1 + strlen(in->first_device) + 4 + 4;
    struct chain c;
    struct qs_info big;
    char err[512];

    memset(blk, 0xA5, sizeof blk);
    memset(&c, 0, sizeof c);
    mr_init(&c.head, NULL, 0);
    mr_add(&c.head, data, hdr);
    c.fill.blk = blk;
    c.fill.blen = sizeof blk;
    c.fill.left = (uint64_t)512 << 20;
    mr_init(&c.tail, NULL, 0);
    mr_add(&c.tail, data + hdr, dlen - hdr);
    long rss0 = max_rss_kib();
    double t0 = now();
    int rc = qs_scan(chain_read, &c, 0, &big, err, sizeof err);
    double t = now() - t0;
    long grown = max_rss_kib() - rss0;
    ok(rc == 0 && big.bytes == in->bytes + ((uint64_t)512 << 20) &&
       big.device_bytes == in->device_bytes + ((uint64_t)512 << 20) &&
       big.ndevices == in->ndevices,
       "stream with 512 MiB more device state scans (%.0f MB/s)%s%s",
       (double)big.bytes / t / 1e6, rc ? ": " : "", rc ? err : "");
    ok(grown < 40 * 1024, "peak memory grew by %ld KiB (< 40 MiB) for a %llu-byte stream",
       grown, (ull)big.bytes);
    qs_info_free(&big);
}

/* Throughput on the real stream from memory, large pieces. */
static void test_throughput(const struct qs_info *in)
{
    struct qs_info again;
    char err[512];
    double best = 1e9;
    int rc = 0;

    for (int i = 0; i < 5; i++) {
        double t0 = now();
        rc = scan_mem(data, dlen, NULL, 0, 0, &again, err, sizeof err);
        double t = now() - t0;
        if (t < best)
            best = t;
        if (i < 4)
            qs_info_free(&again);
    }
    ok(rc == 0 && same_info(in, &again),
       "scan from memory gives the same description (%.0f MB/s)",
       (double)dlen / best / 1e6);
    qs_info_free(&again);
}

/* Chunk boundaries do not matter. */
static void test_pieces(const struct qs_info *in)
{
    static const size_t one[] = { 1 }, seven[] = { 7 }, p4093[] = { 4093 };
    struct { const size_t *p; size_t n; const char *name; } pat[] = {
        { one, 1, "1-byte" }, { seven, 1, "7-byte" }, { p4093, 1, "4093-byte" },
        { odd, NODD, "1,7,4093,65536,3,4096,5-byte" },
    };
    char err[512];

    for (size_t i = 0; i < sizeof pat / sizeof pat[0]; i++) {
        struct qs_info p;
        int rc = scan_mem(data, dlen, pat[i].p, pat[i].n, 0, &p, err, sizeof err);
        ok(rc == 0 && same_info(in, &p), "read in %s pieces: same description%s%s",
           pat[i].name, rc ? ": " : "", rc ? err : "");
        qs_info_free(&p);
    }
}

/* Truncations anywhere: each named for where it cuts. */
static void test_cuts(const struct qs_info *in)
{
    uint64_t cfg_end = 8 + 1 + 4 + strlen(in->machine);
    struct { uint64_t at; const char *word2; const char *what; } cut[] = {
        { 0, "header", "empty stream" },
        { 5, "header", "cut inside the header" },
        { 11, "configuration", "cut inside the configuration section" },
        { cfg_end + 30, "RAM block list", "cut inside the ram setup" },
        { in->device_offset / 2, "ram", "cut in the middle of ram" },
        { in->device_offset - 1, "footer", "cut inside the last ram footer" },
        { in->device_offset + 3, "section header", "cut inside the first device section header" },
        { in->device_offset + in->device_bytes / 2, "device state", "cut inside device state" },
        { in->vmdesc_offset - 1, "device state", "cut just before QEMU_VM_EOF" },
        { in->vmdesc_offset, "VMDESCRIPTION", "cut just before the VMDESCRIPTION (after EOF)" },
        { in->vmdesc_offset + 3, "VMDESCRIPTION", "cut inside the VMDESCRIPTION length" },
        { in->bytes - 1, "VMDESCRIPTION", "cut inside the VMDESCRIPTION JSON" },
    };

    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s (%llu bytes)", cut[i].what, (ull)cut[i].at);
        expect_fail(data, (size_t)cut[i].at, 0, "truncated", cut[i].word2, what);
    }
}

/* A page cut: walk the first ram PART to its first PAGE record. */
static void test_page_cut(const struct qs_info *in)
{
    uint64_t page_cut = 0, o = first_part_records(in);

    while (o + 9 < in->device_offset) {
        unsigned fl = data[o + 7] | (data[o + 6] & 0x0f) << 8;
        o += 8;
        if (!(fl & 0x20))
            o += 1 + data[o];                   /* block name */
        if (fl == 0x02 || fl == 0x22) {
            o += 1;                             /* ZERO: fill byte */
        } else {
            if (fl == 0x08 || fl == 0x28)
                page_cut = o + 100;
            break;
        }
    }
    if (page_cut)
        expect_fail(data, (size_t)page_cut, 0, "truncated: stream ends inside ram page", NULL,
                    "cut inside a ram page");
    else
        printf("# no named PAGE record of \"mem\" found near the start; page cut skipped\n");
}

/* A machine that suppresses the VMDESCRIPTION: allowed only when asked. */
static void test_no_vmdesc(const struct qs_info *in)
{
    struct qs_info p;
    char err[512];
    int rc = scan_mem(data, (size_t)in->vmdesc_offset, NULL, 0, QS_ALLOW_NO_VMDESC, &p,
                      err, sizeof err);

    ok(rc == 0 && p.has_eof && !p.has_vmdesc && p.ndevices == 0 &&
       p.device_bytes == in->device_bytes,
       "with QS_ALLOW_NO_VMDESC, a stream ending at QEMU_VM_EOF is accepted%s%s",
       rc ? ": " : "", rc ? err : "");
    qs_info_free(&p);
}

/* Damage to the header, the sections, the RAM blocks and the trailer. */
static void test_corruptions(const struct qs_info *in)
{
    unsigned char *bad = malloc(dlen + 1), *m;
    uint64_t cfg_end = 8 + 1 + 4 + strlen(in->machine);
    char want[64];

    if (!bad)
        exit(2);
    memcpy(bad, data, dlen);
    bad[1] ^= 0xFF;
    expect_fail(bad, dlen, 0, "bad magic", "offset 0", "corrupted magic");

    memcpy(bad, data, dlen);
    bad[7] = 2;
    expect_fail(bad, dlen, 0, "version", NULL, "stream version 2");

    /* Inject a byte 0x42 right after the configuration section. */
    memcpy(bad, data, cfg_end);
    bad[cfg_end] = 0x42;
    memcpy(bad + cfg_end + 1, data + cfg_end, dlen - cfg_end);
    snprintf(want, sizeof want, "unknown section type 0x42 at offset %llu", (ull)cfg_end);
    expect_fail(bad, dlen + 1, 0, want, NULL, "bad section type after the configuration");

    /* Rename "mem" in the setup's block list: later records name an unknown block. */
    memcpy(bad, data, dlen);
    if ((m = find_bytes(bad + cfg_end, 4096, "\x03mem", 4))) {
        m[3] = 'X';
        expect_fail(bad, dlen, 0, "unknown RAM block 'mem'", "not in the setup list",
                    "ram record naming a block absent from the setup");
    }

    /* An absurd block size in the setup. */
    memcpy(bad, data, dlen);
    if ((m = find_bytes(bad + cfg_end, 4096, "\x03mem", 4))) {
        m[4] = 0x7F;
        expect_fail(bad, dlen, 0, "absurd size", "RAM block 'mem'", "absurd RAM block size");
    }

    /* Unsupported flag RAM_SAVE_FLAG_HOOK (RDMA) on the first PART record. */
    memcpy(bad, data, dlen);
    uint64_t fp = first_part_records(in);
    bad[fp + 7] |= 0x80;
    snprintf(want, sizeof want, "0x80 (RAM_SAVE_FLAG_HOOK, RDMA) at offset %llu", (ull)fp);
    expect_fail(bad, dlen, 0, want, NULL, "unsupported ram flag 0x80");

    /* Damaged JSON in the trailer. */
    memcpy(bad, data, dlen);
    bad[in->vmdesc_offset + 5 + 1] = '#';
    expect_fail(bad, dlen, 0, "does not parse", NULL, "VMDESCRIPTION JSON that does not parse");
    free(bad);
}

/* A failing read callback; qs_info_free twice is safe. */
static void test_read_error(void)
{
    struct qs_info p;
    char err[512];
    int rc = qs_scan(eio, NULL, 0, &p, err, sizeof err);

    ok(rc == -1 && strstr(err, "read error at offset 0"), "read error is reported: \"%s\"", err);
    qs_info_free(&p);
    qs_info_free(&p);
}

/* ------------------------------------------------------------------ */
/* Hooks: the bytes hook and the page records rebuild the stream. */

struct rebuild {
    unsigned char *tap;           /* what the bytes hook received */
    size_t taplen;
    uint64_t pos;                 /* stream offset the tapped bytes reached */
    size_t gaps;                  /* tapped bytes that are not the stream's */
    uint64_t next;                /* where the next untapped record must start */
    size_t pages, items, bad;     /* page records; items; inconsistencies */
    uint64_t page_bytes;
    unsigned first_item;
    int stop_after;               /* the page hook fails at this page (0: never) */
};

static int rb_bytes(void *ctx, const unsigned char *p, size_t n)
{
    struct rebuild *b = ctx;
    memcpy(b->tap + b->taplen, p, n);
    b->taplen += n;
    /* exactly the stream's bytes from where the last page record ended */
    if (b->pos + n > dlen || memcmp(p, data + b->pos, n))
        b->gaps++;
    b->pos += n;
    return 0;
}

static int rb_page(void *ctx, const struct qs_info *info, const struct qs_page *pg)
{
    struct rebuild *b = ctx;
    b->pages++;
    b->page_bytes += pg->record_bytes;
    if (pg->offset != b->pos)           /* the record comes right after them */
        b->gaps++;
    b->pos = pg->offset + pg->record_bytes;
    /* the record lies in the stream where it says, its data too */
    if (pg->offset + pg->record_bytes > dlen || pg->block >= info->nblocks)
        b->bad++;
    else if (pg->kind == QS_PAGE_DATA &&
             (pg->data_offset + info->page_size != pg->offset + pg->record_bytes ||
              memcmp(pg->data, data + pg->data_offset, info->page_size)))
        b->bad++;
    else if (pg->kind == QS_PAGE_ZERO && data[pg->offset + pg->record_bytes - 1] != pg->fill)
        b->bad++;
    if (b->stop_after && (int)b->pages == b->stop_after)
        return -1;
    return 0;
}

static int rb_item(void *ctx, unsigned type, uint64_t at, unsigned cmd)
{
    struct rebuild *b = ctx;
    (void)cmd;
    if (!b->items++)
        b->first_item = type;
    if (at >= dlen || data[at] != type)
        b->bad++;
    return 0;
}

/* The tapped bytes and the page records, in order, are the stream. */
static void test_hooks_pieces(const struct qs_info *in, const size_t *pieces,
                              size_t npieces, const char *name)
{
    char err[512];
    struct rebuild b = { .tap = malloc(dlen) };
    struct qs_hooks h = { .ctx = &b, .bytes = rb_bytes, .page = rb_page };
    struct mreader m;
    struct qs_info got;

    mr_init(&m, pieces, npieces);
    mr_add(&m, data, dlen);
    int rc = qs_scan_hooks(mread, &m, 0, &h, &got, err, sizeof err);
    ok(rc == 0 && same_info(in, &got) && !b.gaps && b.pos == dlen,
       "hooks, %s pieces: tapped bytes and page records tile the stream "
       "(%zu gaps, up to %llu of %zu)%s%s", name, b.gaps, (ull)b.pos, dlen,
       rc ? ": " : "", rc ? err : "");
    qs_info_free(&got);
    free(b.tap);
}

static void test_hooks(const struct qs_info *in)
{
    static const size_t one[] = { 1 };
    char err[512];
    struct rebuild b = { .tap = malloc(dlen) };
    struct qs_hooks h = { .ctx = &b, .bytes = rb_bytes, .page = rb_page, .item = rb_item };
    struct mreader m;

    test_hooks_pieces(in, odd, NODD, "odd");
    test_hooks_pieces(in, one, 1, "1-byte");
    mr_init(&m, odd, NODD);
    mr_add(&m, data, dlen);
    struct qs_info got;
    int rc = qs_scan_hooks(mread, &m, 0, &h, &got, err, sizeof err);
    ok(rc == 0 && same_info(in, &got), "with hooks, in odd pieces: same description%s%s",
       rc ? ": " : "", rc ? err : "");
    ok(b.pages == in->normal_pages + in->zero_pages + in->other_pages && !b.bad,
       "the page hook sees every page record where it lies (%zu, %zu wrong)", b.pages, b.bad);
    ok(b.taplen + b.page_bytes == dlen,
       "the bytes hook gets every byte but the page records (%zu + %llu of %zu)",
       b.taplen, (ull)b.page_bytes, dlen);
    ok(b.items >= 3 && b.first_item == 0x01 && !b.bad,
       "the item hook sees the sections from the ram START on (%zu items)", b.items);
    ok(got.ram_section_id == in->ram_section_id && got.section_footers,
       "the ram section id (%u) and footers are known", got.ram_section_id);
    ok(b.taplen > 4 && !memcmp(b.tap, data, 8) &&
       !memcmp(b.tap + b.taplen - 64, data + dlen - 64, 64),
       "the tapped bytes start with the header and end with the trailer");
    qs_info_free(&got);

    /* a hook that fails stops the scan with its message */
    b = (struct rebuild){ .tap = b.tap, .stop_after = 3 };
    snprintf(h.hook_err, sizeof h.hook_err, "hook says no");
    mr_init(&m, NULL, 0);
    mr_add(&m, data, dlen);
    rc = qs_scan_hooks(mread, &m, 0, &h, &got, err, sizeof err);
    ok(rc == -1 && !strcmp(err, "stopped: hook says no") && b.pages == 3,
       "a failing hook stops the scan: \"%s\" after %zu pages", err, b.pages);
    qs_info_free(&got);
    free(b.tap);
}

/* ------------------------------------------------------------------ */
/* libvirt save images: libvirt's header, XML, cookie and padding, then
 * the real stream (libvirt-image.h) */

#define LV_XML    "<domain type='kvm'>\n  <name>t&amp;</name>\n</domain>\n"
#define LV_COOKIE "<qemuDomainSaveCookie/>\n"
#define LV_DATA   (sizeof LV_XML + sizeof LV_COOKIE + 64)

struct lv_fields { const char *magic; uint32_t v[5]; bool big_endian; };

/* The 92-byte header and data_len bytes of data after it, into img. */
static size_t lv_make(unsigned char *img, const struct lv_fields *f)
{
    memset(img, 0, LV_HEADER_LEN + LV_DATA);
    memcpy(img, f->magic, LV_MAGIC_LEN);
    for (int i = 0; i < 5; i++)
        for (int b = 0; b < 4; b++)
            img[16 + 4 * i + b] = (unsigned char)(f->v[i] >>
                (f->big_endian ? 24 - 8 * b : 8 * b));
    memcpy(img + LV_HEADER_LEN, LV_XML, sizeof LV_XML);
    memcpy(img + LV_HEADER_LEN + sizeof LV_XML, LV_COOKIE, sizeof LV_COOKIE);
    return LV_HEADER_LEN + LV_DATA;
}

static const struct lv_fields lv_good = {
    LV_MAGIC_SAVE, { 2, LV_DATA, 1, 0, sizeof LV_XML }, false,
};

/* Scan the image (head + the real stream) in the given pieces. */
static int lv_scan(const unsigned char *head, size_t hlen, const size_t *pieces,
                   size_t np, struct qs_info *o, char *err, size_t errlen)
{
    struct mreader m;
    mr_init(&m, pieces, np);
    mr_add(&m, head, hlen);
    mr_add(&m, data, dlen);
    return qs_scan(mread, &m, 0, o, err, errlen);
}

static void test_libvirt_good(const struct qs_info *in)
{
    unsigned char img[LV_HEADER_LEN + LV_DATA];
    static const size_t one[] = { 1 };
    struct lv_fields be = lv_good;
    char err[512];
    struct qs_info o;

    size_t n = lv_make(img, &lv_good);
    int rc = lv_scan(img, n, NULL, 0, &o, err, sizeof err);
    ok(rc == 0 && o.has_libvirt && o.libvirt.complete && !o.libvirt.swapped,
       "libvirt image (Save, raw): complete%s%s", rc ? ": " : "", rc ? err : "");
    ok(o.libvirt.version == 2 && o.libvirt.was_running == 1 &&
       o.libvirt.format == LV_FORMAT_RAW && o.libvirt.data_len == LV_DATA,
       "libvirt image: version, running flag, format and data length");
    ok(o.libvirt.xml && !strcmp(o.libvirt.xml, LV_XML) &&
       o.libvirt.xml_len == strlen(LV_XML), "libvirt image: the domain XML");
    ok(o.libvirt.cookie && !strcmp(o.libvirt.cookie, LV_COOKIE),
       "libvirt image: the cookie");
    ok(o.libvirt.stream_offset == n && o.bytes == n + in->bytes &&
       same_info(in, &o) == false && !strcmp(o.machine, in->machine) &&
       o.normal_pages == in->normal_pages && o.ndevices == in->ndevices,
       "libvirt image: the QEMU stream after it, offsets from the file's start");
    qs_info_free(&o);

    rc = lv_scan(img, n, one, 1, &o, err, sizeof err);
    ok(rc == 0 && o.libvirt.complete, "libvirt image read in 1-byte pieces%s%s",
       rc ? ": " : "", rc ? err : "");
    qs_info_free(&o);

    be.big_endian = true;
    lv_make(img, &be);
    rc = lv_scan(img, n, NULL, 0, &o, err, sizeof err);
    ok(rc == 0 && o.libvirt.swapped && o.libvirt.data_len == LV_DATA,
       "libvirt image of the other byte order%s%s", rc ? ": " : "", rc ? err : "");
    qs_info_free(&o);
}

/* One header field changed: refused with a message holding `words`. */
static void lv_refused(const struct lv_fields *f, const char *words,
                       const char *what)
{
    unsigned char img[LV_HEADER_LEN + LV_DATA];
    char err[512] = "";
    struct qs_info o;

    size_t n = lv_make(img, f);
    int rc = lv_scan(img, n, NULL, 0, &o, err, sizeof err);
    ok(rc == -1 && strstr(err, words), "libvirt image %s: refused (%s)", what, err);
    qs_info_free(&o);
}

static void test_libvirt_bad(void)
{
    struct lv_fields f = lv_good;

    f.magic = LV_MAGIC_PART;
    lv_refused(&f, "incomplete: the libvirt header says LibvirtQemudPart",
               "still marked Part");
    f = lv_good;
    f.v[3] = LV_FORMAT_LZOP;
    lv_refused(&f, "format lzop (4): what follows its header at offset",
               "compressed by lzop");
    f.v[3] = 9;
    lv_refused(&f, "unknown image format 9", "of an unknown format");
    f = lv_good;
    f.v[0] = 3;
    lv_refused(&f, "unsupported version 3", "of version 3");
    f = lv_good;
    f.v[1] = 0;
    lv_refused(&f, "data length 0", "with no data");
    f.v[1] = LV_DATA_MAX + 1;
    lv_refused(&f, "data length 983041", "with too much data");
    f = lv_good;
    f.v[2] = 7;
    lv_refused(&f, "running flag 7", "with a bad running flag");
    f = lv_good;
    f.v[4] = LV_DATA;
    lv_refused(&f, "cookie offset", "with a cookie outside its data");
    f = lv_good;
    f.v[4] = 10;   /* the XML would end inside its first 10 bytes */
    lv_refused(&f, "the domain XML at offset 92 has no terminating NUL",
               "with an XML without its NUL");
    f = lv_good;
    f.v[4] = 0;    /* no cookie: the XML's room is all the data */
    {
        unsigned char img[LV_HEADER_LEN + LV_DATA];
        char err[512] = "";
        struct qs_info o;
        size_t n = lv_make(img, &f);
        int rc = lv_scan(img, n, NULL, 0, &o, err, sizeof err);
        ok(rc == 0 && !o.libvirt.cookie && !strcmp(o.libvirt.xml, LV_XML),
           "libvirt image without a cookie%s%s", rc ? ": " : "", rc ? err : "");
        qs_info_free(&o);
    }
}

static void test_libvirt_cuts(void)
{
    unsigned char img[LV_HEADER_LEN + LV_DATA];
    size_t n = lv_make(img, &lv_good);
    static const size_t cuts[] = { 1, 16, 91, 92, 93, LV_HEADER_LEN + LV_DATA - 1 };

    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        struct mreader m;
        struct qs_info o;
        char err[512] = "";
        mr_init(&m, NULL, 0);
        mr_add(&m, img, cuts[i]);
        int rc = qs_scan(mread, &m, 0, &o, err, sizeof err);
        ok(rc == -1 && !strncmp(err, "truncated:", 10) && strstr(err, "libvirt"),
           "libvirt image cut after %zu bytes: %s", cuts[i], err);
        qs_info_free(&o);
    }
    /* whole header, nothing after: the QEMU stream is missing */
    struct mreader m;
    struct qs_info o;
    char err[512] = "";
    mr_init(&m, NULL, 0);
    mr_add(&m, img, n);
    int rc = qs_scan(mread, &m, 0, &o, err, sizeof err);
    ok(rc == -1 && strstr(err, "truncated: stream ends at offset") &&
       strstr(err, "where the stream header was expected"),
       "libvirt header alone: truncated where the QEMU stream starts (%s)", err);
    qs_info_free(&o);
}

/* lv_read leaves the reader at the QEMU stream's first byte. */
static void test_libvirt_read(void)
{
    unsigned char img[LV_HEADER_LEN + LV_DATA], next[4];
    struct lv_image lv;
    struct mreader m;
    char err[512] = "";
    size_t n = lv_make(img, &lv_good);

    mr_init(&m, NULL, 0);
    mr_add(&m, img, n);
    mr_add(&m, data, dlen);
    int rc = lv_read(mread, &m, &lv, err, sizeof err);
    ok(rc == 0 && lv.complete && !strcmp(lv.xml, LV_XML) &&
       mread(&m, next, 4) == 4 && !memcmp(next, "QEVM", 4),
       "lv_read: header and XML read, the reader left at QEVM%s%s",
       rc ? ": " : "", rc ? err : "");
    lv_image_free(&lv);
    ok(lv_is_image("LibvirtQemudPart", 16) && lv_is_image("Libv", 4) &&
       !lv_is_image("QEVM", 4) && !lv_is_image("LibvirtQemudXXXX", 16),
       "lv_is_image: both magics and their beginnings, nothing else");
    ok(!strcmp(lv_format_name(4), "lzop") && !strcmp(lv_format_name(77), "unknown"),
       "lv_format_name");
}

/* ------------------------------------------------------------------ */
/*
 * Hand-built streams, one per record, flag, command and configuration
 * form QEMU 7.2 to 10.2 write (read in QEMU's migration/savevm.c, ram.c
 * and ram.h at each release): each accepted with what it means, or
 * refused with its exact message.  With QS_SEED_DIR=DIR set, each is also
 * written to DIR as a seed for the qemu-stream fuzz target (first byte
 * 0xFF: read whole).
 */

struct sb { unsigned char p[32768]; size_t len; };
struct bytes { const void *p; size_t n; };
#define BYTES(a) ((struct bytes){ (a), sizeof (a) })

static void sb_put(struct sb *b, const void *p, size_t n)
{
    if (!n)                       /* an absent part: p is NULL */
        return;
    if (b->len + n > sizeof b->p)
        exit(2);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void sb_u8(struct sb *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    sb_put(b, &c, 1);
}

static void sb_u32(struct sb *b, uint32_t v)
{
    unsigned char c[4];
    put32(c, v);
    sb_put(b, c, 4);
}

static void sb_u64(struct sb *b, uint64_t v)
{
    sb_u32(b, (uint32_t)(v >> 32));
    sb_u32(b, (uint32_t)v);
}

static void sb_str8(struct sb *b, const char *s)
{
    sb_u8(b, (unsigned)strlen(s));
    sb_put(b, s, strlen(s));
}

#define MINI_RAM 2u               /* section ids */
#define MINI_DEV 3u

/* What a minimal stream holds besides its fixed parts: a q35 machine with
 * RAM blocks "mem" (2 pages) and "pc.rom" (1 page, never sent), the ram
 * END sending a PAGE and a ZERO record of "mem", one device ("timer"). */
struct mini {
    const char *caps[3];          /* configuration/capabilities (NULL-ended) */
    unsigned page_bits;           /* configuration/target-page-bits (0: none) */
    bool uuid;                    /* configuration/uuid */
    struct bytes pre;             /* items between the configuration and the ram START */
    struct bytes setup;           /* records of the ram START after its block list */
    struct bytes part;            /* records of a ram PART (none if p is NULL) */
    struct bytes mid;             /* items before the ram END */
    struct bytes end;             /* records of the ram END before its pages */
};

struct mini_at {                  /* where the parts went */
    size_t caps[3], pre, setup, part, mid, end, dev;
};

static void mini_config(struct sb *b, const struct mini *m, struct mini_at *at)
{
    sb_u8(b, 0x07);
    sb_u32(b, 11);
    sb_put(b, "pc-q35-10.0", 11);
    if (m->page_bits) {
        sb_u8(b, 0x05);
        sb_str8(b, "configuration/target-page-bits");
        sb_u32(b, 1);
        sb_u32(b, m->page_bits);
    }
    size_t n = 0;
    while (n < 3 && m->caps[n])
        n++;
    if (n) {
        sb_u8(b, 0x05);
        sb_str8(b, "configuration/capabilities");
        sb_u32(b, 1);
        sb_u32(b, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
            at->caps[i] = b->len;
            sb_str8(b, m->caps[i]);
        }
    }
    if (m->uuid) {
        sb_u8(b, 0x05);
        sb_str8(b, "configuration/uuid");
        sb_u32(b, 1);
        sb_put(b, "0123456789abcdef", 16);
    }
}

static bool mini_shared(const struct mini *m)
{
    for (size_t i = 0; i < 3 && m->caps[i]; i++)
        if (!strcmp(m->caps[i], "x-ignore-shared"))
            return true;
    return false;
}

/* The ram START: MEM_SIZE, the block list (with guest addresses under
 * x-ignore-shared), the extra setup records, EOS, footer. */
static void mini_setup(struct sb *b, const struct mini *m, uint64_t psz, struct mini_at *at)
{
    sb_u8(b, 0x01);
    sb_u32(b, MINI_RAM);
    sb_str8(b, "ram");
    sb_u32(b, 0);
    sb_u32(b, 4);
    sb_u64(b, 3 * psz | 0x04);
    sb_str8(b, "mem");
    sb_u64(b, 2 * psz);
    if (mini_shared(m))
        sb_u64(b, 0);
    sb_str8(b, "pc.rom");
    sb_u64(b, psz);
    if (mini_shared(m))
        sb_u64(b, 0xfffc0000);
    at->setup = b->len;
    sb_put(b, m->setup.p, m->setup.n);
    sb_u64(b, 0x10);
    sb_u8(b, 0x7E);
    sb_u32(b, MINI_RAM);
}

/* PART (if any), the items before END, END with its pages, the device. */
static void mini_ram(struct sb *b, const struct mini *m, uint64_t psz, struct mini_at *at)
{
    static unsigned char page[8192];
    memset(page, 0x5a, sizeof page);
    if (m->part.p) {
        sb_u8(b, 0x02);
        sb_u32(b, MINI_RAM);
        at->part = b->len;
        sb_put(b, m->part.p, m->part.n);
        sb_u64(b, 0x10);
        sb_u8(b, 0x7E);
        sb_u32(b, MINI_RAM);
    }
    at->mid = b->len;
    sb_put(b, m->mid.p, m->mid.n);
    sb_u8(b, 0x03);
    sb_u32(b, MINI_RAM);
    at->end = b->len;
    sb_put(b, m->end.p, m->end.n);
    sb_u64(b, 0x08);                            /* PAGE mem @0 */
    sb_str8(b, "mem");
    sb_put(b, page, psz);
    sb_u64(b, psz | 0x02 | 0x20);               /* ZERO|CONTINUE mem @1 page */
    sb_u8(b, 0);
    sb_u64(b, 0x10);
    sb_u8(b, 0x7E);
    sb_u32(b, MINI_RAM);
}

static void mini_build(struct sb *b, const struct mini *m, struct mini_at *at)
{
    const uint64_t psz = (uint64_t)1 << (m->page_bits ? m->page_bits : 12);
    char json[160];

    memset(at, 0, sizeof *at);
    b->len = 0;
    sb_u32(b, QS_MAGIC);
    sb_u32(b, QS_VERSION);
    mini_config(b, m, at);
    at->pre = b->len;
    sb_put(b, m->pre.p, m->pre.n);
    mini_setup(b, m, psz, at);
    mini_ram(b, m, psz, at);
    at->dev = b->len;
    sb_u8(b, 0x04);
    sb_u32(b, MINI_DEV);
    sb_str8(b, "timer");
    sb_u32(b, 0);
    sb_u32(b, 2);
    sb_u64(b, 0x0123456789abcdefULL);
    sb_u8(b, 0x7E);
    sb_u32(b, MINI_DEV);
    sb_u8(b, 0x00);
    int n = snprintf(json, sizeof json, "{\"page_size\":%llu,\"devices\":[{\"name\":"
                     "\"timer\",\"instance_id\":0,\"version\":2}]}", (ull)psz);
    sb_u8(b, 0x06);
    sb_u32(b, (uint32_t)n);
    sb_put(b, json, (size_t)n);
}

/* The hooks see the stream tile by tile: every byte once, in order. */
struct tiles {
    const unsigned char *src;
    size_t len, pos, gaps, switchovers;
};

static int tl_bytes(void *ctx, const unsigned char *p, size_t n)
{
    struct tiles *t = ctx;
    if (t->pos + n > t->len || memcmp(p, t->src + t->pos, n))
        t->gaps++;
    t->pos += n;
    return 0;
}

static int tl_page(void *ctx, const struct qs_info *info, const struct qs_page *pg)
{
    struct tiles *t = ctx;
    (void)info;
    if (pg->offset != t->pos)
        t->gaps++;
    t->pos = (size_t)(pg->offset + pg->record_bytes);
    return 0;
}

static int tl_item(void *ctx, unsigned type, uint64_t at, unsigned cmd)
{
    struct tiles *t = ctx;
    if (at >= t->len || t->src[at] != type)
        t->gaps++;
    if (type == 0x08 && cmd == 11)
        t->switchovers++;
    return 0;
}

/* Scan with the tiling hooks in odd pieces: rc; *t says what they saw. */
static int mini_hooked(const struct sb *b, struct tiles *t, char *err, size_t errlen)
{
    struct qs_hooks h = { .ctx = t, .bytes = tl_bytes, .page = tl_page, .item = tl_item };
    struct mreader m;
    struct qs_info in;
    *t = (struct tiles){ .src = b->p, .len = b->len };
    mr_init(&m, odd, NODD);
    mr_add(&m, b->p, b->len);
    int rc = qs_scan_hooks(mread, &m, 0, &h, &in, err, errlen);
    qs_info_free(&in);
    return rc;
}

static void mini_seed(const struct sb *b, const char *name)
{
    const char *dir = getenv("QS_SEED_DIR");
    char path[512];
    if (!dir)
        return;
    size_t k = (size_t)snprintf(path, sizeof path, "%s/", dir);
    for (; *name && k + 1 < sizeof path; name++)
        path[k++] = isalnum((unsigned char)*name) ? *name : '-';
    path[k] = '\0';
    FILE *f = fopen(path, "wb");
    if (!f || fputc(0xFF, f) == EOF || fwrite(b->p, 1, b->len, f) != b->len || fclose(f)) {
        perror(path);
        exit(2);
    }
}

/* Refused with exactly `want`, whole, in odd pieces and through hooks. */
static void mini_refused(const struct sb *b, const char *want, const char *what)
{
    struct qs_info in;
    struct tiles t;
    char e1[512], e2[512], e3[512];
    int rc1 = scan_mem(b->p, b->len, NULL, 0, 0, &in, e1, sizeof e1);
    qs_info_free(&in);
    int rc2 = scan_mem(b->p, b->len, odd, NODD, 0, &in, e2, sizeof e2);
    qs_info_free(&in);
    int rc3 = mini_hooked(b, &t, e3, sizeof e3);
    ok(rc1 == -1 && rc2 == -1 && rc3 == -1 && !strcmp(e1, want) && !strcmp(e2, want) &&
       !strcmp(e3, want), "%s: refused: \"%s\"", what, e1);
    if (strcmp(e1, want))
        printf("#   expected: \"%s\"\n", want);
    mini_seed(b, what);
}

/* Accepted whole, the same in odd pieces, and tiled by the hooks; *in
 * holds the description (call qs_info_free). */
static int mini_accepted(const struct sb *b, struct qs_info *in, struct tiles *t,
                         const char *what)
{
    struct qs_info in2;
    char e1[512], e2[512], e3[512];
    int rc1 = scan_mem(b->p, b->len, NULL, 0, 0, in, e1, sizeof e1);
    int rc2 = scan_mem(b->p, b->len, odd, NODD, 0, &in2, e2, sizeof e2);
    int rc3 = mini_hooked(b, t, e3, sizeof e3);
    int good = rc1 == 0 && rc2 == 0 && rc3 == 0 && same_info(in, &in2) && !t->gaps &&
               t->pos == b->len;
    ok(good, "%s: accepted%s%s%s%s", what, rc1 ? ": " : "", rc1 ? e1 : "",
       rc3 ? " / hooks: " : "", rc3 ? e3 : "");
    qs_info_free(&in2);
    mini_seed(b, what);
    return good ? 0 : -1;
}

/* The plain form (QEMU 7.2 to 10.2 without capabilities), and the
 * configuration's other subsections: target-page-bits and uuid. */
static void test_mini_plain(void)
{
    struct sb b;
    struct mini_at at;
    struct qs_info in;
    struct tiles t;

    mini_build(&b, &(struct mini){ 0 }, &at);
    if (mini_accepted(&b, &in, &t, "minimal stream") == 0) {
        const struct qs_ramblock *mem = find_block(&in, "mem"), *rom = find_block(&in, "pc.rom");
        ok(!strcmp(in.machine, "pc-q35-10.0") && in.nblocks == 2 && mem && rom &&
           mem->size == 8192 && mem->normal_pages == 1 && mem->zero_pages == 1 &&
           !rom->normal_pages && !rom->zero_pages && in.ram_total == 12288 &&
           in.has_vmdesc && in.ndevices == 1 && !in.multifd_flushes && !in.commands &&
           in.device_offset == at.dev && !in.capabilities[0],
           "minimal stream: two blocks, a PAGE and a ZERO record, one device");
    }
    qs_info_free(&in);

    mini_build(&b, &(struct mini){ .page_bits = 13, .uuid = true }, &at);
    if (mini_accepted(&b, &in, &t, "target-page-bits 13 and uuid") == 0)
        ok(in.page_size == 8192 && in.ram_total == 3 * 8192 && in.normal_pages == 1 &&
           in.zero_pages == 1, "target-page-bits 13: 8 KiB pages (%llu)", (ull)in.page_size);
    qs_info_free(&in);
}

/* RAM_SAVE_FLAG_MULTIFD_FLUSH (0x200, QEMU 8.1+, no payload): in the
 * setup (10.x syncs there), a PART and the END, each counted; it carries
 * no page (the pages of a multifd migration go on the other channels). */
static void test_mini_multifd(void)
{
    static const unsigned char flush[8] = { 0, 0, 0, 0, 0, 0, 0x02, 0x00 };
    static const unsigned char zero_then_flush[] = {
        0, 0, 0, 0, 0, 0, 0x10, 0x02, 3, 'm', 'e', 'm', 0,  /* ZERO mem @4096 */
        0, 0, 0, 0, 0, 0, 0x02, 0x00,
    };
    struct sb b;
    struct mini_at at;
    struct qs_info in;
    struct tiles t;

    mini_build(&b, &(struct mini){ .setup = BYTES(flush), .part = BYTES(zero_then_flush),
                                    .end = BYTES(flush) }, &at);
    if (mini_accepted(&b, &in, &t, "MULTIFD_FLUSH in the setup, a PART and the END") == 0)
        ok(in.multifd_flushes == 3 && in.normal_pages == 1 && in.zero_pages == 2 &&
           in.sections_part == 1, "MULTIFD_FLUSH: 3 counted, no page (%llu pages)",
           (ull)(in.normal_pages + in.zero_pages));
    qs_info_free(&in);

    static const unsigned char flush_eos[8] = { 0, 0, 0, 0, 0, 0, 0x02, 0x10 };
    static const unsigned char flush_cont[8] = { 0, 0, 0, 0, 0, 0, 0x02, 0x20 };
    char want[256];
    mini_build(&b, &(struct mini){ .part = BYTES(flush_eos) }, &at);
    snprintf(want, sizeof want, "ram record with flags 0x210 (EOS|MULTIFD_FLUSH) at offset "
             "%zu: QEMU writes one kind of record per header and its loader refuses this "
             "combination", at.part);
    mini_refused(&b, want, "MULTIFD_FLUSH with EOS");
    mini_build(&b, &(struct mini){ .part = BYTES(flush_cont) }, &at);
    snprintf(want, sizeof want, "ram flag CONTINUE without a page at offset %zu "
             "(flags 0x220, CONTINUE|MULTIFD_FLUSH)", at.part);
    mini_refused(&b, want, "MULTIFD_FLUSH with CONTINUE");
}

/* QEMU_VM_COMMAND: SWITCHOVER_START (11, QEMU 10.0+, before the
 * completion) passes and is kept; the lengths QEMU's loader checks. */
static void test_mini_commands(void)
{
    static const unsigned char sw[] = { 0x08, 0, 11, 0, 0 };
    static const unsigned char sw4[] = { 0x08, 0, 11, 0, 4, 0, 0, 0, 0 };
    static const unsigned char ping0[] = { 0x08, 0, 2, 0, 0 };
    static const unsigned char next[] = { 0x08, 0, 12, 0, 0 };
    struct sb b;
    struct mini_at at;
    struct qs_info in;
    struct tiles t;
    char want[256];

    mini_build(&b, &(struct mini){ .mid = BYTES(sw) }, &at);
    if (mini_accepted(&b, &in, &t, "SWITCHOVER_START before the ram END") == 0)
        ok(in.commands == 1 && t.switchovers == 1 && in.normal_pages == 1,
           "SWITCHOVER_START: one command, seen by the item hook, no page");
    qs_info_free(&in);

    mini_build(&b, &(struct mini){ .mid = BYTES(sw4) }, &at);
    snprintf(want, sizeof want, "command SWITCHOVER_START (11) at offset %zu with length 4: "
             "QEMU's loader takes only 0", at.mid);
    mini_refused(&b, want, "SWITCHOVER_START with a payload");
    mini_build(&b, &(struct mini){ .mid = BYTES(ping0) }, &at);
    snprintf(want, sizeof want, "command PING (2) at offset %zu with length 0: "
             "QEMU's loader takes only 4", at.mid);
    mini_refused(&b, want, "PING without its payload");
    mini_build(&b, &(struct mini){ .mid = BYTES(next) }, &at);
    snprintf(want, sizeof want, "unknown command 12 at offset %zu", at.mid);
    mini_refused(&b, want, "command 12 (none up to QEMU 10.2)");

    /* the return path's, postcopy's and COLO's, refused by name */
    static const char *const names[] = {
        NULL, "OPEN_RETURN_PATH", NULL, "POSTCOPY_ADVISE", "POSTCOPY_LISTEN",
        "POSTCOPY_RUN", "POSTCOPY_RAM_DISCARD", "PACKAGED", "ENABLE_COLO",
        "POSTCOPY_RESUME", "RECV_BITMAP",
    };
    for (unsigned c = 1; c <= 10; c++) {
        if (!names[c])
            continue;
        unsigned char cmd[] = { 0x08, 0, (unsigned char)c, 0, 0 };
        mini_build(&b, &(struct mini){ .pre = BYTES(cmd) }, &at);
        snprintf(want, sizeof want, "unsupported command %s (%u) at offset %zu: only "
                 "precopy streams without a return path are carried", names[c], c, at.pre);
        mini_refused(&b, want, names[c]);
    }
}

/* The configuration's capabilities: x-ignore-shared (block addresses in
 * the list) passes; mapped-ram (QEMU 9.0+) and any other name are refused
 * by name where they stand. */
static void test_mini_capabilities(void)
{
    struct sb b;
    struct mini_at at;
    struct qs_info in;
    struct tiles t;
    char want[320];

    mini_build(&b, &(struct mini){ .caps = { "x-ignore-shared" } }, &at);
    if (mini_accepted(&b, &in, &t, "x-ignore-shared, block addresses in the list") == 0)
        ok(!strcmp(in.capabilities, "x-ignore-shared") && in.nblocks == 2 &&
           in.ram_total == 12288 && in.normal_pages == 1,
           "x-ignore-shared: \"%s\", both blocks, the addresses skipped", in.capabilities);
    qs_info_free(&in);

    mini_build(&b, &(struct mini){ .caps = { "x-ignore-shared", "mapped-ram" } }, &at);
    snprintf(want, sizeof want, "unsupported: mapped-ram stream (QEMU 9.0+ capability "
             "mapped-ram) at offset %zu: its pages are not in the stream but at fixed "
             "offsets of the file QEMU wrote; load it with QEMU's own file: migration",
             at.caps[1]);
    mini_refused(&b, want, "mapped-ram capability");
    mini_build(&b, &(struct mini){ .caps = { "postcopy-ram" } }, &at);
    snprintf(want, sizeof want, "unsupported: unknown capability 'postcopy-ram' in the "
             "configuration at offset %zu (QEMU 7.2 to 10.2 send only x-ignore-shared and "
             "mapped-ram)", at.caps[0]);
    mini_refused(&b, want, "a capability QEMU does not validate");
}

/* Every other flag and combination of a RAM record header, in a PART. */
static void test_mini_flags(void)
{
    static const struct { unsigned char lo, hi; const char *want, *what; } v[] = {
        { 0x00, 0x00, "ram record without a flag at offset %zu (QEMU's loader refuses it)",
          "a record without a flag" },
        { 0x00, 0x20, "ram flag CONTINUE without a page at offset %zu", "CONTINUE alone" },
        { 0x00, 0x30, "ram flag CONTINUE without a page at offset %zu (flags 0x30, "
          "EOS|CONTINUE)", "CONTINUE with EOS" },
        { 0x00, 0x12, "ram record with flags 0x12 (ZERO|EOS) at offset %zu: QEMU writes one "
          "kind of record per header and its loader refuses this combination", "ZERO with EOS" },
        { 0x00, 0x0a, "ram record with flags 0xa (ZERO|PAGE) at offset %zu: QEMU writes one "
          "kind of record per header and its loader refuses this combination", "ZERO with PAGE" },
        { 0x00, 0x0c, "ram record with flags 0xc (MEM_SIZE|PAGE) at offset %zu: QEMU writes "
          "one kind of record per header and its loader refuses this combination",
          "MEM_SIZE with PAGE" },
        { 0x00, 0x80, "unsupported ram flag 0x80 (RAM_SAVE_FLAG_HOOK, RDMA) at offset %zu",
          "HOOK (RDMA)" },
        { 0x00, 0x01, "unsupported ram flag 0x01 (obsolete RAM_SAVE_FLAG_FULL) at offset %zu",
          "FULL (obsolete)" },
        { 0x04, 0x00, "unknown ram flags 0x400 at offset %zu", "flag 0x400" },
        { 0x08, 0x08, "unknown ram flags 0x800 at offset %zu", "flag 0x800 with PAGE" },
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        unsigned char rec[8] = { 0, 0, 0, 0, 0, 0, v[i].lo, v[i].hi };
        struct sb b;
        struct mini_at at;
        char want[320];
        mini_build(&b, &(struct mini){ .part = BYTES(rec) }, &at);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(want, sizeof want, v[i].want, at.part);
#pragma GCC diagnostic pop
        mini_refused(&b, want, v[i].what);
    }
}

/* The page records of the capabilities QEMU 7.2 to 9.0 still had:
 * XBZRLE and COMPRESS_PAGE pass the reader, counted apart (compaction
 * refuses them: mig-compact's own tests). */
static void test_mini_pages(void)
{
    static const unsigned char xb[] = {
        0, 0, 0, 0, 0, 0, 0x10, 0x40, 3, 'm', 'e', 'm', 1, 0, 4, 1, 2, 3, 4,
    };
    static const unsigned char zc[] = {
        0, 0, 0, 0, 0, 0, 0x11, 0x20, 0, 0, 0, 4, 1, 2, 3, 4,
    };
    struct sb b;
    struct mini_at at;
    struct qs_info in;
    struct tiles t;
    unsigned char both[sizeof xb + sizeof zc];

    memcpy(both, xb, sizeof xb);
    memcpy(both + sizeof xb, zc, sizeof zc);
    mini_build(&b, &(struct mini){ .part = BYTES(both) }, &at);
    if (mini_accepted(&b, &in, &t, "an XBZRLE and a COMPRESS_PAGE record") == 0)
        ok(in.other_pages == 2 && find_block(&in, "mem")->other_pages == 2,
           "XBZRLE and COMPRESS_PAGE: 2 other pages of 'mem'");
    qs_info_free(&in);
}

/* Sections: QEMU 8.0+'s early-setup device state (virtio-mem), and the
 * iterable modules other than ram, refused by name. */
static void test_mini_sections(void)
{
    struct sb b, early;
    struct mini_at at;
    char want[320];

    early.len = 0;
    sb_u8(&early, 0x04);
    sb_u32(&early, 4);
    sb_str8(&early, "virtio-mem-device-early");
    sb_u32(&early, 0);
    sb_u32(&early, 1);
    sb_u64(&early, 0);
    sb_u8(&early, 0x7E);
    sb_u32(&early, 4);
    mini_build(&b, &(struct mini){ .pre = { early.p, early.len } }, &at);
    snprintf(want, sizeof want, "unsupported: early-setup device state (section "
             "'virtio-mem-device-early', virtio-mem, QEMU 8.0+) at offset %zu: device "
             "sections carry no length, so the RAM records after it cannot be read", at.pre);
    mini_refused(&b, want, "virtio-mem early setup before the ram START");
    mini_build(&b, &(struct mini){ .mid = { early.p, early.len } }, &at);
    snprintf(want, sizeof want, "unsupported: early-setup device state (section "
             "'virtio-mem-device-early', virtio-mem, QEMU 8.0+) at offset %zu: device "
             "sections carry no length, so the RAM records after it cannot be read", at.mid);
    mini_refused(&b, want, "virtio-mem early setup after the ram START");

    static const char *const iterable[] = { "dirty-bitmap", "block", "spapr/htab" };
    for (size_t i = 0; i < 3; i++) {
        struct sb st = { .len = 0 };
        sb_u8(&st, 0x01);
        sb_u32(&st, 5);
        sb_str8(&st, iterable[i]);
        sb_u32(&st, 0);
        sb_u32(&st, 1);
        mini_build(&b, &(struct mini){ .pre = { st.p, st.len } }, &at);
        snprintf(want, sizeof want, "unsupported: iterable section '%s' at offset %zu (block "
                 "migration, dirty bitmaps or VFIO); only \"ram\" is read", iterable[i], at.pre);
        mini_refused(&b, want, iterable[i]);
    }
}

static void test_mini(void)
{
    test_mini_plain();
    test_mini_multifd();
    test_mini_commands();
    test_mini_capabilities();
    test_mini_flags();
    test_mini_pages();
    test_mini_sections();
}

int main(int argc, char **argv)
{
    struct qs_info in;
    off_t size;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MIGRATION-STREAM\n", argv[0]);
        return 2;
    }
    if (scan_file(argv[1], &in, &size) != 0)
        return tap_done();
    test_description(&in, size);
    test_pages(&in);
    test_sections(&in);
    load_file(argv[1], size);
    test_bounded_memory(&in);
    test_throughput(&in);
    test_pieces(&in);
    test_cuts(&in);
    test_page_cut(&in);
    test_no_vmdesc(&in);
    test_order(&in);
    test_corruptions(&in);
    test_read_error();
    test_hooks(&in);
    test_libvirt_good(&in);
    test_libvirt_bad();
    test_libvirt_cuts();
    test_libvirt_read();
    test_mini();
    qs_info_free(&in);
    free((void *)data);
    return tap_done();
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig.h - libmigchan, the migkit channel library.
 *
 * Everything that reads or writes a mig stream goes through here: the
 * layer header and frames (see mig-stream(5)), input detection, robust
 * descriptor I/O, and the driver that turns a filter -- a set of
 * callbacks that only transform bytes -- into a command.
 */
#ifndef MIG_H
#define MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>

#define MIG_VERSION_STRING "0.1.0"

/* ---- The format (mig-stream(5)) ---------------------------------------- */

#define MIG_MAGIC_0 0x89 /* not ASCII: text is never taken for a layer */
#define MIG_MAGIC_1 'M'
#define MIG_MAGIC_2 'I'
#define MIG_MAGIC_3 'G'
#define MIG_FORMAT_VERSION 1

#define MIG_HEADER_FIXED 12 /* magic, version, kind, flags, param length */
#define MIG_HEADER_CHECK 8  /* XXH3-64 of everything before it */
#define MIG_PARAMS_MAX 4096
#define MIG_FRAME_HEADER 8

/* Inner bytes carried by one frame, and the bound on any frame's payload:
 * a decoder never allocates more than this for a frame, whatever its
 * length field says. */
#define MIG_FRAME_DATA_DEFAULT (1u << 20)
#define MIG_FRAME_DATA_MAX (16u << 20)
#define MIG_FRAME_OVERHEAD_MAX (64u << 10)
#define MIG_FRAME_PAYLOAD_MAX (MIG_FRAME_DATA_MAX + MIG_FRAME_OVERHEAD_MAX)

#define MIG_META_KEY_MAX 64
#define MIG_META_VALUE_MAX (64u << 10)
#define MIG_META_TOTAL_MAX (1u << 20) /* all META of one layer */
#define MIG_END_TOTALS 16             /* u64 inner bytes, u64 frames */
#define MIG_TRAILER_MAX 4096

enum mig_frame_type {
	MIG_FRAME_DATA = 1,
	MIG_FRAME_META = 2,
	MIG_FRAME_END = 3,
};

/* Layer kinds are assigned by mig-stream(5) and never reused; each names
 * the command that peels it, so a decoder handed the wrong layer can say
 * what to run. The registry (channel/detect.c) and each filter's own
 * struct agree: tests/unit/test-channel.c holds one against the other. */
#define MIG_KIND_CHECKSUM 1
#define MIG_KIND_COMPRESS 2
#define MIG_KIND_ENCRYPT 3
#define MIG_KIND_ENVELOPE 4
#define MIG_KIND_DELTA 5    /* mig-delta: no filter of its own (a tool) */
struct mig_kind {
	uint8_t id;
	const char *name;   /* "checksum" */
	const char *peeler; /* "mig-checksum -d" */
	uint8_t frame_flags; /* the frame flag bits the kind defines */
};
const struct mig_kind *mig_kind_by_id(uint8_t id);

/* ---- Errors -------------------------------------------------------------- */

/* Exit codes of every migkit command (mig(7)). */
enum {
	MIG_EXIT_OK = 0,
	MIG_EXIT_DATA = 1,  /* input is not what was expected: corrupt,
			       truncated, wrong layer, failed check */
	MIG_EXIT_USAGE = 2, /* bad command line */
	MIG_EXIT_IO = 3,    /* read or write failed: broken pipe, disk */
	MIG_EXIT_SYS = 4,   /* out of memory, library failure */
};

struct mig_err {
	int code; /* one of MIG_EXIT_* */
	char msg[1024];
};

/* Set (or, with mig_err_prefix, prepend context to) an error; they return
 * -1 so that a failing path can end in `return mig_err_set(...)`. */
int mig_err_set(struct mig_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int mig_err_prefix(struct mig_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The running program's name ("mig-checksum") for messages. */
extern const char *mig_progname;
/* -v was given: filters may say more (the driver sets it). */
extern bool mig_verbose;
void mig_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The one way every command speaks about its command line: "PROG: what"
 * and "Try 'PROG --help'." in one message; returns MIG_EXIT_USAGE. */
int mig_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* getopt's '?' (with opterr 0): the option it stopped at, as a usage
 * error (argv is the one getopt was given); returns MIG_EXIT_USAGE. */
int mig_unknown_option(char **argv);
/* -V: "PROG (migkit) VERSION" on stdout; returns mig_stdout_finish(). */
int mig_print_version(void);

/* What an option parser returns: MIG_GO_ON when the command goes on, else
 * the exit status to leave with (-h and -V: 0; a usage error: 2). It is
 * not -1, which the library's functions return for an error. */
#define MIG_GO_ON 256

/* ---- Standard descriptors ---------------------------------------------- */

/* First thing in every main(): open /dev/null on each of descriptors 0, 1
 * and 2 that is closed, so that no file or socket opened later takes its
 * number; closed[i] (if not NULL) says which were. A closed stdin reads
 * as empty, a closed stderr loses messages. -1 if /dev/null cannot be
 * opened (exit MIG_EXIT_SYS: nothing can be written safely). */
int mig_stdfds_ensure(bool closed[3]);
/* Was stdout closed at start? Data meant for it would vanish, so a
 * command with data for stdout fails with MIG_EXIT_IO ("stdout: closed")
 * before it reads or writes anything: mig_stdout_check sets that error. */
bool mig_stdout_closed(void);
int mig_stdout_check(struct mig_err *e);
/* After printing to stdio's stdout (--help, --version, a report): flush;
 * MIG_EXIT_OK, or MIG_EXIT_IO after a message if it could not be written
 * or stdout was closed at start. */
int mig_stdout_finish(void);

/* ---- Byte helpers -------------------------------------------------------- */

static inline void mig_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void mig_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void mig_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t mig_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t mig_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static inline uint64_t mig_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ---- Descriptor I/O ------------------------------------------------------- */

/* Write all of it, across short writes, EINTR and EAGAIN (a descriptor
 * left non-blocking by whoever spawned us). */
int mig_write_all(int fd, const void *buf, size_t len, struct mig_err *e);
int mig_writev_all(int fd, const void *a, size_t alen, const void *b,
		   size_t blen, struct mig_err *e);
/* Read n bytes at offset at, across short reads and EINTR: n, fewer
 * where the file ends first, or -1 with errno set. */
ssize_t mig_pread_full(int fd, void *buf, size_t n, off_t at);
/* Ask for a large pipe buffer where fd is a pipe; silently keeps the
 * default where the system refuses. */
void mig_pipe_grow(int fd);

/* ---- Sources: where a decoder reads from --------------------------------- */

/* A source yields bytes in chunks; a layer source yields the verified inner
 * bytes of a layer read from another source, so layers stack. */
struct mig_src;

struct mig_src *mig_src_fd(int fd, const char *name);
/* While a fd source waits for input, watch out (a pipe or socket the
 * command writes to): if its reader goes, the source fails with "write to
 * stdout: Broken pipe" (MIG_EXIT_IO) at once, not at the next write. */
void mig_src_fd_watch(struct mig_src *s, int out);
/* Bytes in memory (not copied), handed out in chunks of at most `chunk`
 * bytes (0: all at once) -- small chunks test boundaries. */
struct mig_src *mig_src_mem(const void *p, size_t len, size_t chunk,
			    const char *name);
/* Bytes consumed from this source so far. */
uint64_t mig_src_offset(const struct mig_src *s);
const char *mig_src_name(const struct mig_src *s);
/* The next chunk of at most max bytes, consumed; valid until the next call.
 * Returns 1 (data), 0 (clean end), -1 (error in e). */
int mig_src_chunk(struct mig_src *s, const uint8_t **p, size_t *len,
		  size_t max, struct mig_err *e);
/* Read exactly len bytes unless the source ends first; returns the count
 * read (short only at the end), or -1. */
long mig_src_read(struct mig_src *s, void *buf, size_t len, struct mig_err *e);
/* The same, for an encoder's frame: once at least one byte is in, it also
 * returns when no more input comes for idle_ms milliseconds (0: never,
 * as mig_src_read), setting *idle; it waits in poll(), never spinning.
 * Before the first byte it waits as long as input takes. */
long mig_src_read_idle(struct mig_src *s, void *buf, size_t len, int idle_ms,
		       bool *idle, struct mig_err *e);
/* A source behind a read(2)-like callback, for readers that pull through
 * one (the QEMU stream reader, qs_scan): mig_src_pull_read(&pull, ...)
 * reads from pull.src; on failure it keeps the source's own error in
 * *pull.err, sets pull.failed and returns -1 with errno EIO. */
struct mig_src_pull {
	struct mig_src *src;
	struct mig_err *err;
	bool failed;
};
long mig_src_pull_read(void *pull, void *buf, size_t len);
/* Look at the first bytes without consuming them (n <= 64); *got may be
 * less than n only at the end of the source. */
int mig_src_peek(struct mig_src *s, size_t n, const uint8_t **p, size_t *got,
		 struct mig_err *e);
/* The same, not waiting more than idle_ms for the next byte once one is
 * in (*got may then be less than n before the end). */
int mig_src_peek_idle(struct mig_src *s, size_t n, int idle_ms,
		      const uint8_t **p, size_t *got, struct mig_err *e);
void mig_src_free(struct mig_src *s);

/* ---- What a stream is ---------------------------------------------------- */

enum mig_input_type {
	MIG_INPUT_EMPTY,
	MIG_INPUT_QEMU,   /* raw QEMU savevm stream: QEVM */
	MIG_INPUT_LAYER,  /* a mig layer */
	MIG_INPUT_UNKNOWN,
};

struct mig_detect {
	enum mig_input_type type;
	uint8_t kind;       /* MIG_INPUT_LAYER */
	uint8_t version;    /* MIG_INPUT_LAYER */
	uint8_t head[8];    /* first bytes, for messages */
	size_t headlen;
};
int mig_detect(struct mig_src *s, struct mig_detect *d, struct mig_err *e);
/* The same for an encoder that must not hold a short message: once the
 * first byte is in, it waits at most idle_ms for each further one (more
 * only while the bytes could still start a layer); 0 waits as mig_detect. */
int mig_detect_idle(struct mig_src *s, struct mig_detect *d, int idle_ms,
		    struct mig_err *e);
/* "a raw QEMU stream", "a checksum layer", "not a mig stream (starts 41 42..)" */
void mig_detect_describe(const struct mig_detect *d, char *buf, size_t len);

/* ---- META ---------------------------------------------------------------- */

struct mig_meta {
	char *key;
	char *value;
	size_t value_len;
};
/* Check "KEY=VALUE" (as given by --meta or found in a META frame). */
int mig_meta_parse(const uint8_t *p, size_t len, struct mig_meta *m,
		   struct mig_err *e);
void mig_meta_clear(struct mig_meta *m);

/* ---- Filters ------------------------------------------------------------- */

struct mig_frame {
	uint8_t type;   /* MIG_FRAME_* */
	uint8_t flags;  /* the layer's own per-frame flags */
	uint64_t index; /* 0 for the first frame after the header */
	const uint8_t *data;
	size_t len;
};

enum mig_option_mode {
	MIG_OPT_BOTH,   /* encoding and decoding (a key) */
	MIG_OPT_ENCODE, /* encoding only (a level): refused with -d */
	MIG_OPT_DECODE, /* decoding only (an identity): refused without -d */
};

struct mig_option {
	const char *long_name;
	int short_name; /* 0 for long only */
	const char *arg; /* name of its argument, NULL for a flag */
	const char *help;
	enum mig_option_mode mode;
};

/*
 * The filter protocol. A filter is a transformation and nothing else: the
 * library reads and writes, frames, counts, orders, runs threads, handles
 * options and reports errors. What happens to a layer, in order:
 *
 *  1. create() makes the filter's state st; set_option() is called for
 *     each of its options on the command line (options: NULL for none).
 *  2. Encoding: encode_init(st, args, params) writes the layer's
 *     parameters (at most MIG_PARAMS_MAX bytes) into the header; args say
 *     the most inner bytes a DATA frame will carry (which the filter may
 *     change, where the user did not give it), the threads asked for (-T)
 *     and whether the output is a regular file.
 *     Decoding: decode_init(st, params) reads them and refuses what it
 *     cannot decode; nothing of the layer is output before it returns 0.
 *     After either, max_threads(st), if the filter has it, may limit how
 *     many frames are worked on at once: 1 for a layer whose frames depend
 *     on the ones before (a compression stream spanning frames); the
 *     filter may then use threads of its own.
 *  3. Every frame -- DATA, META and END alike, so a layer protects (or
 *     hides) all of its frames the same way -- passes through encode() or
 *     decode(), given a frame context: st itself, or, for a filter with
 *     frame_ctx_create, one context of several made from st. Having frame
 *     contexts declares that frames are independent: the library then
 *     works on several at once on -T threads, one context per frame in
 *     flight, and still writes them in order; such a filter must not
 *     change st in encode() or decode().
 *     Encoding: in->data has `tailroom` writable bytes after in->len (at
 *     least max_overhead), so a filter that appends (a tag) can do it in
 *     place and point *out at in->data; otherwise *out points into its
 *     context, valid until that context's next use. *flags are the frame's
 *     flags, only bits of frame_flags. Decoding: in->data is the frame's
 *     own buffer, which decode may change in place; *out points into it or
 *     into the context. The library has already refused flag
 *     bits outside frame_flags, and writes nothing of a frame until
 *     decode() returned 0 for it.
 *  4. END: encode_trailer() may add bytes after END's totals (at most
 *     MIG_TRAILER_MAX), which decode_trailer() checks once all frames were
 *     decoded; a filter without them has no trailer, and the library then
 *     refuses one.
 *  5. destroy(st), after the frame contexts' frame_ctx_destroy().
 *
 * Mandatory: name, kind, summary, create, destroy, encode_init, encode,
 * decode_init, decode; the rest may be left out (NULL, 0).
 * mig_filter_check() refuses a filter that lacks one, naming it, before
 * the library calls anything. Callbacks return 0, or -1 after
 * mig_err_set().
 */
/* What encode_init is told of the layer it starts. */
struct mig_encode_args {
	size_t frame_size;     /* the most inner bytes of a DATA frame */
	bool frame_size_given; /* by the user: the filter must keep it */
	int threads;           /* -T */
	bool output_is_file;   /* a regular file (a checkpoint), not a pipe */
	/* seconds the layer's writes have taken so far, kept up to date by
	 * the library: time blocked on a full pipe is the link's back-pressure */
	const double *output_wait;
};

struct mig_filter {
	const char *name;         /* command is mig-NAME */
	const char *decode_name;  /* optional alias that decodes: mig-ALIAS */
	uint8_t kind;             /* MIG_KIND_*: the layer kind (mig-stream(5)) */
	const char *summary;      /* one line for --help */
	size_t max_overhead;      /* payload bytes a frame may grow by */
	size_t frame_size;        /* default inner bytes a frame; 0: 1 MiB */
	const struct mig_option *options; /* NULL-terminated; NULL: none */
	/* the frame flag bits the layer defines (those its encode may set),
	 * as mig-stream(5) and the kind's registry entry say; the library
	 * refuses a frame with any other bit set before decode sees it */
	uint8_t frame_flags;
	/* decoding needs a key from the command line: tools that have none
	 * (mig-info) leave such a layer closed */
	bool needs_key;

	void *(*create)(void);
	void (*destroy)(void *st);
	int (*set_option)(void *st, const struct mig_option *opt,
			  const char *arg, struct mig_err *e);

	/* independent frames (3.) */
	void *(*frame_ctx_create)(void *st, struct mig_err *e);
	void (*frame_ctx_destroy)(void *ctx);
	/* after init (2.): the most frames at once; NULL or 0: any */
	int (*max_threads)(const void *st);

	int (*encode_init)(void *st, struct mig_encode_args *args,
			   uint8_t *params, size_t *params_len, struct mig_err *e);
	int (*encode)(void *ctx, struct mig_frame *in, size_t tailroom,
		      const uint8_t **out, size_t *out_len, uint8_t *flags,
		      struct mig_err *e);
	int (*encode_trailer)(void *st, uint8_t *trailer, size_t *len,
			      struct mig_err *e);

	int (*decode_init)(void *st, const uint8_t *params, size_t params_len,
			   struct mig_err *e);
	int (*decode)(void *ctx, const struct mig_frame *in, const uint8_t **out,
		      size_t *out_len, struct mig_err *e);
	int (*decode_trailer)(void *st, const uint8_t *trailer, size_t len,
			      struct mig_err *e);
	/* the parameters in words, for -v and mig-info: "hash=xxh3" */
	void (*describe)(const uint8_t *params, size_t len, char *buf,
			 size_t buflen);
};

/* 0 if f has every mandatory member (above), and frame contexts in pairs;
 * else -1 with e naming what is missing. */
int mig_filter_check(const struct mig_filter *f, struct mig_err *e);

/* Each filter file ends with MIG_FILTER(name) { ... }; the command's main
 * (channel/main.c) is built against one of them. */
#define MIG_FILTER_SYMBOL(name) MIG_FILTER_SYMBOL_(name)
#define MIG_FILTER_SYMBOL_(name) mig_filter_##name
#define MIG_FILTER(name) const struct mig_filter MIG_FILTER_SYMBOL(name) =

/* ---- Layers -------------------------------------------------------------- */

struct mig_layer_totals {
	uint64_t bytes;      /* inner bytes */
	uint64_t frames;     /* frames before END */
	uint64_t data_frames;
	uint64_t encoded;    /* bytes of the layer itself, header to END */
};

/*
 * Peel one layer: returns a source whose bytes are the layer's inner
 * stream, each frame verified before any of its bytes is handed out. It
 * reports a missing END, data after END, and totals that disagree. With
 * threads > 1 and a filter with frame contexts, frames are decoded on that
 * many threads. The layer source owns neither inner nor st.
 */
struct mig_src *mig_src_layer(struct mig_src *inner, const struct mig_filter *f,
			      void *st, int threads, struct mig_err *e);
/*
 * The memory a decoder's frames in flight may take is bounded from the
 * command line (--memory), not by what a stream declares: each frame in
 * flight is counted at MIG_FRAME_MEMORY, the largest payload the format
 * allows plus the plain bytes it decodes to, so the bound holds for any
 * stream. With threads, 2 frames are in flight per thread; fewer threads
 * run where the bound does not allow as many. mig_src_layer() uses
 * MIG_MEMORY_DEFAULT: 1 GiB, 31 frames, 15 threads -- far more than a
 * pipe's throughput needs, and at most a few GiB for a whole pipeline of
 * decoders fed a hostile stream.
 */
#define MIG_FRAME_MEMORY (2 * (uint64_t)MIG_FRAME_PAYLOAD_MAX)
#define MIG_MEMORY_DEFAULT (1ull << 30)
/* The threads that fit in memory (at least 1: one frame at a time). */
int mig_layer_threads(int threads, uint64_t memory);
struct mig_src *mig_src_layer_bounded(struct mig_src *inner,
				      const struct mig_filter *f, void *st,
				      int threads, uint64_t memory,
				      struct mig_err *e);
/* After the header has been read (the first chunk, or mig_layer_open). */
int mig_layer_open(struct mig_src *layer, struct mig_err *e);
const uint8_t *mig_layer_params(const struct mig_src *layer, size_t *len);
size_t mig_layer_meta_count(const struct mig_src *layer);
const struct mig_meta *mig_layer_meta(const struct mig_src *layer, size_t i);
/* Totals so far; complete once the source has returned its clean end. */
void mig_layer_totals(const struct mig_src *layer, struct mig_layer_totals *t);

/* ---- Key files and locked memory (keyfile.c) --------------------------------- */

/* Every key file of migkit holds 32 bytes of one of these types
 * (mig-keygen(1)). */
#define MIG_KEYFILE_BYTES 32
enum mig_keyfile_type {
	MIG_KEYFILE_SYMMETRIC = 1, /* mig-encrypt -k (secret) */
	MIG_KEYFILE_IDENTITY,      /* mig-decrypt -i (secret) */
	MIG_KEYFILE_RECIPIENT,     /* mig-encrypt -r */
	MIG_KEYFILE_SIGNING,       /* --sign (secret) */
	MIG_KEYFILE_SIGNER,        /* --signer */
};
const char *mig_keyfile_type_name(enum mig_keyfile_type t);
/* Read a key file that must be of type want into key (32 bytes: locked
 * memory for a secret). A file of another type, or a secret that group or
 * others can read, is refused, saying why. */
int mig_keyfile_read(const char *path, enum mig_keyfile_type want,
		     uint8_t *key, struct mig_err *e);
/* A file of secrets (a key, a passphrase) that group or others can read
 * is refused, as OpenSSH refuses such a private key: 0, or -1 saying so. */
int mig_secret_file_check(int fd, const char *path, struct mig_err *e);
/* The file's text: "# migkit TYPE, ID_LABEL ID", then the key line.
 * Returns its length, or 0 if out is too small. */
size_t mig_keyfile_text(enum mig_keyfile_type t, const uint8_t *key,
			const char *id_label, const char *id, char *out,
			size_t len);
/* Memory for secrets: locked, guarded, wiped by sodium_free(). An mlock
 * that fails (RLIMIT_MEMLOCK) is said once, with -v (mig_locked_tell(),
 * again once -v is known). */
void *mig_locked_malloc(size_t n);
void mig_locked_tell(void);

/* ---- Signed envelopes ------------------------------------------------------ */

/*
 * A writer may sign the envelope it writes (mig-qemu seal --sign, mig-envelope
 * --sign) with an Ed25519 key of its own (mig-keygen --sign-pair): the
 * header (signer, creation time, stream id) is signed on its own, each META
 * frame with everything before it, END with the whole stream; so nothing a
 * reader acts on is unsigned when it acts. A reader names the signers it
 * trusts; an envelope unsigned or signed by anyone else is then refused at
 * its header, before any META is read (mig-stream(5), SECURITY.md).
 */
#define MIG_SIGN_PUBLIC_BYTES 32
#define MIG_SIGNER_ID_HEX 17 /* 16 hex digits and a NUL */
#define MIG_SIGNERS_MAX 16
#define MIG_STREAM_ID_BYTES 16

struct mig_signing_key; /* in locked memory */
int mig_signing_key_load(struct mig_signing_key **k, const char *path,
			 struct mig_err *e);
void mig_signing_key_free(struct mig_signing_key *k);
/* A new pair as the text of its two files (mig-keygen). */
int mig_signing_pair_text(char *secret, size_t slen, char *pub, size_t plen,
			  char *id_hex, struct mig_err *e);

struct mig_signers {
	size_t n;
	uint8_t pub[MIG_SIGNERS_MAX][MIG_SIGN_PUBLIC_BYTES];
};
/* Add the signer in a .pub file (mig-signer-1:). */
int mig_signers_add(struct mig_signers *s, const char *path, struct mig_err *e);
bool mig_signers_has(const struct mig_signers *s, const uint8_t *pub);
/* A short name for a signer: 16 hex digits of a hash of its key. */
void mig_signer_id(const uint8_t *pub, char *hex);

/* Encoding: sign the envelope with the key in keyfile. */
int mig_envelope_sign(void *st, const char *keyfile, struct mig_err *e);
/* Decoding: refuse an envelope not signed by one of trust (kept, not
 * copied); NULL accepts any, checking a signature against its own key. */
void mig_envelope_trust(void *st, const struct mig_signers *trust);
/* What the envelope's header said, once it has been read. */
struct mig_seal_sig {
	bool is_signed;
	bool trusted; /* by one of the signers given to mig_envelope_trust */
	uint8_t signer[MIG_SIGN_PUBLIC_BYTES];
	char signer_id[MIG_SIGNER_ID_HEX];
	int64_t created; /* the writer's clock, seconds since 1970 (UTC) */
	uint8_t stream_id[MIG_STREAM_ID_BYTES];
};
void mig_envelope_signature(const void *st, struct mig_seal_sig *sig);
/* How far the META of a layer (filter f, state st) can be believed, for
 * -v and mig-info: "authenticated" (a keyed layer opened it), "signed" (a
 * signed envelope of a trusted signer), "signed, signer not checked", or
 * "not authenticated" (anyone who can write the stream can write it). */
const char *mig_meta_label(const struct mig_filter *f, const void *st);

/*
 * Peel the envelopes (kind 4) that in starts with, at most
 * MIG_ENVELOPES_MAX nested ones. An envelope only carries META and marks
 * its stream complete, so every reader takes the envelopes off before
 * reading what they wrap: a decoder the layer it decodes, mig-recv the
 * QEMU stream. Returns the source inside them (in itself if there are
 * none), with *d telling what that source starts with. Their META is all
 * read by then: env->layer[i] (outermost first) is a layer source for
 * mig_layer_meta() and, once the inner source has ended, for
 * mig_layer_totals(). On error returns NULL with env holding the
 * envelopes whose META was read whole before it. Either way,
 * mig_envelopes_free() frees them; in stays the caller's. With
 * env->trust set, every envelope must be signed by one of those signers.
 */
#define MIG_ENVELOPES_MAX 8
struct mig_envelopes {
	const struct mig_signers *trust; /* set by the caller: see above */
	size_t n;
	struct mig_src *layer[MIG_ENVELOPES_MAX];
	void *st[MIG_ENVELOPES_MAX];
};
struct mig_src *mig_envelopes_peel(struct mig_src *in,
				   struct mig_envelopes *env,
				   struct mig_detect *d, struct mig_err *e);
void mig_envelopes_free(struct mig_envelopes *env);

/*
 * Write one layer: header, META frames, DATA frames, END. Frames hold at
 * most frame_size inner bytes (0: the filter's choice, else its default,
 * else 1 MiB; mig_sink_frame_size() tells which); with threads > 1 and a
 * filter with frame contexts, they are encoded on that many threads and
 * written in order.
 */
struct mig_sink;
struct mig_sink *mig_sink_open(int fd, const struct mig_filter *f, void *st,
			       size_t frame_size, int threads,
			       struct mig_err *e);
size_t mig_sink_frame_size(const struct mig_sink *k);
/* Write the frames from now on at r's rate (r is kept, not copied; NULL:
 * no limit); the header already written is counted against it. */
struct mig_rate;
void mig_sink_rate(struct mig_sink *k, struct mig_rate *r);
int mig_sink_meta(struct mig_sink *k, const char *key, const char *value,
		  struct mig_err *e);
/* The same from "KEY=VALUE" (--meta, a line of a META file): the one place
 * such a line is split. */
int mig_sink_meta_line(struct mig_sink *k, const char *kv, struct mig_err *e);
/* The buffer to fill with the next frame's bytes (at most frame_size);
 * may first write finished frames, so it can fail. */
uint8_t *mig_sink_buffer(struct mig_sink *k, struct mig_err *e);
/* Hand over the buffer from mig_sink_buffer, holding len bytes. */
int mig_sink_data(struct mig_sink *k, size_t len, struct mig_err *e);
/* n bytes into DATA frames of the frame size, for a writer that has no
 * frames of its own: a full frame goes at once, the last partial one
 * before anything else (META, END, a flush, mig_sink_buffer). */
int mig_sink_write(struct mig_sink *k, const void *p, size_t n,
		   struct mig_err *e);
/* Write every frame handed over, waiting for those still being encoded:
 * after a short frame the input was idle for (--flush-idle), so that it
 * goes out now rather than when later frames push it. */
int mig_sink_flush(struct mig_sink *k, struct mig_err *e);
int mig_sink_end(struct mig_sink *k, struct mig_err *e);
void mig_sink_totals(const struct mig_sink *k, struct mig_layer_totals *t);
void mig_sink_free(struct mig_sink *k);

/* Follow a layer's framing (any kind) to its END and the end of input,
 * without decoding: 0 if the layer is whole, else -1 saying why. */
struct mig_walk {
	uint8_t kind;
	uint64_t frames; /* before END */
};
int mig_layer_walk(struct mig_src *in, struct mig_walk *w, struct mig_err *e);

/* The same, with the bytes pushed in as they pass (see walk.c). */
struct mig_watch {
	int state;
	uint8_t buf[MIG_HEADER_FIXED + MIG_PARAMS_MAX + MIG_HEADER_CHECK];
	size_t have, need;
	uint64_t skip, offset, frame_at, frames;
	bool in_end;
	uint8_t kind;
	struct mig_err err;
};
void mig_watch_init(struct mig_watch *w);
/* -1 as soon as the framing is wrong (and from then on). */
int mig_watch_feed(struct mig_watch *w, const uint8_t *p, size_t n);
/* At the end of input: 0 if the layer ended with END, else why not. */
int mig_watch_end(struct mig_watch *w, struct mig_err *e);

/* ---- The command driver -------------------------------------------------- */

/* --flush-idle MS: an encoder writes a partial frame once its input has
 * been idle this long (mig(7)); 0 turns it off. */
#define MIG_FLUSH_IDLE_DEFAULT 10
#define MIG_FLUSH_IDLE_MAX 60000

/* main() of every filter command: options, encode or decode, errors. */
int mig_filter_main(const struct mig_filter *f, int argc, char **argv);

/* The monotonic clock: seconds (rates, --progress), and whole milliseconds
 * for the deadlines and poll() timeouts of the emulator glue. */
double mig_now(void);
long mig_now_ms(void);

/* Online CPUs: the default number of threads. */
int mig_cpus(void);
/* The CPUs the whole machine left idle since the mark, on average (0 to
 * mig_cpus()); -1 where unknown (no /proc/stat, or a first call, which
 * only sets the mark). The mark moves to now. (cpu.c) */
struct mig_cpu_mark {
	unsigned long long idle, total; /* jiffies */
	bool valid;
};
double mig_spare_cpus(struct mig_cpu_mark *m);
/* Memory for a codec's large tables and windows (zstd's ZSTD_customMem
 * takes the pair): blocks of MIG_HUGE_MIN bytes or more are mapped and
 * marked for transparent huge pages, others come from malloc; NULL when
 * out of memory. mig_huge_free takes NULL. (hugemem.c) */
#define MIG_HUGE_MIN (2u << 20)
void *mig_huge_alloc(void *opaque, size_t size);
void mig_huge_free(void *opaque, void *p);
/* Parse "1M", "64K", "4096" (bytes); -1 on garbage or overflow. */
int mig_parse_size(const char *s, uint64_t *out);
/* A whole number from LO (at least 0) to HI, digits only: no sign, space
 * or unit; -1 otherwise. */
long mig_parse_whole(const char *s, long lo, long hi);
/* "1.5 GiB" */
void mig_format_bytes(uint64_t n, char *buf, size_t len);

/* ---- --rate: the bytes a stage writes a second (rate.c) ----------------- */

/*
 * A token bucket: every filter's output (the driver), mig-tee's forwarded
 * stream and mig-ssh's sending share it. Its depth is 1/20 s of the rate,
 * at most 1 MiB, so no 1-second window goes more than 5 % over the rate;
 * writes longer than a quarter of the depth go in pieces. A rate of 0 (or a NULL
 * bucket) is no limit: the write functions then only write.
 */
struct mig_rate {
	double rate;   /* bytes a second; 0: no limit */
	double depth;  /* the most bytes that go at once */
	double tokens; /* bytes that may go now; below 0: owed */
	double last;   /* when tokens were counted (mig_now()) */
};
/* RATE as --rate takes it: mig_parse_size()'s sizes (K, M, G: 1024,
 * 1024^2, 1024^3; KiB and KB the same), above 0. -1 if not. */
int mig_rate_parse(const char *arg, uint64_t *bps);
/* The same for an option: MIG_GO_ON, or MIG_EXIT_USAGE after "PROG:
 * --rate: 'ARG' is not a rate ..." */
int mig_rate_option(const char *arg, uint64_t *bps);
/* bps 0: off. The bucket starts full. */
void mig_rate_init(struct mig_rate *r, uint64_t bps, double now);
bool mig_rate_on(const struct mig_rate *r);
/* The piece of want bytes that may go in one write: at most a quarter
 * of the depth (at least 1). */
size_t mig_rate_piece(const struct mig_rate *r, size_t want);
/* Count the tokens come in by now; the seconds until a piece of n bytes
 * (mig_rate_piece) may go, 0 if now. */
double mig_rate_delay(struct mig_rate *r, size_t n, double now);
/* n bytes went (or are owed: bytes written before the bucket was set). */
void mig_rate_take(struct mig_rate *r, size_t n);
/* Sleep until a piece of want bytes may go; returns the piece (want when
 * off). The caller takes what it then writes. */
size_t mig_rate_wait(struct mig_rate *r, size_t want);
/* mig_writev_all()/mig_write_all() at the rate. */
int mig_rate_writev(struct mig_rate *r, int fd, const void *a, size_t alen,
		    const void *b, size_t blen, struct mig_err *e);
int mig_rate_write(struct mig_rate *r, int fd, const void *buf, size_t len,
		   struct mig_err *e);

/* Bytes from a stream (META, names) as one printable line: printable
 * ASCII as is, a backslash as \\, every other byte as \xNN. A malloc'd
 * string (the caller frees it), or NULL when out of memory. */
char *mig_escape(const void *bytes, size_t len);

#endif

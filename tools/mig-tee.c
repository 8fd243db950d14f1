/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-tee - pass a stream on unchanged and keep a checkpoint of it that is
 * never mistaken for a complete one.
 *
 * The main thread forwards standard input to standard output and hands
 * each piece to a writer thread through a small ring (bounded memory), so
 * the disk never sits between QEMU and the rest of the pipeline unless
 * the ring is full. The writer copies the pieces into an unnamed file in
 * FILE's directory (O_TMPFILE) while following the stream's structure:
 * a mig layer must reach its END frame, a raw QEMU stream its EOF marker
 * and device description. Only then is the file linked in as FILE. A
 * truncated stream, a write error or a signal leaves no FILE, and, the
 * file having no name until then, no temporary either.
 *
 * FILE is only ever a regular file (or a name not yet taken): a FIFO, a
 * device, a directory or a socket is refused, never replaced. A
 * checkpoint that cannot be written (read-only or full file system,
 * missing directory, no permission, the file size limit) is dropped with
 * a warning while the stream goes on, unless --required.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../channel/source-private.h"
#include "../channel/progress.h"
#include "mig.h"
#include "qemu-compact.h"
#include "libvirt-image.h"
#include "qemu-stream.h"
#include "tagged.h"

#define CHUNK (1u << 20)
#define RING 8 /* pieces in flight between forwarding and the disk */

struct tee {
	/* options */
	const char *path;     /* FILE, or the regular file its symlink names */
	char *resolved;       /* that file's path, when FILE is a symlink */
	bool fsync, required, forward, verbose, quiet, progress;
	bool splice; /* stdin and stdout are pipes: forward with tee(2) */
	uint64_t rate_bps; /* --rate, 0: none */
	struct mig_rate rate; /* on the pieces forwarded (or, -o, taken in) */
	bool compact; /* --compact: FILE gets the stream compacted */
	const char **meta;
	size_t nmeta;

	/* the ring: main fills at head, the writer takes at tail */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf[RING];
	size_t len[RING];
	size_t head, tail, count;
	bool eof;

	/* the checkpoint, owned by the writer thread until it ends */
	int fd;
	char *tmpname; /* only without O_TMPFILE */
	struct mig_sink *env;
	void *env_st;
	bool linked;          /* FILE has been given its name */
	bool abandoned;       /* a write failed: no checkpoint */
	bool warned;          /* and the user was told at start */
	struct mig_err werr;  /* why */
	bool complete;        /* the stream ended where its writer ended it */
	struct mig_err verr;  /* why not */
	char what[128];       /* what the stream was, for -v */
	uint64_t written;

	/* --compact: the whole copy (t->fd, unnamed) is the source of the
	 * pages; the other bytes wait in raw_fd; FILE gets the compacted one */
	int raw_fd;
	struct qc qc;
	struct qs_info info;
	uint64_t compacted;
};

/* ---- The writer's view of the ring, as a source ------------------------- */

struct ring_src {
	struct mig_src base;
	struct tee *t;
	bool holding; /* the piece handed out last is still in the ring */
};

static void abandon(struct tee *t, const struct mig_err *e)
{
	if (t->abandoned)
		return;
	t->abandoned = true;
	t->werr = *e;
	pthread_mutex_lock(&t->mu);
	pthread_cond_broadcast(&t->cv); /* --required: main stops at once */
	pthread_mutex_unlock(&t->mu);
}

static int copy_out(struct tee *t, const uint8_t *p, size_t n)
{
	struct mig_err e = { 0 };

	if (t->abandoned)
		return 0;
	if (t->env) {
		uint8_t *frame = mig_sink_buffer(t->env, &e);
		if (frame) {
			memcpy(frame, p, n);
			mig_sink_data(t->env, n, &e);
		}
	} else {
		mig_write_all(t->fd, p, n, &e);
	}
	if (e.code) {
		/* the sink says "write to output: ..." */
		abandon(t, &e);
		return -1;
	}
	t->written += n;
	return 0;
}

static int ring_next(struct mig_src *s, const uint8_t **p, size_t *len,
		     struct mig_err *e)
{
	struct ring_src *r = (struct ring_src *)s;
	struct tee *t = r->t;

	(void)e;
	pthread_mutex_lock(&t->mu);
	if (r->holding) {
		t->tail = (t->tail + 1) % RING;
		t->count--;
		r->holding = false;
		pthread_cond_broadcast(&t->cv);
	}
	while (t->count == 0 && !t->eof)
		pthread_cond_wait(&t->cv, &t->mu);
	if (t->count == 0) {
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	*p = t->buf[t->tail];
	*len = t->len[t->tail];
	r->holding = true;
	pthread_mutex_unlock(&t->mu);
	copy_out(t, *p, *len);
	return 1;
}

static void ring_free(struct mig_src *s)
{
	(void)s;
}

static const struct mig_src_ops ring_ops = { .next = ring_next, .free = ring_free };

/* Follow the stream's structure to its end; the verdict goes in t. */
static void check_stream(struct tee *t, struct mig_src *src)
{
	struct mig_detect d;
	struct mig_err *e = &t->verr;

	if (mig_detect(src, &d, e) < 0)
		return;
	mig_detect_describe(&d, t->what, sizeof t->what);
	/* a raw libvirt save image: the reader skips (and keeps) its header */
	if (d.type == MIG_INPUT_UNKNOWN && lv_is_image(d.head, d.headlen))
		d.type = MIG_INPUT_QEMU;
	if (t->compact && d.type != MIG_INPUT_QEMU) {
		mig_err_set(e, MIG_EXIT_DATA, "--compact: %s, not a raw QEMU "
			    "stream", t->what);
	} else if (d.type == MIG_INPUT_LAYER && d.headlen >= 6 &&
	    d.version == MIG_FORMAT_VERSION) {
		struct mig_walk w;
		t->complete = mig_layer_walk(src, &w, e) == 0;
	} else if (d.type == MIG_INPUT_QEMU) {
		struct mig_err re;
		struct mig_src_pull p = { src, &re, false };
		char msg[512];
		t->complete = qs_scan_hooks(mig_src_pull_read, &p, 0,
					    t->compact ? &t->qc.hooks : NULL,
					    &t->info, msg, sizeof msg) == 0;
		if (!t->complete && t->qc.code)
			mig_err_set(e, MIG_EXIT_DATA, "cannot compact: %s", t->qc.why);
		else if (!t->complete)
			mig_err_set(e, MIG_EXIT_DATA, "QEMU stream: %s", msg);
		else if (t->compact && qc_check(&t->qc, &t->info) < 0) {
			t->complete = false;
			mig_err_set(e, MIG_EXIT_DATA, "cannot compact: %s", t->qc.why);
		}
	} else if (d.type == MIG_INPUT_EMPTY) {
		mig_err_set(e, MIG_EXIT_DATA, "the stream is empty");
	} else if (d.type == MIG_INPUT_LAYER) {
		mig_err_set(e, MIG_EXIT_DATA, "%s: cannot tell whether it is "
			    "complete", t->what);
	} else {
		mig_err_set(e, MIG_EXIT_DATA, "input is %s: cannot tell "
			    "whether it is complete", t->what);
	}
}

static void *writer(void *arg)
{
	struct tee *t = arg;
	struct ring_src r = { .t = t };
	const uint8_t *p;
	size_t n;
	struct mig_err e;

	mig_src_init(&r.base, &ring_ops, t->path);
	check_stream(t, &r.base);
	/* whatever the verdict, take everything so forwarding never waits */
	while (mig_src_chunk(&r.base, &p, &n, SIZE_MAX, &e) > 0)
		t->complete = false; /* the checks stop only at an error */
	if (t->complete && t->env && !t->abandoned && mig_sink_end(t->env, &e) < 0)
		abandon(t, &e);
	return NULL;
}

/* ---- The checkpoint file ------------------------------------------------- */

/*
 * A named temporary (the fallback without O_TMPFILE, or the moment between
 * linking the finished file and renaming it) is removed by whatever
 * catchable signal ends the program. Only a name this program created is
 * ever stored here, and it is set and cleared with signals blocked, so the
 * handler never unlinks a name that is not, or no longer, ours.
 */
static char *volatile tmp_path;

static void on_signal(int sig)
{
	char *p = tmp_path;

	if (p)
		unlink(p);
	raise(sig); /* SA_RESETHAND: the default action, now */
}

/* Every signal whose default ends the process; PIPE and XFSZ are ignored
 * instead (a closed pipe and the file size limit are errors of a write). */
static const int fatal_signals[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE,
	SIGSEGV, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU,
	SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSYS,
};

static void catch_one(int sig)
{
	struct sigaction sa, old;

	/* one ignored by whoever started us (nohup, a shell's background
	 * job) stays ignored, and a sanitizer's handler stays in place */
	if (sigaction(sig, NULL, &old) < 0 || old.sa_handler != SIG_DFL ||
	    (old.sa_flags & SA_SIGINFO))
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigfillset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void catch_signals(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN); /* EFBIG instead: a checkpoint too big */
	for (size_t i = 0; i < sizeof fatal_signals / sizeof *fatal_signals; i++)
		catch_one(fatal_signals[i]);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		catch_one(sig);
}

/* Run with every signal blocked (only the main thread is running). */
static void block_signals(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

static void unblock_signals(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device" :
	       S_ISBLK(m) ? "a block device" : S_ISDIR(m) ? "a directory" :
	       S_ISSOCK(m) ? "a socket" : S_ISLNK(m) ? "a symbolic link" :
	       "not a regular file";
}

/*
 * FILE must be a regular file or a name not taken: mig-tee replaces it by
 * renaming a new file over it, which would silently turn a FIFO or a
 * device into a regular file. A symbolic link to a regular file stays a
 * link: the file it names is replaced. Returns MIG_GO_ON, or an exit
 * status after a message.
 */
static int check_target(struct tee *t)
{
	struct stat st;
	size_t n = strlen(t->path);

	if (t->path[n - 1] == '/') {
		mig_warn("%s: names a directory; give the checkpoint's file name",
			 t->path);
		return MIG_EXIT_USAGE;
	}
	if (lstat(t->path, &st) < 0)
		return MIG_GO_ON; /* missing, or unreachable: open_checkpoint says */
	if (S_ISLNK(st.st_mode)) {
		if (stat(t->path, &st) < 0) {
			mig_warn("%s: a symbolic link to a missing file (%s); name "
				 "the checkpoint itself", t->path, strerror(errno));
			return MIG_EXIT_USAGE;
		}
		if (S_ISREG(st.st_mode)) {
			if (!(t->resolved = realpath(t->path, NULL))) {
				mig_warn("%s: %s", t->path, strerror(errno));
				return MIG_EXIT_IO;
			}
			t->path = t->resolved;
			return MIG_GO_ON;
		}
	}
	if (S_ISREG(st.st_mode))
		return MIG_GO_ON;
	mig_warn("%s: is %s: a checkpoint is kept only in a regular file (it is "
		 "written aside, then renamed over FILE); %s", t->path,
		 file_kind(st.st_mode), S_ISDIR(st.st_mode) ?
		 "name a file in it" : "to copy the stream into it, put tee(1) "
		 "in the pipeline");
	return MIG_EXIT_USAGE;
}

/* --compact: the other bytes' file, next to FILE, and the compactor,
 * whose pages are read back from the whole copy. On failure t->fd is
 * closed and -1, errno set. */
static void open_compaction(struct tee *t, const char *dir)
{
	t->raw_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (t->raw_fd >= 0 && qc_init(&t->qc, -1, t->raw_fd) < 0)
		errno = ENOMEM;
	else if (t->raw_fd >= 0) {
		qc_use_source(&t->qc, t->fd, 0);
		return;
	}
	int err = errno;
	close(t->fd);
	t->fd = -1;
	errno = err;
}

static int open_checkpoint(struct tee *t)
{
	char *copy = strdup(t->path);
	const char *dir = copy ? dirname(copy) : ".";
	sigset_t old;

	/* Unnamed until complete: nothing to clean up after any death. */
	t->fd = open(dir, O_TMPFILE | (t->compact ? O_RDWR : O_WRONLY) |
		     O_CLOEXEC, 0600);
	if (t->fd >= 0 && t->compact)
		open_compaction(t, dir);
	if (t->fd < 0 && !t->compact && (errno == EOPNOTSUPP || errno == EISDIR ||
			  errno == EINVAL)) {
		if (asprintf(&t->tmpname, "%s/.mig-tee.XXXXXX", dir) < 0) {
			t->tmpname = NULL;
			errno = ENOMEM;
		} else {
			/* mkstemp: O_EXCL on a random name, never one of another */
			block_signals(&old);
			if ((t->fd = mkstemp(t->tmpname)) >= 0)
				tmp_path = t->tmpname;
			int e = errno;
			unblock_signals(&old);
			errno = e;
		}
	}
	free(copy);
	return t->fd < 0 ? -1 : 0;
}

static void discard_checkpoint(struct tee *t)
{
	sigset_t old;

	block_signals(&old);
	if (t->tmpname && !t->linked && tmp_path) {
		unlink(t->tmpname);
		tmp_path = NULL;
	}
	unblock_signals(&old);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* Link the unnamed file under a fresh random name in dir: linkat never
 * replaces a name, so one taken (EEXIST) only means another draw. */
static char *link_tmpfile(struct tee *t, const char *dir, struct mig_err *e)
{
	char proc[64], *tmp;
	sigset_t old;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", t->fd);
	for (int tries = 0; tries < 100; tries++) {
		uint64_t r;
		if (getrandom(&r, sizeof r, 0) != sizeof r)
			r = (uint64_t)getpid() << 32 ^ (uint64_t)tries;
		if (asprintf(&tmp, "%s/.mig-tee.%016llx", dir,
			     (unsigned long long)r) < 0) {
			mig_err_set(e, MIG_EXIT_SYS, "out of memory");
			return NULL;
		}
		block_signals(&old);
		int rc = linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW);
		int err = errno;
		if (rc == 0)
			tmp_path = tmp;
		unblock_signals(&old);
		if (rc == 0)
			return tmp;
		free(tmp);
		if (err != EEXIST) {
			mig_err_set(e, MIG_EXIT_IO, "link: %s", strerror(err));
			return NULL;
		}
	}
	mig_err_set(e, MIG_EXIT_IO, "link: no free temporary name");
	return NULL;
}

/* The name may have been taken meanwhile by something that is not a
 * regular file: that is not replaced either. */
static int still_replaceable(const struct tee *t, struct mig_err *e)
{
	struct stat st;

	if (lstat(t->path, &st) < 0 || S_ISREG(st.st_mode))
		return 0;
	return mig_err_set(e, MIG_EXIT_IO, "is now %s, which is not replaced",
			   file_kind(st.st_mode));
}

/* The temporary becomes FILE in one step that cannot replace anything
 * but a regular file, whatever appears under the name meanwhile: where
 * the name is free, a rename that refuses to replace; where it is taken,
 * an exchange, after which what was there (now under tmp) is checked and
 * swapped back unless it is a regular file. Returns 0, 1 where the file
 * system has no renameat2() flags, or -1 with *e. */
static int swap_in(struct tee *t, const char *tmp, struct mig_err *e)
{
	struct stat st;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, t->path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EINVAL || errno == ENOSYS)
		return 1;
	if (errno != EEXIST)
		return mig_err_set(e, MIG_EXIT_IO, "rename: %s", strerror(errno));
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, t->path, RENAME_EXCHANGE) < 0)
		return errno == EINVAL || errno == ENOSYS ? 1 :
			mig_err_set(e, MIG_EXIT_IO, "rename: %s", strerror(errno));
	if (lstat(tmp, &st) == 0 && !S_ISREG(st.st_mode)) {
		renameat2(AT_FDCWD, tmp, AT_FDCWD, t->path, RENAME_EXCHANGE);
		return mig_err_set(e, MIG_EXIT_IO, "is now %s, which is not "
				   "replaced", file_kind(st.st_mode));
	}
	unlink(tmp); /* the file it replaced */
	return 0;
}

/* The temporary becomes FILE; on failure it is removed. */
static int rename_checkpoint(struct tee *t, char *tmp, struct mig_err *e)
{
	sigset_t old;
	int rc;

	block_signals(&old);
	rc = swap_in(t, tmp, e);
	if (rc == 1) { /* no flags here: check, then rename (a small race) */
		rc = still_replaceable(t, e);
		if (rc == 0 && rename(tmp, t->path) < 0)
			rc = mig_err_set(e, MIG_EXIT_IO, "rename: %s", strerror(errno));
	}
	if (rc < 0)
		unlink(tmp);
	tmp_path = NULL;
	t->linked = rc == 0;
	unblock_signals(&old);
	return rc;
}

/* Give the complete checkpoint its name, durably with --fsync. */
static int link_checkpoint(struct tee *t, struct mig_err *e)
{
	char *copy = strdup(t->path), *tmp = NULL;
	const char *dir = copy ? dirname(copy) : ".";
	int rc = -1, dfd = -1;

	if (t->fsync && fsync(t->fd) < 0) {
		mig_err_set(e, MIG_EXIT_IO, "fsync: %s", strerror(errno));
		goto out;
	}
	tmp = t->tmpname ? t->tmpname : link_tmpfile(t, dir, e);
	if (!tmp || rename_checkpoint(t, tmp, e) < 0)
		goto out;
	if (t->fsync) {
		if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
		    fsync(dfd) < 0) {
			mig_err_set(e, MIG_EXIT_IO, "fsync of %s: %s", dir,
				    strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
	if (tmp != t->tmpname)
		free(tmp);
	free(copy);
	return rc;
}

/* ---- Forwarding ------------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-tee [options] FILE\n"
		"Copy standard input to standard output and keep a checkpoint "
		"in FILE.\nFILE appears only when the stream ended where its "
		"writer ended it (a mig\nlayer's END frame, a QEMU stream's "
		"end), never half written.\n\n"
		"  -o, --only           checkpoint only: nothing on standard "
		"output\n"
		"      --meta KEY=VALUE wrap the checkpoint in an envelope with "
		"this META\n"
		"      --compact        FILE gets a raw QEMU stream compacted: "
		"each RAM page once\n"
		"                       (mig-compact(1)); the whole copy waits "
		"in FILE's directory\n"
		"                       (with --meta, the envelope wraps the "
		"compacted stream)\n"
		"      --fsync          make FILE durable before exiting 0\n"
		"      --required       a failed checkpoint fails the pipeline "
		"(default: warn,\n"
		"                       keep forwarding)\n"
		"      --rate RATE      pass on at most RATE bytes a second "
		"(K, M, G: 1024^n)\n"
		"      --progress       show bytes and rate on stderr\n"
		"  -v, --verbose        say what was checkpointed\n"
		"  -q, --quiet          no warnings\n"
		"  -h, --help           this help\n"
		"  -V, --version        version\n\n"
		"Exit status: 0 success, 1 incomplete stream (no FILE), 2 usage, "
		"3 I/O error.\nSee mig-tee(1).\n");
}

/* --meta KEY=VALUE, checked now (the envelope is written later). Returns
 * 0, or -1 with a message. */
static int add_meta(struct tee *t, const char *arg)
{
	struct mig_meta m;
	struct mig_err e;

	if (mig_meta_parse((const uint8_t *)arg, strlen(arg), &m, &e) < 0) {
		mig_warn("--meta '%s': %s", arg, e.msg);
		return -1;
	}
	mig_meta_clear(&m);
	t->meta[t->nmeta++] = arg;
	return 0;
}

/* The one operand, FILE: MIG_GO_ON, or MIG_EXIT_USAGE after a message. */
static int take_file(struct tee *t, int argc, char **argv)
{
	if (argc - optind != 1)
		return mig_usage_error("%s", argc - optind
			? "one checkpoint FILE only"
			: "missing the checkpoint FILE");
	t->path = argv[optind];
	if (!*t->path)
		return mig_usage_error("the checkpoint FILE is an empty name");
	return MIG_GO_ON;
}

/* MIG_GO_ON, or the exit status to leave with. */
static int parse_args(struct tee *t, int argc, char **argv)
{
	enum { OPT_FSYNC = 256, OPT_REQUIRED, OPT_META, OPT_PROGRESS, OPT_RATE,
	       OPT_COMPACT };
	static const struct option lo[] = {
		{ "only", no_argument, NULL, 'o' },
		{ "fsync", no_argument, NULL, OPT_FSYNC },
		{ "required", no_argument, NULL, OPT_REQUIRED },
		{ "meta", required_argument, NULL, OPT_META },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "compact", no_argument, NULL, OPT_COMPACT },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	t->meta = calloc((size_t)argc, sizeof *t->meta);
	if (!t->meta) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	opterr = 0; /* our own messages, in one write */
	while ((c = getopt_long(argc, argv, "+ovqhV", lo, NULL)) != -1) {
		switch (c) {
		case 'o': t->forward = false; break;
		case OPT_FSYNC: t->fsync = true; break;
		case OPT_REQUIRED: t->required = true; break;
		case OPT_PROGRESS: t->progress = true; break;
		case OPT_RATE:
			if (mig_rate_option(optarg, &t->rate_bps) != MIG_GO_ON)
				return MIG_EXIT_USAGE;
			break;
		case OPT_COMPACT: t->compact = true; break;
		case 'v': t->verbose = true; break;
		case 'q': t->quiet = true; break;
		case 'h': usage(stdout); return mig_stdout_finish();
		case 'V': return mig_print_version();
		case OPT_META:
			if (add_meta(t, optarg) < 0)
				return MIG_EXIT_USAGE;
			break;
		default: return mig_unknown_option(argv);
		}
	}
	return take_file(t, argc, argv);
}

static int open_envelope(struct tee *t, struct mig_err *e)
{
	if (!t->nmeta)
		return 0;
	if (!(t->env_st = mig_filter_envelope.create()))
		return mig_err_set(e, MIG_EXIT_SYS, "out of memory");
	if (!(t->env = mig_sink_open(t->fd, &mig_filter_envelope, t->env_st,
				     CHUNK, 1, e)))
		return -1;
	for (size_t i = 0; i < t->nmeta; i++)
		if (mig_sink_meta_line(t->env, t->meta[i], e) < 0)
			return -1;
	return 0;
}

/* One piece of at most max bytes through user space: read it, write it
 * on. Returns its size, 0 at the end of input, -1 on error. */
static ssize_t forward_piece(const struct tee *t, uint8_t *buf, size_t max,
			     struct mig_err *e)
{
	ssize_t n;

	while ((n = read(0, buf, max)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return mig_err_set(e, MIG_EXIT_IO, "stdin: read: %s", strerror(errno));
	if (n > 0 && t->forward && mig_write_all(1, buf, (size_t)n, e) < 0)
		return -1;
	return n;
}

/* One piece between two pipes: tee(2) hands the pages on to stdout without
 * copying them, and only the checkpoint's copy is read. This saves one of
 * the three copies of every byte, which matters when mig-tee shares its
 * cores with the rest of a migration. */
static ssize_t forward_piece_tee(uint8_t *buf, size_t max, struct mig_err *e)
{
	ssize_t n, got = 0;

	while ((n = tee(0, 1, max, 0)) < 0) {
		/* a spawner may hand out non-blocking pipes: wait for both */
		struct pollfd in = { .fd = 0, .events = POLLIN },
			      out = { .fd = 1, .events = POLLOUT };
		if (errno == EAGAIN && poll(&in, 1, -1) >= 0 &&
		    poll(&out, 1, -1) >= 0)
			continue;
		if (errno != EINTR)
			return mig_err_set(e, MIG_EXIT_IO, "write to stdout: %s",
					   strerror(errno));
	}
	/* the bytes just duplicated are in stdin's pipe: take exactly them */
	while (got < n) {
		ssize_t r = read(0, buf + got, (size_t)(n - got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return mig_err_set(e, MIG_EXIT_IO, "stdin: read: %s",
					   r ? strerror(errno) : "end of input after tee");
		got += r;
	}
	return n;
}

/* Forward stdin to stdout, queueing each piece for the writer. Returns
 * an exit status, or MIG_GO_ON to go on to the checkpoint's verdict. */
static int forward(struct tee *t)
{
	struct mig_err e = { 0 };
	struct mig_progress pr;
	uint64_t total = 0;

	mig_progress_start(&pr, t->progress);
	for (;;) {
		pthread_mutex_lock(&t->mu);
		while (t->count == RING && !(t->required && t->abandoned))
			pthread_cond_wait(&t->cv, &t->mu);
		size_t slot = t->head;
		bool stop = t->required && t->abandoned;
		pthread_mutex_unlock(&t->mu);
		if (stop)
			break;

		/* --rate: a piece the bucket allows; the checkpoint gets the
		 * same pieces, so with -o they are what it is written at */
		size_t max = mig_rate_wait(&t->rate, CHUNK);
		ssize_t n = t->splice ? forward_piece_tee(t->buf[slot], max, &e)
				      : forward_piece(t, t->buf[slot], max, &e);
		if (n < 0) {
			mig_warn("%s", e.msg);
			return MIG_EXIT_IO;
		}
		if (n == 0)
			break;
		mig_rate_take(&t->rate, (size_t)n);
		total += (uint64_t)n;
		mig_progress_update(&pr, total, total);
		pthread_mutex_lock(&t->mu);
		t->len[slot] = (size_t)n;
		t->head = (t->head + 1) % RING;
		t->count++;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
	}
	mig_progress_done(&pr, total, total);
	return MIG_GO_ON;
}

/* Open the checkpoint. One that cannot be written is, without --required,
 * only a warning: the stream goes on without it. Returns an exit status,
 * or MIG_GO_ON. */
static int start_checkpoint(struct tee *t)
{
	struct mig_err e = { 0 };

	if (open_checkpoint(t) < 0)
		mig_err_set(&e, MIG_EXIT_IO, "%s", strerror(errno));
	else if (!t->compact && /* its envelope wraps the compacted one */
		 open_envelope(t, &e) < 0 && e.code != MIG_EXIT_IO)
		goto fail; /* out of memory: nothing goes on */
	if (!e.code)
		return MIG_GO_ON;
	if (t->required) {
		mig_warn("%s: %s", t->path, e.msg);
		return e.code;
	}
	if (!t->quiet)
		mig_warn("%s: %s; no checkpoint, the stream goes on", t->path,
			 e.msg);
	t->warned = true;
	abandon(t, &e);
	return MIG_GO_ON;
fail:
	mig_warn("%s: %s", t->path, e.msg);
	return e.code;
}

static bool is_pipe(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* Before anything is read: where the stream goes, the ring, FILE. Returns
 * MIG_GO_ON, or an exit status after a message. */
static int prepare(struct tee *t)
{
	struct mig_err e = { 0 };
	int rc;

	if (t->forward && mig_stdout_check(&e) < 0) {
		mig_warn("%s", e.msg); /* the stream would be lost */
		return e.code;
	}
	if (t->forward && isatty(1)) {
		mig_warn("refusing to write a stream to a terminal; redirect "
			 "standard output or use -o");
		return MIG_EXIT_USAGE;
	}
	for (int i = 0; i < RING; i++)
		if (!(t->buf[i] = malloc(CHUNK))) {
			mig_warn("out of memory");
			return MIG_EXIT_SYS;
		}
	if ((rc = check_target(t)) != MIG_GO_ON)
		return rc;
	return start_checkpoint(t);
}

/* --compact --meta: the compacted stream into the envelope, in frames. */
static int envelope_write(void *ctx, const void *p, size_t n, struct mig_err *e)
{
	struct tee *t = ctx;
	size_t frame = mig_sink_frame_size(t->env);

	while (n) {
		uint8_t *buf = mig_sink_buffer(t->env, e);
		size_t k = n < frame ? n : frame;
		if (!buf)
			return -1;
		memcpy(buf, p, k);
		if (mig_sink_data(t->env, k, e) < 0)
			return -1;
		p = (const uint8_t *)p + k;
		n -= k;
	}
	return 0;
}

/* --compact: the whole copy, verified, compacted into a new unnamed file
 * (in an envelope with --meta) that replaces it as the checkpoint to be
 * named; the whole copy, the pages' source, is closed once written. */
static int compact_checkpoint(struct tee *t, struct mig_err *e)
{
	char *copy = strdup(t->path);
	const char *dir = copy ? dirname(copy) : ".";
	int whole = t->fd, rc = -1;

	t->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	free(copy);
	if (t->fd < 0)
		mig_err_set(e, MIG_EXIT_IO, "%s", strerror(errno));
	else if (open_envelope(t, e) == 0 &&
		 (t->env ? qc_write_to(&t->qc, &t->info, envelope_write, t, e) :
			   qc_write(&t->qc, &t->info, t->fd, e)) == 0 &&
		 (!t->env || mig_sink_end(t->env, e) == 0))
		rc = 0;
	close(whole);
	if (rc < 0)
		return mig_err_prefix(e, "compacting: ");
	t->compacted = qc_output_bytes(&t->qc, &t->info);
	return 0;
}

/* The writer has all of the stream: say what became of the checkpoint and
 * give it its name if it is whole. Returns the exit status. */
static int verdict(struct tee *t)
{
	struct mig_err e = { 0 };

	if (t->abandoned) {
		if ((!t->quiet && !t->warned) || t->required)
			mig_warn("%s: %s; checkpoint abandoned%s", t->path,
				 t->werr.msg, t->required ? ""
					: ", the stream went on");
		return t->required ? MIG_EXIT_IO : MIG_EXIT_OK;
	}
	if (!t->complete) {
		mig_warn("%s: not written: %s", t->path, t->verr.msg);
		return MIG_EXIT_DATA;
	}
	if ((t->compact && compact_checkpoint(t, &e) < 0) ||
	    link_checkpoint(t, &e) < 0) {
		mig_warn("%s: %s; checkpoint abandoned", t->path, e.msg);
		return t->required ? MIG_EXIT_IO : MIG_EXIT_OK;
	}
	if (t->verbose) {
		char b[32], c[64] = "";
		mig_format_bytes(t->written, b, sizeof b);
		if (t->compact) {
			char h[32];
			mig_format_bytes(t->compacted, h, sizeof h);
			snprintf(c, sizeof c, ", compacted to %s", h);
		}
		mig_warn("%s: complete checkpoint of %s (%s)%s%s", t->path,
			 t->what, b, c, t->nmeta ? ", in an envelope with META" : "");
	}
	return MIG_EXIT_OK;
}

/* Forward the stream while the writer thread follows it into the
 * checkpoint, then the verdict. Returns the exit status. */
static int tee_stream(struct tee *t)
{
	pthread_t th;
	int rc;

	mig_pipe_grow(0);
	mig_pipe_grow(1);
	t->splice = t->forward && is_pipe(0) && is_pipe(1);
	mig_rate_init(&t->rate, t->rate_bps, mig_now());
	if (pthread_create(&th, NULL, writer, t) != 0) {
		mig_warn("cannot start the writer thread");
		return MIG_EXIT_SYS;
	}
	rc = forward(t);
	/* the writer may wait for pieces that never come: told eof, it
	 * drains and ends */
	pthread_mutex_lock(&t->mu);
	t->eof = true;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(th, NULL);
	if (rc != MIG_GO_ON)
		return rc; /* forwarding failed: the stream is lost, and so is FILE */
	return verdict(t);
}

static void free_tee(struct tee *t)
{
	discard_checkpoint(t);
	qc_free(&t->qc);
	qs_info_free(&t->info);
	if (t->raw_fd >= 0)
		close(t->raw_fd);
	mig_sink_free(t->env);
	if (t->env_st)
		mig_filter_envelope.destroy(t->env_st);
	for (int i = 0; i < RING; i++)
		free(t->buf[i]);
	free(t->meta);
	free(t->tmpname);
	free(t->resolved);
}

int main(int argc, char **argv)
{
	struct tee t = { .forward = true, .fd = -1, .raw_fd = -1 };
	int rc;

	mig_progname = "mig-tee";
	/* before anything is opened: a checkpoint opened as descriptor 1
	 * would receive the forwarded stream (channel/stdfds.c) */
	if (mig_stdfds_ensure(NULL) < 0)
		return MIG_EXIT_SYS;
	catch_signals();
	pthread_mutex_init(&t.mu, NULL);
	pthread_cond_init(&t.cv, NULL);
	rc = parse_args(&t, argc, argv);
	if (rc == MIG_GO_ON)
		rc = prepare(&t);
	if (rc == MIG_GO_ON)
		rc = tee_stream(&t);
	free_tee(&t);
	return rc;
}

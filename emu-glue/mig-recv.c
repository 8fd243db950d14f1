/*
 * mig-recv - the receiving end of a migration: start the emulator, feed it
 * the stream from standard input, and get out of the way once it has
 * loaded it, leaving the VM running, detached from the pipeline.
 *
 *   ... | mig-recv [options] EMULATOR ARGS... -incoming -
 *   ... | mig-recv [options] --from-stream [EMULATOR] [OVERRIDES...]
 *
 * The stream may be raw (QEVM) or wrapped in envelopes (kind 4, e.g. by
 * `mig-qemu seal`): mig-recv peels them, verifying each frame and the END
 * frame, and reads their META (the source's command line for
 * --from-stream). Other layers must be peeled by their decoders first.
 *
 * Nothing the emulator could complete the load with reaches it before the
 * end is verified: the last 16 MiB of the stream (which hold QEMU's EOF
 * marker and device description) are held back until the envelope's END
 * has been checked and the QEMU stream's own structure found complete
 * (emu-glue/qemu-stream.c). On any error the emulator is killed before
 * the pipe to it is closed.
 *
 * Processes: mig-recv forks a keeper, which starts the emulator (in its
 * own session, stdin /dev/null, output to the log) and waits for it. Both
 * the keeper and the emulator die with their parent (PR_SET_PDEATHSIG)
 * until mig-recv, on success, tells the keeper to detach: then neither
 * mig-recv's death nor the pipeline's end can touch the VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mig.h"
#include "qemu-stream.h"
#include "qmp.h"

#define HOLD_BACK QS_TAIL_MAX /* bytes kept from the emulator until the end */
#define INCOMING_FD 3

static bool verbose, quiet;

/* ---- argument vectors -------------------------------------------------- */

struct argv {
	char **v;
	size_t n, cap;
};

static void av_push(struct argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = realloc(a->v, a->cap * sizeof *a->v);
		if (!a->v) {
			mig_warn("out of memory");
			exit(MIG_EXIT_SYS);
		}
	}
	a->v[a->n++] = strdup(s);
	a->v[a->n] = NULL;
}

static void av_free(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* QEMU options that take no argument (the others take one). */
static bool qemu_flag(const char *opt)
{
	static const char *const flags[] = {
		"S", "s", "nodefaults", "no-user-config", "nodefconfig",
		"daemonize", "enable-kvm", "no-reboot", "no-shutdown",
		"nographic", "snapshot", "no-hpet", "no-acpi", "full-screen",
		"only-migratable", "no-fd-bootchk", "win2k-hack", "usb",
		"preconfig", "no-quit", "alt-grab", "ctrl-grab", "no-frame",
		"enable-fips", "version", "h", "help", "semihosting",
		"enable-sync-profile", "old-param", "mem-prealloc", "no-kvm",
		"xen-attach", "curses", NULL,
	};
	for (const char *const *f = flags; *f; f++)
		if (!strcmp(opt, *f))
			return true;
	return false;
}

/* "-opt" or "--opt" -> "opt"; NULL for a word that is not an option. */
static const char *opt_name(const char *w)
{
	if (w[0] != '-' || !w[1])
		return NULL;
	return w[1] == '-' ? w + 2 : w + 1;
}

/* The id=... of a -object/-device/... argument ("" if none); static buf. */
static const char *arg_id(const char *arg)
{
	static char id[256];
	const char *p = arg;

	id[0] = '\0';
	while (*p) {
		if (!strncmp(p, "id=", 3)) {
			size_t k = 0;
			for (p += 3; *p && k < sizeof id - 1; p++) {
				if (*p == ',') {
					if (p[1] != ',')
						break;
					p++;
				}
				id[k++] = *p;
			}
			id[k] = '\0';
			return id;
		}
		/* to the next option (",," is a comma inside a value) */
		while (*p && !(*p == ',' && p[1] != ',')) {
			if (*p == ',')
				p++;
			p++;
		}
		if (*p == ',')
			p++;
	}
	return id;
}

/* The value of KEY=... in a QEMU option string ("" if absent). */
static void arg_value(const char *arg, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	const char *p = arg;

	out[0] = '\0';
	while (*p) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t k = 0;
			for (p += kl + 1; *p && k < len - 1; p++) {
				if (*p == ',') {
					if (p[1] != ',')
						break;
					p++;
				}
				out[k++] = *p;
			}
			out[k] = '\0';
			return;
		}
		while (*p && !(*p == ',' && p[1] != ',')) {
			if (*p == ',')
				p++;
			p++;
		}
		if (*p == ',')
			p++;
	}
}

static bool keyed_option(const char *o)
{
	return !strcmp(o, "object") || !strcmp(o, "device") ||
	       !strcmp(o, "chardev") || !strcmp(o, "netdev") ||
	       !strcmp(o, "drive") || !strcmp(o, "blockdev");
}

/* One option of a command line: name and argument (NULL for a flag, or
 * for a word that is not an option: then name is NULL and arg the word). */
struct opt {
	const char *name, *word, *arg;
};

static size_t split_opts(char **v, size_t n, struct opt *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *o = opt_name(v[i]);
		out[k].word = v[i];
		out[k].name = o;
		out[k].arg = NULL;
		if (o && !qemu_flag(o) && i + 1 < n)
			out[k].arg = v[++i];
		k++;
	}
	return k;
}

/* Source options never carried over: they bind the source's own monitor,
 * incoming channel, pid file, or stop it at start. */
static bool dropped(const char *o)
{
	static const char *const drop[] = {
		"incoming", "qmp", "qmp-pretty", "monitor", "daemonize",
		"pidfile", "S", "loadvm", "mem-path", "mem-prealloc", NULL,
	};
	for (const char *const *d = drop; *d; d++)
		if (!strcmp(o, *d))
			return true;
	return false;
}

/*
 * The destination's command line from the source's (META qemu.argv) and
 * the user's overrides. Rules (mig-recv(1)):
 *  - dropped: -incoming, -qmp, -qmp-pretty, -monitor, -daemonize,
 *    -pidfile, -S, -loadvm, -mem-path, -mem-prealloc;
 *  - -object memory-backend-file,id=X,size=S,... becomes
 *    memory-backend-ram,id=X,size=S (same id, anonymous RAM);
 *  - an override of -object/-device/-chardev/-netdev/-drive/-blockdev
 *    with id=X replaces the source's option of that kind and id; without
 *    an id it is added;
 *  - any other override replaces every source option of that name;
 *  - the overrides come last.
 */
static int from_stream(json_t *src, char **over, size_t nover,
		       struct argv *out)
{
	size_t n = json_array_size(src);
	char **sv = calloc(n + 1, sizeof *sv);
	struct opt *so = calloc(n + 1, sizeof *so), *oo = calloc(nover + 1, sizeof *oo);

	if (!sv || !so || !oo) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(src, i));
		if (!s) {
			mig_warn("stdin: META qemu.argv is not an array of strings");
			goto out;
		}
		sv[i] = (char *)s;
	}
	if (n == 0) {
		mig_warn("stdin: META qemu.argv is empty");
		goto out;
	}
	/* the emulator: the user's, else the source's (by name if its path
	 * does not exist here) */
	size_t first = 0;
	if (nover && over[0][0] != '-') {
		av_push(out, over[0]);
		first = 1;
	} else if (access(sv[0], X_OK) == 0) {
		av_push(out, sv[0]);
	} else {
		const char *b = strrchr(sv[0], '/');
		av_push(out, b ? b + 1 : sv[0]);
	}
	size_t ns = split_opts(sv + 1, n - 1, so);
	size_t no = split_opts(over + first, nover - first, oo);

	for (size_t i = 0; i < ns; i++) {
		const struct opt *s = &so[i];
		bool keep = true;
		if (s->name && dropped(s->name))
			keep = false;
		for (size_t j = 0; keep && j < no; j++) {
			const struct opt *u = &oo[j];
			if (!s->name || !u->name || strcmp(s->name, u->name))
				continue;
			if (keyed_option(u->name)) {
				char sid[256];
				snprintf(sid, sizeof sid, "%s", s->arg ? arg_id(s->arg) : "");
				const char *uid = u->arg ? arg_id(u->arg) : "";
				if (*uid && !strcmp(sid, uid))
					keep = false;
			} else {
				keep = false;
			}
		}
		if (!keep)
			continue;
		if (s->name && !strcmp(s->name, "object") && s->arg &&
		    !strncmp(s->arg, "memory-backend-file,", 20)) {
			char size[64], nb[512];
			arg_value(s->arg, "size", size, sizeof size);
			snprintf(nb, sizeof nb, "memory-backend-ram,id=%s%s%s",
				 arg_id(s->arg), *size ? ",size=" : "", size);
			av_push(out, s->word);
			av_push(out, nb);
			continue;
		}
		av_push(out, s->word);
		if (s->arg)
			av_push(out, s->arg);
	}
	for (size_t j = 0; j < no; j++) {
		if (oo[j].name && !strcmp(oo[j].name, "incoming"))
			continue; /* "-incoming -": implied */
		av_push(out, oo[j].word);
		if (oo[j].arg)
			av_push(out, oo[j].arg);
	}
	rc = 0;
out:
	free(sv);
	free(so);
	free(oo);
	return rc;
}

static void print_quoted(FILE *f, char **v)
{
	for (size_t i = 0; v[i]; i++) {
		const char *s = v[i];
		bool plain = *s != '\0';
		for (const char *p = s; *p; p++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789-_=,./:+@%", *p))
				plain = false;
		fputs(i ? " " : "", f);
		if (plain) {
			fputs(s, f);
			continue;
		}
		fputc('\'', f);
		for (const char *p = s; *p; p++)
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		fputc('\'', f);
	}
	fputc('\n', f);
}

/* ---- the emulator and its keeper --------------------------------------- */

struct emu {
	pid_t keeper, pid;
	int ctl;    /* to the keeper: 'D' detach; EOF: kill the emulator */
	int report; /* from the keeper: pid, then the emulator's wait status */
	int log;
	off_t log_start;
	const char *name; /* basename of the emulator, for messages */
	bool exited;
	int status;
};

static void keeper_main(int ctl, int report, int feed, int logfd, char **argv,
			pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, "mig-recv-keeper");
	signal(SIGPIPE, SIG_IGN);
	pid_t me = getpid();
	pid_t q = fork();
	if (q == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != me)
			_exit(1);
		setsid();
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		if (feed != INCOMING_FD) {
			dup2(feed, INCOMING_FD);
		} else {
			int fl = fcntl(feed, F_GETFD);
			fcntl(feed, F_SETFD, fl & ~FD_CLOEXEC);
		}
		for (int fd = INCOMING_FD + 1; fd < 1024; fd++)
			close(fd);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int null = open("/dev/null", O_RDWR);
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	close(feed);
	close(logfd);
	if (q < 0) {
		int32_t bad = -1;
		if (write(report, &bad, sizeof bad) < 0)
			_exit(1);
		_exit(1);
	}
	int32_t p32 = (int32_t)q;
	if (write(report, &p32, sizeof p32) < 0) {
		kill(q, SIGKILL);
		_exit(1);
	}
	for (;;) {
		struct pollfd pf = { ctl, POLLIN, 0 };
		int r = poll(&pf, 1, 50);
		int st;
		if (waitpid(q, &st, WNOHANG) == q) {
			int32_t s32 = st;
			if (write(report, &s32, sizeof s32) < 0)
				_exit(1);
			_exit(0);
		}
		if (r > 0) {
			char c = 0;
			ssize_t n = read(ctl, &c, 1);
			if (n == 1 && c == 'D') {
				prctl(PR_SET_PDEATHSIG, 0);
				/* only now may mig-recv exit */
				if (write(report, "A", 1) < 0) { /* it is gone: fine */ }
				close(ctl);
				close(report);
				setsid();
				while (waitpid(q, &st, 0) < 0 && errno == EINTR)
					;
				_exit(0);
			}
			if (n <= 0 || c == 'K') {
				kill(q, SIGKILL);
				while (waitpid(q, &st, 0) < 0 && errno == EINTR)
					;
				int32_t s32 = st;
				if (write(report, &s32, sizeof s32) < 0)
					_exit(1);
				_exit(0);
			}
		}
	}
}

static int emu_start(struct emu *em, char **argv, int feed_r, int feed_w,
		     int logw)
{
	int c[2], r[2];
	if (pipe2(c, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0) {
		mig_warn("pipe: %s", strerror(errno));
		return -1;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t k = fork();
	if (k < 0) {
		mig_warn("fork: %s", strerror(errno));
		return -1;
	}
	if (k == 0) {
		close(c[1]);
		close(r[0]);
		close(feed_w);
		keeper_main(c[0], r[1], feed_r, logw, argv, parent);
		_exit(1);
	}
	close(c[0]);
	close(r[1]);
	close(feed_r);
	em->keeper = k;
	em->ctl = c[1];
	em->report = r[0];
	int32_t p32;
	if (read(em->report, &p32, sizeof p32) != sizeof p32 || p32 <= 0) {
		mig_warn("could not start the emulator");
		return -1;
	}
	em->pid = p32;
	return 0;
}

/* Has the emulator exited? (non-blocking; keeps its status) */
static bool emu_alive(void *ctx)
{
	struct emu *em = ctx;
	if (em->exited)
		return false;
	struct pollfd pf = { em->report, POLLIN, 0 };
	if (poll(&pf, 1, 0) > 0) {
		int32_t s32;
		if (read(em->report, &s32, sizeof s32) == sizeof s32)
			em->status = s32;
		else
			em->status = -1;
		em->exited = true;
	}
	return !em->exited;
}

/* Kill the emulator (through the keeper) and wait for it, bounded. */
static void emu_kill(struct emu *em)
{
	if (em->ctl >= 0) {
		if (write(em->ctl, "K", 1) < 0) { /* the keeper is gone */ }
		close(em->ctl);
		em->ctl = -1;
	}
	long deadline = mig_now_ms() + 10000;
	while (!em->exited && mig_now_ms() < deadline) {
		struct pollfd pf = { em->report, POLLIN, 0 };
		poll(&pf, 1, 100);
		emu_alive(em);
	}
	if (!em->exited && em->pid > 0)
		kill(em->pid, SIGKILL);
	if (em->keeper > 0)
		waitpid(em->keeper, NULL, 0);
}

/* The emulator's own messages, on our stderr. */
static void show_log(struct emu *em)
{
	char buf[8192];
	off_t end = lseek(em->log, 0, SEEK_END);
	off_t from = end - (off_t)sizeof buf + 1;
	if (from < em->log_start)
		from = em->log_start;
	ssize_t n = pread(em->log, buf, (size_t)(end - from), from);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *line = buf, *nl;
	if (from > em->log_start && (nl = strchr(line, '\n')))
		line = nl + 1; /* a cut line */
	for (; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t nl_len = strlen(em->name);
		if (!strncmp(line, em->name, nl_len) && !strncmp(line + nl_len, ": ", 2))
			mig_warn("%s", line); /* QEMU names itself */
		else if (*line)
			mig_warn("%s: %s", em->name, line);
		if (!nl)
			break;
	}
}

/* ---- feeding the emulator ------------------------------------------------ */

struct feed {
	int fd;
	uint8_t *ring;
	size_t cap, start, len;
	struct mig_src *src;
	struct mig_err err;
	bool src_failed, write_failed;
	int write_errno;
};

static int feed_out(struct feed *f, size_t k)
{
	struct mig_err e;
	if (mig_write_all(f->fd, f->ring + f->start, k, &e) < 0) {
		f->write_failed = true;
		f->write_errno = errno;
		return -1;
	}
	f->start = (f->start + k) % f->cap;
	f->len -= k;
	return 0;
}

static int feed_push(struct feed *f, const uint8_t *p, size_t n)
{
	while (n) {
		if (f->len == f->cap) {
			size_t k = f->cap - f->start < f->len ? f->cap - f->start : f->len;
			if (feed_out(f, k) < 0)
				return -1;
		}
		size_t tail = (f->start + f->len) % f->cap;
		size_t room = f->cap - f->len;
		if (room > f->cap - tail)
			room = f->cap - tail;
		size_t k = n < room ? n : room;
		memcpy(f->ring + tail, p, k);
		f->len += k;
		p += k;
		n -= k;
	}
	return 0;
}

static int feed_flush(struct feed *f)
{
	while (f->len) {
		size_t k = f->cap - f->start < f->len ? f->cap - f->start : f->len;
		if (feed_out(f, k) < 0)
			return -1;
	}
	return 0;
}

static long feed_pull(void *ctx, void *buf, size_t len)
{
	struct feed *f = ctx;
	const uint8_t *p;
	size_t n;
	int r = mig_src_chunk(f->src, &p, &n, len, &f->err);
	if (r < 0) {
		f->src_failed = true;
		errno = EIO;
		return -1;
	}
	if (r == 0)
		return 0;
	memcpy(buf, p, n);
	if (feed_push(f, p, n) < 0) {
		errno = EPIPE;
		return -1;
	}
	return (long)n;
}

/* Fail: the emulator is killed before anything else, its words shown. */
static int give_up(struct emu *em, struct feed *f, int code)
{
	emu_kill(em);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	show_log(em);
	return code;
}

static const char *exit_desc(int st, char *buf, size_t len)
{
	if (st == -1)
		snprintf(buf, len, "exited");
	else if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "stopped");
	return buf;
}

static int run(struct emu *em, struct feed *f, const char *sock, int timeout_s)
{
	char err[512], ex[64];
	struct qmp *q;
	struct qs_info qi = { 0 };
	char qerr[512];

	q = qmp_connect(sock, timeout_s * 1000, emu_alive, em, err, sizeof err);
	if (!q) {
		emu_alive(em);
		if (em->exited) {
			int code = give_up(em, f, MIG_EXIT_SYS);
			mig_warn("%s %s at start-up", em->name,
				 exit_desc(em->status, ex, sizeof ex));
			return code;
		}
		int code = give_up(em, f, MIG_EXIT_SYS);
		mig_warn("%s", err);
		return code;
	}
	if (verbose)
		mig_warn("%s started (pid %ld), QMP %s; loading the stream", em->name,
			 (long)em->pid, sock);
	if (!(f->ring = malloc(f->cap))) {
		qmp_close(q);
		mig_warn("out of memory");
		return give_up(em, f, MIG_EXIT_SYS);
	}

	/* Relay, following the QEMU stream's structure, holding back its tail. */
	int scanned = qs_scan(feed_pull, f, 0, &qi, qerr, sizeof qerr);
	const uint8_t *p;
	size_t n;
	if (scanned == 0 && !f->write_failed) {
		int r = mig_src_chunk(f->src, &p, &n, 1, &f->err);
		if (r < 0)
			f->src_failed = true;
		else if (r > 0) {
			mig_err_set(&f->err, MIG_EXIT_DATA, "data after the end of "
				    "the QEMU stream (offset %llu)",
				    (unsigned long long)qi.bytes);
			f->src_failed = true;
		}
	}
	qs_info_free(&qi);
	if (f->write_failed) {
		qmp_close(q);
		int code = give_up(em, f, MIG_EXIT_DATA);
		mig_warn("%s stopped reading the stream (%s) and %s; stopped it",
			 em->name, strerror(f->write_errno),
			 exit_desc(em->status, ex, sizeof ex));
		return code;
	}
	if (f->src_failed || scanned < 0) {
		qmp_close(q);
		int code = give_up(em, f, f->src_failed && f->err.code ? f->err.code : MIG_EXIT_DATA);
		if (f->src_failed)
			mig_warn("stdin: %s", f->err.msg);
		else
			mig_warn("stdin: QEMU stream: %s", qerr);
		mig_warn("the stream is not complete: %s not given its end, stopped "
			 "(pid %ld)", em->name, (long)em->pid);
		return code;
	}
	/* The end is verified: the emulator may have it. */
	if (feed_flush(f) < 0) {
		qmp_close(q);
		int code = give_up(em, f, MIG_EXIT_DATA);
		mig_warn("%s stopped reading the stream (%s); stopped it", em->name,
			 strerror(f->write_errno));
		return code;
	}
	close(f->fd);
	f->fd = -1;

	/* Wait for the emulator's verdict. */
	long deadline = mig_now_ms() + timeout_s * 1000L;
	const char *status = NULL;
	json_t *ret = NULL;
	for (;;) {
		int r = qmp_exec(q, "query-migrate", NULL, &ret, 10000, err, sizeof err);
		if (r != 0) {
			qmp_close(q);
			int code = give_up(em, f, MIG_EXIT_DATA);
			mig_warn("%s did not load the stream: %s%s%s", em->name,
				 em->exited ? "it " : "", em->exited ?
				 exit_desc(em->status, ex, sizeof ex) : err, "");
			return code;
		}
		status = json_string_value(json_object_get(ret, "status"));
		if (status && (!strcmp(status, "completed") || !strcmp(status, "failed")))
			break;
		json_decref(ret);
		ret = NULL;
		if (mig_now_ms() > deadline) {
			qmp_close(q);
			int code = give_up(em, f, MIG_EXIT_DATA);
			mig_warn("%s had not loaded the stream %d s after its end "
				 "(status %s); stopped it", em->name, timeout_s,
				 status ? status : "none");
			return code;
		}
		if (qmp_poll_events(q, 20) < 0 && !emu_alive(em))
			continue; /* query-migrate reports the loss */
	}
	if (strcmp(status, "completed") != 0) {
		const char *desc = json_string_value(json_object_get(ret, "error-desc"));
		char d2[512];
		snprintf(d2, sizeof d2, "%s", desc ? desc : "");
		json_decref(ret);
		qmp_close(q);
		int code = give_up(em, f, MIG_EXIT_DATA);
		mig_warn("%s failed to load the stream%s%s; stopped it", em->name,
			 *d2 ? ": " : "", d2);
		return code;
	}
	json_decref(ret);
	ret = NULL;
	const char *run_state = "unknown";
	char rs[64] = "";
	if (qmp_exec(q, "query-status", NULL, &ret, 10000, err, sizeof err) == 0) {
		const char *s = json_string_value(json_object_get(ret, "status"));
		snprintf(rs, sizeof rs, "%s", s ? s : "unknown");
		run_state = rs;
	}
	json_decref(ret);
	qmp_close(q);
	/* Let go: the VM is no longer ours to stop. */
	char ack = 0;
	struct pollfd pf = { em->report, POLLIN, 0 };
	if (write(em->ctl, "D", 1) != 1 || poll(&pf, 1, 10000) != 1 ||
	    read(em->report, &ack, 1) != 1 || ack != 'A') {
		int code = give_up(em, f, MIG_EXIT_SYS);
		mig_warn("lost the keeper of %s", em->name);
		return code;
	}
	close(em->ctl);
	close(em->report);
	if (!quiet)
		mig_warn("%s loaded the stream and is %s (pid %ld, QMP %s)", em->name,
			 run_state, (long)em->pid, sock);
	return MIG_EXIT_OK;
}

/* ---- main ------------------------------------------------------------------ */

/* An envelope's META: shown with -v; qemu.argv, the source's command line
 * (the last one wins), kept for --from-stream. */
static void read_meta(struct mig_src *envelope, json_t **src_argv)
{
	for (size_t m = 0; m < mig_layer_meta_count(envelope); m++) {
		const struct mig_meta *mm = mig_layer_meta(envelope, m);
		if (verbose)
			mig_warn("META %s=%.200s", mm->key, mm->value);
		if (!strcmp(mm->key, "qemu.argv")) {
			json_decref(*src_argv);
			*src_argv = json_loads(mm->value, 0, NULL);
		}
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-recv [options] EMULATOR ARGS... -incoming -\n"
		"       mig-recv [options] --from-stream [EMULATOR] [OVERRIDES...]\n"
		"Start EMULATOR with the migration stream read from standard "
		"input, wait until\nit has loaded it, and exit 0 leaving the VM "
		"running in the background.\n\n"
		"      --from-stream  start it with the source's command line "
		"carried in the\n"
		"                     stream (META qemu.argv), OVERRIDES applied\n"
		"      --qmp PATH     socket of the QMP monitor added when ARGS "
		"have none\n"
		"      --log FILE     the emulator's output (default: shown only "
		"on failure)\n"
		"      --timeout SEC  for start-up, and for the load after the "
		"stream's end (60)\n"
		"  -n, --dry-run      print the command line and exit (reads only "
		"the META)\n"
		"  -v, --verbose      say what happens\n"
		"  -q, --quiet        no message on success\n"
		"  -h, --help         this help\n"
		"  -V, --version      version\n\n"
		"Exit status: 0 the VM loaded the stream and runs (or is paused); "
		"1 bad,\ntruncated or refused stream (no emulator left running); "
		"2 usage; 3 I/O error;\n4 the emulator could not be started.\n"
		"See mig-recv(1).\n");
}

int main(int argc, char **argv)
{
	enum { OPT_FROM = 256, OPT_QMP, OPT_LOG, OPT_TIMEOUT };
	static const struct option lo[] = {
		{ "from-stream", no_argument, NULL, OPT_FROM },
		{ "qmp", required_argument, NULL, OPT_QMP },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool from = false, dry = false;
	const char *qmp_path = NULL, *log_path = NULL;
	int timeout_s = 60, c;
	struct mig_err e = { 0 };

	mig_progname = "mig-recv";
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "+nvqhV", lo, NULL)) != -1) {
		switch (c) {
		case OPT_FROM: from = true; break;
		case OPT_QMP: qmp_path = optarg; break;
		case OPT_LOG: log_path = optarg; break;
		case OPT_TIMEOUT:
			timeout_s = atoi(optarg);
			if (timeout_s <= 0) {
				mig_warn("--timeout '%s': not a number of seconds", optarg);
				return MIG_EXIT_USAGE;
			}
			break;
		case 'n': dry = true; break;
		case 'v': verbose = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("mig-recv (migkit) %s\n", MIG_VERSION_STRING); return 0;
		default:
			fprintf(stderr, "Try 'mig-recv --help'.\n");
			return MIG_EXIT_USAGE;
		}
	}
	char **args = argv + optind;
	size_t nargs = (size_t)(argc - optind);
	if (!from) {
		size_t i;
		if (!nargs) {
			mig_warn("no emulator given\nTry 'mig-recv --help'.");
			return MIG_EXIT_USAGE;
		}
		for (i = 1; i + 1 < nargs; i++)
			if (opt_name(args[i]) && !strcmp(opt_name(args[i]), "incoming"))
				break;
		if (i + 1 >= nargs || strcmp(args[i + 1], "-") != 0) {
			mig_warn("the emulator's arguments need '-incoming -' (where the "
				 "stream goes)\nTry 'mig-recv --help'.");
			return MIG_EXIT_USAGE;
		}
	}

	/* The stream: envelopes (META), then the raw QEMU stream. */
	mig_pipe_grow(0);
	int rc = 0;
	struct mig_src *base = mig_src_fd(0, "stdin"), *src;
	struct mig_envelopes env = { 0 };
	struct mig_detect d;
	json_t *src_argv = NULL;
	struct argv av = { 0 };
	char *sock = NULL;
	src = mig_envelopes_peel(base, &env, &d, &e);
	/* what META was read is shown even when a later envelope is bad */
	for (size_t i = 0; i < env.n; i++)
		read_meta(env.layer[i], &src_argv);
	if (!src)
		goto bad_stream;
	if (d.type != MIG_INPUT_QEMU) {
		char what[128];
		mig_detect_describe(&d, what, sizeof what);
		if (d.type == MIG_INPUT_EMPTY)
			mig_err_set(&e, MIG_EXIT_DATA, "the stream is empty%s",
				    env.n ? " (inside its envelope)" : "");
		else if (d.type == MIG_INPUT_LAYER && mig_kind_by_id(d.kind))
			mig_err_set(&e, MIG_EXIT_DATA, "input is %s, not a QEMU "
				    "stream: peel it first (%s | mig-recv ...)",
				    what, mig_kind_by_id(d.kind)->peeler);
		else
			mig_err_set(&e, MIG_EXIT_DATA, "input is %s, not a QEMU "
				    "stream", what);
		goto bad_stream;
	}

	/* The emulator's command line. */
	if (from) {
		if (!src_argv || !json_is_array(src_argv)) {
			mig_warn("stdin: the stream carries no emulator command line "
				 "(META qemu.argv; the source must send it: mig-qemu "
				 "--send-config)");
			rc = MIG_EXIT_DATA;
			goto out;
		}
		if (from_stream(src_argv, args, nargs, &av) < 0) {
			rc = MIG_EXIT_DATA;
			goto out;
		}
	} else {
		for (size_t i = 0; i < nargs; i++) {
			const char *o = opt_name(args[i]);
			if (o && !strcmp(o, "incoming") && i + 1 < nargs &&
			    !strcmp(args[i + 1], "-")) {
				i++;
				continue;
			}
			av_push(&av, args[i]);
		}
	}
	/* a unix QMP socket of ours, unless ARGS have one */
	for (size_t i = 1; i + 1 < av.n; i++) {
		const char *o = opt_name(av.v[i]);
		if (o && (!strcmp(o, "qmp") || !strcmp(o, "qmp-pretty")) &&
		    (sock = qmp_unix_path(av.v[i + 1])))
			break;
	}
	if (!sock) {
		char spec[PATH_MAX + 64];
		if (qmp_path) {
			sock = strdup(qmp_path);
		} else {
			const char *rd = getenv("XDG_RUNTIME_DIR");
			if (!rd || access(rd, W_OK) != 0)
				rd = getenv("TMPDIR");
			if (!rd || !*rd)
				rd = "/tmp";
			if (asprintf(&sock, "%s/mig-recv.%ld.qmp", rd, (long)getpid()) < 0) {
				sock = NULL;
				rc = MIG_EXIT_SYS;
				goto out;
			}
		}
		/* QEMU doubles commas in values */
		char *q = spec;
		for (const char *p = sock; *p && q < spec + sizeof spec - 32; p++) {
			if (*p == ',')
				*q++ = ',';
			*q++ = *p;
		}
		*q = '\0';
		av_push(&av, "-qmp");
		char full[PATH_MAX + 128];
		snprintf(full, sizeof full, "unix:%s,server=on,wait=off", spec);
		av_push(&av, full);
	}
	char fdspec[16];
	snprintf(fdspec, sizeof fdspec, "fd:%d", INCOMING_FD);
	av_push(&av, "-incoming");
	av_push(&av, fdspec);
	if (dry) {
		print_quoted(stdout, av.v);
		goto out;
	}
	if (verbose) {
		fprintf(stderr, "mig-recv: starting: ");
		print_quoted(stderr, av.v);
	}

	/* Start it. */
	struct emu em = { .ctl = -1, .report = -1 };
	const char *b = strrchr(av.v[0], '/');
	int logw;
	em.name = b ? b + 1 : av.v[0];
	if (log_path) {
		logw = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		em.log = logw < 0 ? -1 : open(log_path, O_RDONLY | O_CLOEXEC);
		if (em.log < 0) {
			mig_warn("%s: %s", log_path, strerror(errno));
			if (logw >= 0)
				close(logw);
			rc = MIG_EXIT_IO;
			goto out;
		}
		em.log_start = lseek(logw, 0, SEEK_END);
	} else {
		const char *td = getenv("TMPDIR");
		logw = em.log = open(td && *td ? td : "/tmp",
				     O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (em.log < 0) {
			mig_warn("cannot make a log file: %s", strerror(errno));
			rc = MIG_EXIT_IO;
			goto out;
		}
	}
	int feed[2];
	if (pipe2(feed, O_CLOEXEC) < 0) {
		mig_warn("pipe: %s", strerror(errno));
		rc = MIG_EXIT_SYS;
		goto out;
	}
	mig_pipe_grow(feed[1]);
	if (emu_start(&em, av.v, feed[0], feed[1], logw) < 0) {
		rc = MIG_EXIT_SYS;
		goto out;
	}
	if (logw != em.log)
		close(logw);
	struct feed f = { .fd = feed[1], .cap = HOLD_BACK, .src = src };
	rc = run(&em, &f, sock, timeout_s);
	free(f.ring);
	goto out;

bad_stream:
	mig_warn("stdin: %s", e.msg);
	rc = e.code ? e.code : MIG_EXIT_DATA;
out:
	av_free(&av);
	free(sock);
	json_decref(src_argv);
	mig_envelopes_free(&env);
	mig_src_free(base);
	return rc;
}

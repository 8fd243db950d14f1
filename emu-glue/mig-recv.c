/* SPDX-License-Identifier: BSD-2-Clause */
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
 * Here: the options, the stream's envelopes and what they carry, the
 * emulator's log and command line put together, and its start; the work
 * is in recv-argv.c, recv-emu.c and recv-feed.c (mig-recv.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig.h"
#include "libvirt-image.h"
#include "mig-recv.h"
#include "qemu-stream.h"
#include "qmp.h"

#define HOLD_BACK QS_TAIL_MAX /* bytes kept from the emulator until the end */

bool migrecv_verbose, migrecv_quiet;

/* An envelope's META: shown with -v; qemu.argv, the source's command line
 * (the last one wins), kept for --from-stream. */
static void read_meta(struct mig_src *envelope, json_t **src_argv)
{
	for (size_t m = 0; m < mig_layer_meta_count(envelope); m++) {
		const struct mig_meta *mm = mig_layer_meta(envelope, m);
		if (migrecv_verbose) {
			char *v = migrecv_shown(mm->value, strnlen(mm->value, 200));
			mig_warn("META %s=%s", mm->key, v);
			free(v);
		}
		if (!strcmp(mm->key, "qemu.argv")) {
			json_decref(*src_argv);
			*src_argv = json_loads(mm->value, 0, NULL);
		}
	}
}

/* ---- The QMP socket mig-recv names ---------------------------------------- */

/* The socket mig-recv adds to the emulator's command line is its own to
 * remove when the emulator does not live on: on every failure, and on a
 * signal that ends mig-recv before it has reported success (the emulator
 * is killed first: it could still bind the socket, and would die with
 * mig-recv anyway, by its keeper's death, unable to remove the socket
 * itself). Kept on success: it is the running VM's monitor. A socket
 * named in ARGS is the caller's. The emulator is held by a pidfd, so no
 * other process that might get its pid later can be signalled. */
static char sock_path[PATH_MAX];
static volatile sig_atomic_t sock_armed;
static volatile int emu_pidfd = -1;
static const int fatal_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM,
				     SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU,
				     SIGXFSZ, SIGVTALRM, SIGPROF };

/* Only async-signal-safe calls: it runs in the signal handler too. */
static void sock_remove_now(void)
{
	int pfd = emu_pidfd;

	if (!sock_armed)
		return;
	if (pfd >= 0 && pidfd_send_signal(pfd, SIGKILL, NULL, 0) == 0) {
		/* readable once it has ended; bounded */
		struct pollfd pf = { pfd, POLLIN, 0 };
		while (poll(&pf, 1, 2000) < 0 && errno == EINTR)
			;
	}
	unlink(sock_path);
	sock_armed = 0;
}

static void on_fatal_signal(int sig)
{
	sock_remove_now();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int sock_arm(const char *path)
{
	if (strlen(path) >= sizeof sock_path)
		return -1;
	strcpy(sock_path, path);
	sock_armed = 1;
	for (size_t i = 0; i < sizeof fatal_signals / sizeof *fatal_signals; i++) {
		struct sigaction sa = { .sa_handler = on_fatal_signal }, old;
		/* one ignored at start (nohup, a shell's background job) stays
		 * ignored */
		if (sigaction(fatal_signals[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		sigemptyset(&sa.sa_mask);
		sigaction(fatal_signals[i], &sa, NULL);
	}
	return 0;
}

enum { OPT_FROM = 256, OPT_QMP, OPT_LOG, OPT_TIMEOUT, OPT_SIGNER,
       OPT_TRUST_UNSIGNED, OPT_NOT_BEFORE, OPT_EMU, OPT_ALLOW };

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
		"                     stream (META qemu.argv), OVERRIDES applied; "
		"needs\n"
		"                     --signer or --trust-unsigned\n"
		"      --signer PUB   accept only a stream signed by this signer "
		"(repeatable)\n"
		"      --trust-unsigned  --from-stream without a signature\n"
		"      --not-before WHEN  refuse a stream signed before WHEN "
		"(@SECONDS or\n"
		"                     YYYY-MM-DDTHH:MM:SSZ)\n"
		"      --emulator PATH\n"
		"                     the emulator for --from-stream (else "
		"$MIG_EMULATOR,\n"
		"                     /etc/migkit/mig-recv.conf, qemu-system-ARCH)\n"
		"      --allow NAME   keep the stream's option, property, device "
		"or object\n"
		"                     type NAME (--from-stream; repeatable)\n"
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

/* mig-recv's command line */
struct recv_args {
	bool from, dry;
	const char *qmp_path, *log_path;
	int timeout_s;
	struct recv_trust trust;
	struct recv_policy pol;
	char **args;  /* EMULATOR ARGS... -incoming -, or the OVERRIDES */
	size_t nargs;
};

/* --allow NAMEs (recv_args.pol.allow) */
static const char *allow[4096];

/* One option of mig-recv's: MIG_GO_ON, or the exit status to leave with. */
static int take_option(int c, const char *arg, struct recv_args *a)
{
	struct mig_err e = { 0 };

	switch (c) {
	case OPT_FROM: a->from = true; break;
	case OPT_QMP: a->qmp_path = arg; break;
	case OPT_LOG: a->log_path = arg; break;
	case OPT_EMU: a->pol.emulator = arg; break;
	case OPT_ALLOW:
		if (a->pol.nallow == sizeof allow / sizeof allow[0])
			return mig_usage_error("--allow: more than 4096 names");
		allow[a->pol.nallow++] = arg;
		break;
	case OPT_TIMEOUT:
		a->timeout_s = atoi(arg);
		if (a->timeout_s <= 0)
			return mig_usage_error("--timeout '%s': not a number of "
					       "seconds", arg);
		break;
	case OPT_SIGNER:
		/* a file that is no signer's: said as it is, exit 2 */
		if (mig_signers_add(&a->trust.signers, arg, &e) < 0) {
			mig_warn("--signer: %s", e.msg);
			return MIG_EXIT_USAGE;
		}
		break;
	case OPT_TRUST_UNSIGNED: a->trust.trust_unsigned = true; break;
	case OPT_NOT_BEFORE:
		if (migrecv_parse_when(arg, &a->trust.not_before) < 0)
			return mig_usage_error("--not-before '%s': not @SECONDS "
					       "or YYYY-MM-DDTHH:MM:SSZ", arg);
		a->trust.has_not_before = true;
		break;
	case 'n': a->dry = true; break;
	case 'v': migrecv_verbose = true; break;
	case 'q': migrecv_quiet = true; break;
	}
	return MIG_GO_ON;
}

/* What the options allow together, and the emulator's arguments. */
static int check_args(struct recv_args *a)
{
	size_t i;

	if (a->from && !a->trust.signers.n && !a->trust.trust_unsigned)
		return mig_usage_error("--from-stream starts what the stream "
				       "describes: name the signer it must come "
				       "from with --signer PUB (or give "
				       "--trust-unsigned)");
	if (a->trust.has_not_before && !a->trust.signers.n)
		return mig_usage_error("--not-before needs --signer: only a "
				       "signed stream carries a time to trust");
	if (a->dry && mig_stdout_closed()) { /* the command line would be lost */
		mig_warn("stdout: closed");
		return MIG_EXIT_IO;
	}
	a->pol.notes = a->dry || migrecv_verbose;
	if (a->from)
		return MIG_GO_ON;
	if (a->pol.emulator || a->pol.nallow)
		return mig_usage_error("--emulator and --allow are for "
				       "--from-stream");
	if (!a->nargs)
		return mig_usage_error("no emulator given");
	for (i = 1; i + 1 < a->nargs; i++)
		if (migrecv_opt_name(a->args[i]) &&
		    !strcmp(migrecv_opt_name(a->args[i]), "incoming"))
			break;
	if (i + 1 >= a->nargs || strcmp(a->args[i + 1], "-") != 0)
		return mig_usage_error("the emulator's arguments need '-incoming "
				       "-' (where the stream goes)");
	return MIG_GO_ON;
}

/* MIG_GO_ON, or the exit status to leave with (-h, -V: 0; usage: 2). */
static int parse_args(int argc, char **argv, struct recv_args *a)
{
	static const struct option lo[] = {
		{ "from-stream", no_argument, NULL, OPT_FROM },
		{ "emulator", required_argument, NULL, OPT_EMU },
		{ "allow", required_argument, NULL, OPT_ALLOW },
		{ "qmp", required_argument, NULL, OPT_QMP },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "signer", required_argument, NULL, OPT_SIGNER },
		{ "trust-unsigned", no_argument, NULL, OPT_TRUST_UNSIGNED },
		{ "not-before", required_argument, NULL, OPT_NOT_BEFORE },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;

	a->timeout_s = 60;
	a->pol.allow = allow;
	opterr = 0; /* our own messages, in one write each */
	while ((c = getopt_long(argc, argv, "+:nvqhV", lo, NULL)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return mig_stdout_finish();
		case 'V': return mig_print_version();
		case ':':
			return mig_usage_error("%s needs a value", argv[optind - 1]);
		case '?':
			if (optopt && optopt < 256)
				return mig_usage_error("unknown option '-%c'", optopt);
			return mig_usage_error("unknown option '%s'", argv[optind - 1]);
		}
		if ((rc = take_option(c, optarg, a)) != MIG_GO_ON)
			return rc;
	}
	a->args = argv + optind;
	a->nargs = (size_t)(argc - optind);
	return check_args(a);
}

/* ---- The stream, the command line, the emulator ----------------------------- */

/* What main's steps share, freed by recv_free. */
struct recv {
	struct mig_src *base, *src; /* stdin; the raw QEMU stream inside */
	struct mig_envelopes env;
	json_t *src_argv;           /* META qemu.argv */
	struct argv av;             /* the emulator's command line */
	char *sock;                 /* its QMP socket */
	struct emu em;              /* the emulator, once started */
	int feed_w;                 /* the pipe it reads the stream from */
};

/* Not a raw QEMU stream: what it is instead, into *e. */
static void not_qemu(const struct mig_detect *d, size_t nenv, struct mig_err *e)
{
	char what[128];

	mig_detect_describe(d, what, sizeof what);
	if (d->type == MIG_INPUT_EMPTY)
		mig_err_set(e, MIG_EXIT_DATA, "the stream is empty%s",
			    nenv ? " (inside its envelope)" : "");
	else if (d->type == MIG_INPUT_LAYER && mig_kind_by_id(d->kind))
		mig_err_set(e, MIG_EXIT_DATA, "input is %s, not a QEMU stream: "
			    "peel it first (%s | mig-recv ...)", what,
			    mig_kind_by_id(d->kind)->peeler);
	else
		mig_err_set(e, MIG_EXIT_DATA, "input is %s, not a QEMU stream",
			    what);
}

/*
 * A libvirt save image (virsh save): libvirt's header and domain XML are
 * skipped, so the emulator gets the QEMU stream after them.  Only an
 * image libvirt finished (LibvirtQemudSave) and did not compress is
 * taken; *d is then what follows the header.
 */
static int skip_libvirt(struct recv *r, struct mig_detect *d, struct mig_err *e)
{
	struct mig_src_pull pl = { r->src, e, false };
	struct lv_image lv;
	char lerr[512];
	int rc = -1;

	if (lv_read(mig_src_pull_read, &pl, &lv, lerr, sizeof lerr) < 0) {
		if (!pl.failed)
			mig_err_set(e, MIG_EXIT_DATA, "%s", lerr);
	} else if (!lv.complete)
		mig_err_set(e, MIG_EXIT_DATA, "incomplete: a libvirt save image "
			    "whose header says " LV_MAGIC_PART " (libvirt had "
			    "not finished it)");
	else if (lv.format != LV_FORMAT_RAW)
		mig_err_set(e, MIG_EXIT_DATA, "a libvirt save image of format "
			    "%s: its QEMU stream is compressed by that program; "
			    "restore it with virsh restore",
			    lv_format_name(lv.format));
	else
		rc = mig_detect(r->src, d, e);
	lv_image_free(&lv);
	return rc;
}

/* The stream: its envelopes peeled and checked against --signer and
 * --not-before, their META read, then a raw QEMU stream. */
static int open_stream(struct recv *r, const struct recv_args *a)
{
	struct mig_err e = { 0 };
	struct mig_detect d;

	r->env.trust = a->trust.signers.n ? &a->trust.signers : NULL;
	r->base = mig_src_fd(0, "stdin");
	r->src = mig_envelopes_peel(r->base, &r->env, &d, &e);
	/* what META was read is shown even when a later envelope is bad */
	for (size_t i = 0; i < r->env.n; i++)
		read_meta(r->env.layer[i], &r->src_argv);
	if (r->src && migrecv_trust_check(&r->env, &a->trust, &e) == 0) {
		if (d.type == MIG_INPUT_UNKNOWN && lv_is_image(d.head, d.headlen) &&
		    skip_libvirt(r, &d, &e) < 0)
			goto bad;
		if (d.type == MIG_INPUT_QEMU)
			return 0;
		not_qemu(&d, r->env.n, &e);
	}
bad:
	mig_warn("stdin: %s", e.msg);
	return e.code ? e.code : MIG_EXIT_DATA;
}

/* The emulator's command line: the stream's (--from-stream), or the
 * arguments given, their "-incoming -" left out (mig-recv adds its own). */
static int emulator_argv(struct recv *r, const struct recv_args *a)
{
	if (a->from) {
		if (!r->src_argv || !json_is_array(r->src_argv)) {
			mig_warn("stdin: the stream carries no emulator command "
				 "line (META qemu.argv; the source must send it: "
				 "mig-qemu --send-config)");
			return MIG_EXIT_DATA;
		}
		return migrecv_from_stream(r->src_argv, a->args, a->nargs,
					   &a->pol, &r->av);
	}
	for (size_t i = 0; i < a->nargs; i++) {
		const char *o = migrecv_opt_name(a->args[i]);
		if (o && !strcmp(o, "incoming") && i + 1 < a->nargs &&
		    !strcmp(a->args[i + 1], "-")) {
			i++;
			continue;
		}
		migrecv_av_push(&r->av, a->args[i]);
	}
	return 0;
}

/* A unix QMP socket named in the emulator's arguments (malloc'd), or NULL. */
static char *given_socket(const struct argv *av)
{
	char *sock;

	for (size_t i = 1; i + 1 < av->n; i++) {
		const char *o = migrecv_opt_name(av->v[i]);
		if (o && (!strcmp(o, "qmp") || !strcmp(o, "qmp-pretty")) &&
		    (sock = qmp_unix_path(av->v[i + 1])))
			return sock;
	}
	return NULL;
}

/* Our socket's path: --qmp, else in $XDG_RUNTIME_DIR, $TMPDIR or /tmp. */
static char *own_socket(const char *qmp_path)
{
	const char *rd = getenv("XDG_RUNTIME_DIR");
	char *sock;

	if (qmp_path)
		return strdup(qmp_path);
	if (!rd || access(rd, W_OK) != 0)
		rd = getenv("TMPDIR");
	if (!rd || !*rd)
		rd = "/tmp";
	if (asprintf(&sock, "%s/mig-recv.%ld.qmp", rd, (long)getpid()) < 0)
		return NULL;
	return sock;
}

/* The QMP monitor mig-recv waits on: the one the arguments name, else a
 * socket of ours (removed unless the VM runs on); then "-incoming fd:3". */
static int add_monitor(struct recv *r, const struct recv_args *a)
{
	char fdspec[16];

	if (!(r->sock = given_socket(&r->av))) {
		char spec[PATH_MAX + 64], full[PATH_MAX + 128], *q = spec;
		if (!(r->sock = own_socket(a->qmp_path)))
			return MIG_EXIT_SYS;
		if (!a->dry && sock_arm(r->sock) < 0) {
			mig_warn("%s: name too long", r->sock);
			return MIG_EXIT_USAGE;
		}
		/* QEMU doubles commas in values */
		for (const char *p = r->sock; *p && q < spec + sizeof spec - 32; p++) {
			if (*p == ',')
				*q++ = ',';
			*q++ = *p;
		}
		*q = '\0';
		migrecv_av_push(&r->av, "-qmp");
		snprintf(full, sizeof full, "unix:%s,server=on,wait=off", spec);
		migrecv_av_push(&r->av, full);
	}
	snprintf(fdspec, sizeof fdspec, "fd:%d", INCOMING_FD);
	migrecv_av_push(&r->av, "-incoming");
	migrecv_av_push(&r->av, fdspec);
	return 0;
}

/* The command line quoted for a shell, without its newline (malloc'd). */
static char *quoted(char **v)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return NULL;
	migrecv_print_quoted(f, v);
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	if (len && s[len - 1] == '\n')
		s[len - 1] = '\0';
	return s;
}

/* The emulator's output: appended to --log FILE (shown from where it
 * stood), or an unnamed file in $TMPDIR; *logw is its writing end. */
static int open_log(struct emu *em, const char *log_path, int *logw)
{
	const char *td = getenv("TMPDIR");

	if (!log_path) {
		*logw = em->log = open(td && *td ? td : "/tmp",
				       O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (em->log < 0) {
			mig_warn("cannot make a log file: %s", strerror(errno));
			return MIG_EXIT_IO;
		}
		return 0;
	}
	*logw = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	em->log = *logw < 0 ? -1 : open(log_path, O_RDONLY | O_CLOEXEC);
	if (em->log < 0) {
		mig_warn("%s: %s", log_path, strerror(errno));
		if (*logw >= 0)
			close(*logw);
		return MIG_EXIT_IO;
	}
	em->log_start = lseek(*logw, 0, SEEK_END);
	return 0;
}

/* The emulator started by its keeper, reading a pipe whose writing end
 * is *feed_w; held by a pidfd while our socket is armed. */
static int start_emulator(struct emu *em, char **av, int logw, int *feed_w)
{
	int feed[2], started;

	if (pipe2(feed, O_CLOEXEC) < 0) {
		mig_warn("pipe: %s", strerror(errno));
		return MIG_EXIT_SYS;
	}
	mig_pipe_grow(feed[1]);
	started = migrecv_emu_start(em, av, feed[0], feed[1], logw);
	if (em->pid > 0 && sock_armed)
		emu_pidfd = pidfd_open(em->pid, 0);
	if (started < 0) {
		close(feed[0]);
		close(feed[1]);
		return MIG_EXIT_SYS;
	}
	*feed_w = feed[1];
	return 0;
}

/* Start the emulator on an empty pipe; its log open (r->em.log). */
static int launch_emulator(struct recv *r, const struct recv_args *a)
{
	const char *b = strrchr(r->av.v[0], '/');
	int logw, rc;

	r->em.name = b ? b + 1 : r->av.v[0];
	if ((rc = open_log(&r->em, a->log_path, &logw)) != 0)
		return rc;
	rc = start_emulator(&r->em, r->av.v, logw, &r->feed_w);
	if (logw != r->em.log)
		close(logw);
	return rc;
}

/* Feed the started emulator the stream, wait for its verdict. */
static int feed_emulator(struct recv *r, const struct recv_args *a)
{
	struct feed f = { .fd = r->feed_w, .cap = HOLD_BACK, .src = r->src };
	int rc = migrecv_run(&r->em, &f, r->sock, a->timeout_s);

	free(f.ring);
	return rc;
}

/* The stream refused before a byte of it reached the emulator started
 * early: stopped quietly (what it said is about waiting, not the stream). */
static void stop_unfed(struct recv *r)
{
	migrecv_emu_kill(&r->em);
	close(r->feed_w);
}

/* With its command line given, the emulator starts before the stream is
 * read: its start-up (seconds under TCG) overlaps the stream's first
 * bytes instead of following them, as it does for QEMU's own -incoming
 * tcp. Nothing reaches it before the stream is checked. With
 * --from-stream the command line is in the stream: it is read first. */
static int receive(struct recv *r, const struct recv_args *a)
{
	bool early = !a->from && !a->dry; /* started before the stream is read */
	int rc;

	if ((!early && (rc = open_stream(r, a)) != 0) ||
	    (rc = emulator_argv(r, a)) != 0 || (rc = add_monitor(r, a)) != 0)
		return rc;
	if (a->dry) {
		migrecv_print_quoted(stdout, r->av.v);
		return mig_stdout_finish();
	}
	if (migrecv_verbose) {
		char *cl = quoted(r->av.v);
		mig_warn("starting: %s", cl ? cl : r->av.v[0]);
		free(cl);
	}
	if ((rc = launch_emulator(r, a)) != 0)
		return rc;
	if (early && (rc = open_stream(r, a)) != 0) {
		stop_unfed(r);
		return rc;
	}
	return feed_emulator(r, a);
}

/* Our socket kept only for a VM that runs on; the rest freed. */
static void recv_free(struct recv *r, int rc)
{
	if (rc == MIG_EXIT_OK)
		sock_armed = 0; /* the VM runs on: the socket is its monitor */
	else
		sock_remove_now(); /* the emulator is gone already */
	if (emu_pidfd >= 0)
		close(emu_pidfd);
	if (r->em.log >= 0)
		close(r->em.log);
	migrecv_av_free(&r->av);
	free(r->sock);
	json_decref(r->src_argv);
	mig_envelopes_free(&r->env);
	mig_src_free(r->base);
}

int main(int argc, char **argv)
{
	struct recv_args a = { 0 };
	struct recv r = { .em = { .ctl = -1, .report = -1, .log = -1 }, .feed_w = -1 };
	int rc;

	mig_progname = "mig-recv";
	if (mig_stdfds_ensure(NULL) < 0) /* before anything is opened */
		return MIG_EXIT_SYS;
	signal(SIGPIPE, SIG_IGN);
	if ((rc = parse_args(argc, argv, &a)) != MIG_GO_ON)
		return rc;
	mig_pipe_grow(0);
	rc = receive(&r, &a);
	recv_free(&r, rc);
	return rc;
}

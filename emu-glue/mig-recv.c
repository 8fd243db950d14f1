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

int main(int argc, char **argv)
{
	enum { OPT_FROM = 256, OPT_QMP, OPT_LOG, OPT_TIMEOUT, OPT_SIGNER,
	       OPT_TRUST_UNSIGNED, OPT_NOT_BEFORE, OPT_EMU, OPT_ALLOW };
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
	bool from = false, dry = false;
	const char *qmp_path = NULL, *log_path = NULL;
	int timeout_s = 60, c;
	struct mig_err e = { 0 };
	struct recv_trust trust = { 0 };
	/* --allow NAMEs: at most one per argument */
	static const char *allow[4096];
	struct recv_policy pol = { .allow = allow };

	mig_progname = "mig-recv";
	if (mig_stdfds_ensure(NULL) < 0) /* before anything is opened */
		return MIG_EXIT_SYS;
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "+nvqhV", lo, NULL)) != -1) {
		switch (c) {
		case OPT_FROM: from = true; break;
		case OPT_QMP: qmp_path = optarg; break;
		case OPT_LOG: log_path = optarg; break;
		case OPT_EMU: pol.emulator = optarg; break;
		case OPT_ALLOW:
			if (pol.nallow == sizeof allow / sizeof allow[0]) {
				mig_warn("--allow: more than 4096 names");
				return MIG_EXIT_USAGE;
			}
			allow[pol.nallow++] = optarg;
			break;
		case OPT_TIMEOUT:
			timeout_s = atoi(optarg);
			if (timeout_s <= 0) {
				mig_warn("--timeout '%s': not a number of seconds", optarg);
				return MIG_EXIT_USAGE;
			}
			break;
		case OPT_SIGNER:
			if (mig_signers_add(&trust.signers, optarg, &e) < 0) {
				mig_warn("--signer: %s", e.msg);
				return MIG_EXIT_USAGE;
			}
			break;
		case OPT_TRUST_UNSIGNED: trust.trust_unsigned = true; break;
		case OPT_NOT_BEFORE:
			if (migrecv_parse_when(optarg, &trust.not_before) < 0) {
				mig_warn("--not-before '%s': not @SECONDS or "
					 "YYYY-MM-DDTHH:MM:SSZ", optarg);
				return MIG_EXIT_USAGE;
			}
			trust.has_not_before = true;
			break;
		case 'n': dry = true; break;
		case 'v': migrecv_verbose = true; break;
		case 'q': migrecv_quiet = true; break;
		case 'h': usage(stdout); return mig_stdout_finish();
		case 'V':
			printf("mig-recv (migkit) %s\n", MIG_VERSION_STRING);
			return mig_stdout_finish();
		default:
			fprintf(stderr, "Try 'mig-recv --help'.\n");
			return MIG_EXIT_USAGE;
		}
	}
	if (from && !trust.signers.n && !trust.trust_unsigned) {
		mig_warn("--from-stream starts what the stream describes: name "
			 "the signer it must come from with --signer PUB (or "
			 "give --trust-unsigned)\nTry 'mig-recv --help'.");
		return MIG_EXIT_USAGE;
	}
	if (trust.has_not_before && !trust.signers.n) {
		mig_warn("--not-before needs --signer: only a signed stream "
			 "carries a time to trust\nTry 'mig-recv --help'.");
		return MIG_EXIT_USAGE;
	}
	if (dry && mig_stdout_closed()) { /* the command line would be lost */
		mig_warn("stdout: closed");
		return MIG_EXIT_IO;
	}
	char **args = argv + optind;
	size_t nargs = (size_t)(argc - optind);
	pol.notes = dry || migrecv_verbose;
	if (!from && (pol.emulator || pol.nallow)) {
		mig_warn("--emulator and --allow are for --from-stream\n"
			 "Try 'mig-recv --help'.");
		return MIG_EXIT_USAGE;
	}
	if (!from) {
		size_t i;
		if (!nargs) {
			mig_warn("no emulator given\nTry 'mig-recv --help'.");
			return MIG_EXIT_USAGE;
		}
		for (i = 1; i + 1 < nargs; i++)
			if (migrecv_opt_name(args[i]) &&
			    !strcmp(migrecv_opt_name(args[i]), "incoming"))
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
	struct mig_envelopes env = { .trust = trust.signers.n ? &trust.signers : NULL };
	struct mig_detect d;
	json_t *src_argv = NULL;
	struct argv av = { 0 };
	char *sock = NULL;
	src = mig_envelopes_peel(base, &env, &d, &e);
	/* what META was read is shown even when a later envelope is bad */
	for (size_t i = 0; i < env.n; i++)
		read_meta(env.layer[i], &src_argv);
	if (!src || migrecv_trust_check(&env, &trust, &e) < 0)
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
		if ((rc = migrecv_from_stream(src_argv, args, nargs, &pol, &av)))
			goto out;
	} else {
		for (size_t i = 0; i < nargs; i++) {
			const char *o = migrecv_opt_name(args[i]);
			if (o && !strcmp(o, "incoming") && i + 1 < nargs &&
			    !strcmp(args[i + 1], "-")) {
				i++;
				continue;
			}
			migrecv_av_push(&av, args[i]);
		}
	}
	/* a unix QMP socket of ours, unless ARGS have one */
	for (size_t i = 1; i + 1 < av.n; i++) {
		const char *o = migrecv_opt_name(av.v[i]);
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
		if (!dry && sock_arm(sock) < 0) {
			mig_warn("%s: name too long", sock);
			rc = MIG_EXIT_USAGE;
			goto out;
		}
		/* QEMU doubles commas in values */
		char *q = spec;
		for (const char *p = sock; *p && q < spec + sizeof spec - 32; p++) {
			if (*p == ',')
				*q++ = ',';
			*q++ = *p;
		}
		*q = '\0';
		migrecv_av_push(&av, "-qmp");
		char full[PATH_MAX + 128];
		snprintf(full, sizeof full, "unix:%s,server=on,wait=off", spec);
		migrecv_av_push(&av, full);
	}
	char fdspec[16];
	snprintf(fdspec, sizeof fdspec, "fd:%d", INCOMING_FD);
	migrecv_av_push(&av, "-incoming");
	migrecv_av_push(&av, fdspec);
	if (dry) {
		migrecv_print_quoted(stdout, av.v);
		rc = mig_stdout_finish();
		goto out;
	}
	if (migrecv_verbose) {
		fprintf(stderr, "mig-recv: starting: ");
		migrecv_print_quoted(stderr, av.v);
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
	} else {
		mig_pipe_grow(feed[1]);
		int started = migrecv_emu_start(&em, av.v, feed[0], feed[1], logw);
		if (em.pid > 0 && sock_armed)
			emu_pidfd = pidfd_open(em.pid, 0);
		if (started < 0) {
			close(feed[0]);
			close(feed[1]);
			rc = MIG_EXIT_SYS;
		}
	}
	if (logw != em.log)
		close(logw);
	if (rc == 0) {
		struct feed f = { .fd = feed[1], .cap = HOLD_BACK, .src = src };
		rc = migrecv_run(&em, &f, sock, timeout_s);
		free(f.ring);
	}
	close(em.log);
	goto out;

bad_stream:
	mig_warn("stdin: %s", e.msg);
	rc = e.code ? e.code : MIG_EXIT_DATA;
out:
	if (rc == MIG_EXIT_OK)
		sock_armed = 0; /* the VM runs on: the socket is its monitor */
	else
		sock_remove_now(); /* the emulator is gone already */
	if (emu_pidfd >= 0)
		close(emu_pidfd);
	migrecv_av_free(&av);
	free(sock);
	json_decref(src_argv);
	mig_envelopes_free(&env);
	mig_src_free(base);
	return rc;
}

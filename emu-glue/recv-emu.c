/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * recv-emu.c - the emulator and its keeper: starting it, asking whether it
 * still runs, killing it, showing its log.
 *
 * Processes: mig-recv forks a keeper, which starts the emulator (in its
 * own session, stdin /dev/null, output to the log) and waits for it. Both
 * the keeper and the emulator die with their parent (PR_SET_PDEATHSIG)
 * until mig-recv, on success, tells the keeper to detach: then neither
 * mig-recv's death nor the pipeline's end can touch the VM.
 *
 * Apart because the keeper is a process of its own, with its own rules
 * about which descriptors and signals it has.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mig.h"
#include "mig-recv.h"

/* In the emulator's process: its session, /dev/null for stdin, the log
 * for its output, the feed as INCOMING_FD and no other descriptor. The
 * message if it cannot run goes to the log, shown with its name. */
static void exec_emulator(int feed, int logfd, char **argv, pid_t keeper)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != keeper)
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

/* The emulator's wait status to mig-recv; the keeper's work is done. */
static void report_exit(int report, int st)
{
	int32_t s32 = st;

	if (write(report, &s32, sizeof s32) < 0)
		_exit(1);
	_exit(0);
}

/* mig-recv said 'D': the VM lives on without it. Only once the keeper
 * no longer dies with mig-recv may mig-recv exit. */
static void detach(int ctl, int report, pid_t q)
{
	int st;

	prctl(PR_SET_PDEATHSIG, 0);
	if (write(report, "A", 1) < 0) { /* it is gone: fine */ }
	close(ctl);
	close(report);
	setsid();
	while (waitpid(q, &st, 0) < 0 && errno == EINTR)
		;
	_exit(0);
}

/* Wait for the emulator's end or mig-recv's word: 'D' detach, 'K' or
 * EOF (mig-recv gone) kill. */
static void keep(int ctl, int report, pid_t q)
{
	for (;;) {
		struct pollfd pf = { ctl, POLLIN, 0 };
		int r = poll(&pf, 1, 50);
		int st;
		char c = 0;
		ssize_t n;

		if (waitpid(q, &st, WNOHANG) == q)
			report_exit(report, st);
		if (r <= 0)
			continue;
		n = read(ctl, &c, 1);
		if (n == 1 && c == 'D')
			detach(ctl, report, q);
		if (n <= 0 || c == 'K') {
			kill(q, SIGKILL);
			while (waitpid(q, &st, 0) < 0 && errno == EINTR)
				;
			report_exit(report, st);
		}
	}
}

/* The keeper: dies with mig-recv until told to detach; starts the
 * emulator, reports its pid, then its wait status. */
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
	if (q == 0)
		exec_emulator(feed, logfd, argv, me);
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
	keep(ctl, report, q);
}

int migrecv_emu_start(struct emu *em, char **argv, int feed_r, int feed_w,
		     int logw)
{
	int c[2] = { -1, -1 }, r[2] = { -1, -1 };
	pid_t k = -1, parent = getpid();
	if (pipe2(c, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0)
		mig_warn("pipe: %s", strerror(errno));
	else if (fflush(NULL), (k = fork()) < 0)
		mig_warn("fork: %s", strerror(errno));
	if (k < 0) {
		for (int i = 0; i < 2; i++) {
			if (c[i] >= 0)
				close(c[i]);
			if (r[i] >= 0)
				close(r[i]);
		}
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
bool migrecv_emu_alive(void *ctx)
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
void migrecv_emu_kill(struct emu *em)
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
		migrecv_emu_alive(em);
	}
	if (!em->exited && em->pid > 0)
		kill(em->pid, SIGKILL);
	if (em->keeper > 0)
		waitpid(em->keeper, NULL, 0);
}

/* The emulator's own messages, on our stderr. */
void migrecv_show_log(struct emu *em)
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

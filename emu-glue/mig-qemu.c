/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-qemu - the sending end: drive a QEMU migration over QMP through a
 * migkit pipeline, and say whether it really succeeded.
 *
 *   mig-qemu migrate    [options] QMP-SOCKET 'PIPELINE'
 *   mig-qemu checkpoint [options] QMP-SOCKET [FILTER...] FILE
 *   mig-qemu restore    [options] FILE [FILTER...] -- [EMULATOR ARGS...]
 *   mig-qemu seal       [--meta KEY=VALUE]... [--meta-file FILE]
 *
 * migrate and checkpoint make QEMU run
 *     exec:exec setsid /bin/bash -c 'exec 2>>D/err; echo $$ >D/pid;
 *         mig-qemu seal --meta-file D/meta | PIPELINE;
 *         echo "${PIPESTATUS[*]}" >D/status'
 * so that the stream leaves QEMU wrapped in an envelope whose END is
 * written only if QEMU's own stream is structurally complete (seal), the
 * exit status of every stage is known (D/status), and the stages' messages
 * reach the user (D/err, relayed as they come). Success is QMP's
 * "completed" and every stage's exit status 0.
 *
 * Here: the options, migrate and checkpoint (the pipeline each hands
 * QEMU), and main(); the rest is in qemu-*.c (mig-qemu.h).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"
#include "mig-qemu.h"

bool migqemu_quiet, migqemu_verbose, migqemu_json_out, migqemu_progress;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-qemu migrate    [options] QMP-SOCKET 'PIPELINE'\n"
		"       mig-qemu checkpoint [options] [--base PREV...] QMP-SOCKET "
		"[FILTER...] FILE\n"
		"       mig-qemu restore    [options] FILE [FILTER...] -- "
		"[EMULATOR ARGS...]\n"
		"       mig-qemu seal       [--meta KEY=VALUE]... [--meta-file F]\n"
		"Drive a QEMU migration over QMP through a migkit pipeline; "
		"success means QEMU\ncompleted AND every stage of the pipeline, "
		"the far side included, exited 0.\n\n"
		"migrate and checkpoint:\n"
		"      --send-config      put the source's command line in "
		"META (qemu.argv)\n"
		"      --meta KEY=VALUE   more META (repeatable)\n"
		"      --sign KEY         sign the stream (mig-keygen "
		"--sign-pair)\n"
		"      --bandwidth N      max-bandwidth in bytes/s (default: "
		"unlimited)\n"
		"      --downtime MS      downtime-limit\n"
		"      --downtime-max MS  raise the downtime limit step by step "
		"up to MS\n"
		"                         while the migration does not converge\n"
		"      --auto-converge[=INITIAL,INCREMENT]\n"
		"                         throttle the guest's CPUs (percent)\n"
		"      --xbzrle[=CACHE]   send pages again as deltas (cache size)\n"
		"      --dirty-limit[=MBPS]  limit each vCPU's dirty rate (QEMU "
		"8.1+)\n"
		"      --switchover-bandwidth RATE|auto  the rate QEMU counts on "
		"to switch\n"
		"                         over (QEMU 8.2+; auto: the measured "
		"drain rate)\n"
		"      --timeout SEC      cancel the migration after SEC seconds\n"
		"      --grace SEC        wait for the pipeline after QEMU's "
		"verdict (30)\n"
		"      --json             progress and result as JSON lines "
		"on stdout\n"
		"      --progress         the progress line even where stderr "
		"is no terminal\n"
		"      --resume           checkpoint: let the VM run on "
		"afterwards\n"
		"      --base PREV        checkpoint: a delta against the last "
		"state of the chain\n"
		"                         PREV... (repeatable; mig-delta(1)); "
		"restore: FILE is one\n"
		"      --decode CMD       checkpoint --base: the decoders of the "
		"chain's files\n"
		"restore:\n"
		"      --from-stream      start the emulator from the "
		"checkpoint's META\n"
		"      --signer PUB       accept only a stream signed by PUB "
		"(repeatable;\n"
		"                         --from-stream needs one, or "
		"--trust-unsigned)\n"
		"      --trust-unsigned   --from-stream without a signature\n"
		"      --emulator PATH    the emulator for --from-stream "
		"(mig-recv(1))\n"
		"      --allow NAME       keep the stream's option or property "
		"NAME (repeatable)\n"
		"      --not-before WHEN  refuse a stream signed before WHEN "
		"(@SECONDS or\n"
		"                         YYYY-MM-DDTHH:MM:SSZ)\n"
		"common:\n"
		"  -v, --verbose  -q, --quiet  -h, --help  -V, --version\n\n"
		"Exit status: 0 success; 1 the migration or a stage failed; "
		"2 usage; 3 I/O\nerror (QMP socket, files). See mig-qemu(1).\n");
}

/* The seal runs in QEMU's working directory, not ours: keep the key's
 * absolute path, once it has been read here, so a bad key fails now and
 * not after QEMU has started migrating. */
static int check_signing_key(const char *path, char **abs)
{
	struct mig_signing_key *k;
	struct mig_err e = { 0 };

	if (mig_signing_key_load(&k, path, &e) < 0) {
		mig_warn("--sign: %s", e.msg);
		return -1;
	}
	mig_signing_key_free(k);
	free(*abs);
	if (!(*abs = realpath(path, NULL))) {
		mig_warn("--sign: %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void migqemu_common_free(struct common *c)
{
	free(c->meta);
	free(c->bases);
	free(c->signers);
	free(c->allows);
	free(c->sign);
	c->meta = NULL;
	c->bases = NULL;
	c->signers = NULL;
	c->allows = NULL;
	c->sign = NULL;
}

/* Room for every repeatable option, and the defaults. */
static int common_init(int argc, struct common *c)
{
	c->meta = calloc((size_t)argc + 1, sizeof *c->meta);
	c->signers = calloc((size_t)argc + 1, sizeof *c->signers);
	c->allows = calloc((size_t)argc + 1, sizeof *c->allows);
	c->bases = calloc((size_t)argc + 1, sizeof *c->bases);
	if (!c->meta || !c->signers || !c->allows || !c->bases) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	c->bandwidth = 1ull << 40;
	c->grace_ms = 30000;
	return MIG_GO_ON;
}

/* --meta KEY=VALUE, refused now if the seal would refuse it. */
static int add_meta(const char *kv, struct common *c)
{
	struct mig_meta m;
	struct mig_err e;

	if (mig_meta_parse((const uint8_t *)kv, strlen(kv), &m, &e) < 0)
		return mig_usage_error("--meta '%s': %s", kv, e.msg);
	mig_meta_clear(&m);
	c->meta[c->nmeta++] = kv;
	return MIG_GO_ON;
}

enum { O_SEND = 256, O_META, O_BW, O_DT, O_TMO, O_GRACE, O_JSON, O_RESUME,
       O_FROM, O_SIGN, O_SIGNER, O_TRUST_UNSIGNED, O_NOT_BEFORE, O_EMU,
       O_ALLOW, O_PROGRESS, O_DT_MAX, O_AUTO_CONV, O_XBZRLE, O_DIRTY_LIMIT, O_SWITCH_BW,
       O_BASE, O_DECODE };

/* --auto-converge[=INITIAL,INCREMENT]: QEMU's throttle, in percent. */
static int auto_converge_option(const char *arg, struct converge *cv)
{
	char a[32];
	const char *comma = arg ? strchr(arg, ',') : NULL;

	cv->auto_converge = true;
	if (!arg)
		return MIG_GO_ON;
	if (!comma || (size_t)(comma - arg) >= sizeof a ||
	    (snprintf(a, sizeof a, "%.*s", (int)(comma - arg), arg),
	     (cv->throttle_initial = mig_parse_whole(a, 1, 99)) < 0) ||
	    (cv->throttle_increment = mig_parse_whole(comma + 1, 1, 99)) < 0)
		return mig_usage_error("--auto-converge='%s': not INITIAL,INCREMENT "
				       "(percent, 1 to 99)", arg);
	return MIG_GO_ON;
}

/* The options that help a migration converge (struct converge). */
static int converge_option(int o, const char *arg, struct converge *cv)
{
	switch (o) {
	case O_AUTO_CONV: return auto_converge_option(arg, cv);
	case O_XBZRLE:
		cv->xbzrle = true;
		if (arg && (mig_parse_size(arg, &cv->xbzrle_cache) < 0 ||
			    (cv->xbzrle_cache & (cv->xbzrle_cache - 1)) ||
			    cv->xbzrle_cache < 4096))
			return mig_usage_error("--xbzrle='%s': not a cache size: a power "
					       "of two, at least 4K", arg);
		break;
	case O_DIRTY_LIMIT:
		cv->dirty_limit = -1; /* QEMU's vcpu-dirty-limit */
		if (arg && (cv->dirty_limit = mig_parse_whole(arg, 1, 1L << 30)) < 0)
			return mig_usage_error("--dirty-limit='%s': not a rate in "
					       "MB/s", arg);
		break;
	case O_SWITCH_BW:
		if (!strcmp(arg, "auto"))
			cv->switchover_auto = true;
		else if (mig_parse_size(arg, &cv->switchover_bw) < 0 ||
			 !cv->switchover_bw)
			return mig_usage_error("--switchover-bandwidth '%s': not a "
					       "rate (bytes/s) or auto", arg);
		break;
	case O_DT_MAX:
		if ((cv->downtime_max_ms = mig_parse_whole(arg, 1, 3600000)) < 0)
			return mig_usage_error("--downtime-max '%s': not a number "
					       "of milliseconds", arg);
		break;
	}
	return MIG_GO_ON;
}

/* One option: MIG_GO_ON, or the exit status to leave with. */
static int take_option(int o, char *arg, struct common *c)
{
	switch (o) {
	case O_SEND: c->send_config = true; break;
	case O_META: return add_meta(arg, c);
	case O_BW:
		if (mig_parse_size(arg, &c->bandwidth) < 0)
			return mig_usage_error("--bandwidth '%s': not a size", arg);
		break;
	case O_DT: c->downtime_ms = atol(arg); break;
	case O_TMO: c->timeout_ms = atol(arg) * 1000; break;
	case O_GRACE: c->grace_ms = atol(arg) * 1000; break;
	case O_JSON: migqemu_json_out = true; break;
	case O_PROGRESS: migqemu_progress = true; break;
	case O_RESUME: c->resume = true; break;
	case O_FROM: c->from_stream = true; break;
	case O_SIGN:
		/* a key that is no signing key: said as it is, exit 2 */
		if (check_signing_key(arg, &c->sign) < 0)
			return MIG_EXIT_USAGE;
		break;
	case O_SIGNER: c->signers[c->nsigners++] = arg; break;
	case O_TRUST_UNSIGNED: c->trust_unsigned = true; break;
	case O_NOT_BEFORE: c->not_before = arg; break;
	case O_EMU: c->emulator = arg; break;
	case O_ALLOW: c->allows[c->nallows++] = arg; break;
	case O_BASE: c->bases[c->nbases++] = arg; break;
	case O_DECODE: c->decode = arg; break;
	case O_DT_MAX: case O_AUTO_CONV: case O_XBZRLE: case O_DIRTY_LIMIT:
	case O_SWITCH_BW:
		return converge_option(o, arg, &c->cv);
	case 'v': migqemu_verbose = true; break;
	case 'q': migqemu_quiet = true; break;
	}
	return MIG_GO_ON;
}

/* The options that do not go together. */
static int check_converge(const struct common *c)
{
	const struct converge *cv = &c->cv;

	if (cv->dirty_limit && cv->auto_converge)
		return mig_usage_error("--dirty-limit and --auto-converge: QEMU "
				       "throttles one way or the other, not both");
	if (cv->downtime_max_ms && cv->downtime_max_ms < c->downtime_ms)
		return mig_usage_error("--downtime-max %ld is below --downtime %ld",
				       cv->downtime_max_ms, c->downtime_ms);
	return MIG_GO_ON;
}

int migqemu_parse_common(int argc, char **argv, struct common *c)
{
	static const struct option lo[] = {
		{ "send-config", no_argument, NULL, O_SEND },
		{ "meta", required_argument, NULL, O_META },
		{ "bandwidth", required_argument, NULL, O_BW },
		{ "downtime", required_argument, NULL, O_DT },
		{ "timeout", required_argument, NULL, O_TMO },
		{ "grace", required_argument, NULL, O_GRACE },
		{ "json", no_argument, NULL, O_JSON },
		{ "progress", no_argument, NULL, O_PROGRESS },
		{ "resume", no_argument, NULL, O_RESUME },
		{ "from-stream", no_argument, NULL, O_FROM },
		{ "sign", required_argument, NULL, O_SIGN },
		{ "signer", required_argument, NULL, O_SIGNER },
		{ "trust-unsigned", no_argument, NULL, O_TRUST_UNSIGNED },
		{ "not-before", required_argument, NULL, O_NOT_BEFORE },
		{ "emulator", required_argument, NULL, O_EMU },
		{ "allow", required_argument, NULL, O_ALLOW },
		{ "downtime-max", required_argument, NULL, O_DT_MAX },
		{ "auto-converge", optional_argument, NULL, O_AUTO_CONV },
		{ "xbzrle", optional_argument, NULL, O_XBZRLE },
		{ "dirty-limit", optional_argument, NULL, O_DIRTY_LIMIT },
		{ "switchover-bandwidth", required_argument, NULL, O_SWITCH_BW },
		{ "base", required_argument, NULL, O_BASE },
		{ "decode", required_argument, NULL, O_DECODE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o, rc = common_init(argc, c);

	optind = 1;
	opterr = 0; /* our own messages, in our own form */
	while (rc == MIG_GO_ON &&
	       (o = getopt_long(argc, argv, "+:vqh", lo, NULL)) != -1) {
		if (o == 'h') {
			usage(stdout);
			return mig_stdout_finish();
		}
		if (o == ':')
			return mig_usage_error("%s: %s needs a value", argv[0],
					       argv[optind - 1]);
		if (o == '?')
			return mig_usage_error("%s: unknown option '%s'", argv[0],
					       argv[optind - 1]);
		rc = take_option(o, optarg, c);
	}
	if (rc == MIG_GO_ON)
		rc = check_converge(c);
	if (rc == MIG_GO_ON && c->decode && !c->nbases)
		rc = mig_usage_error("%s: --decode is for the files of --base",
				     argv[0]);
	if (rc == MIG_GO_ON && migqemu_json_out && mig_stdout_closed()) {
		mig_warn("--json: stdout: closed"); /* it would be lost */
		return MIG_EXIT_IO;
	}
	return rc;
}

static void fill_drive(struct drive *dr, const struct common *c)
{
	dr->send_config = c->send_config;
	dr->sign = c->sign;
	dr->meta = c->meta;
	dr->nmeta = c->nmeta;
	dr->bandwidth = c->bandwidth;
	dr->downtime_ms = c->downtime_ms;
	dr->cv = c->cv;
	dr->timeout_ms = c->timeout_ms;
	dr->grace_ms = c->grace_ms;
	dr->stages[0] = "mig-qemu seal";
	dr->nstages = 1;
}

static int cmd_migrate(int argc, char **argv)
{
	struct common c = { 0 };
	struct drive dr = { 0 };
	int r = migqemu_parse_common(argc, argv, &c);
	if (r != MIG_GO_ON) {
		migqemu_common_free(&c);
		return r;
	}
	if (argc - optind != 2 || c.nbases) {
		migqemu_common_free(&c);
		return mig_usage_error(c.nbases ? "migrate: --base is for "
				       "checkpoint and restore" :
				       "migrate: need QMP-SOCKET and 'PIPELINE'");
	}
	fill_drive(&dr, &c);
	dr.qmp_path = argv[optind];
	struct str pl = { 0 };
	migqemu_str_add(&pl, "| ");
	migqemu_str_add(&pl, argv[optind + 1]);
	dr.pipeline = pl.s;
	dr.nstages += migqemu_split_stages(argv[optind + 1], dr.stages + 1, 63);
	int rc = migqemu_drive(&dr);
	for (size_t i = 1; i < dr.nstages; i++)
		free(dr.stages[i]);
	free(pl.s);
	migqemu_common_free(&c);
	return rc;
}

/* The checkpoint's temporary name, absolute (QEMU runs the pipeline in
 * its own working directory), beside FILE: renamed to it on success. */
static int temp_beside(const char *file, char *tmp, size_t len)
{
	char *dcopy = strdup(file), *bcopy = strdup(file), *dir;
	int rc = 0;

	if (!dcopy || !bcopy) {
		mig_warn("out of memory");
		rc = MIG_EXIT_SYS;
	} else if (!(dir = realpath(dirname(dcopy), NULL))) {
		mig_warn("%s: %s", file, strerror(errno));
		rc = MIG_EXIT_IO;
	} else {
		snprintf(tmp, len, "%s/.%s.mig-qemu.%ld", dir, basename(bcopy),
			 (long)getpid());
		free(dir);
	}
	free(dcopy);
	free(bcopy);
	return rc;
}

/* "| FILTER | FILTER > TMP", each FILTER a stage of its own; with a
 * chain, "| mig-delta --base F0 --base F1..." first. */
static char *checkpoint_pipeline(char **filters, int nf, const char *tmp,
				 const char *bases, struct drive *dr)
{
	struct str pl = { 0 };

	migqemu_str_add(&pl, "");
	if (bases) {
		migqemu_str_add(&pl, "| ");
		migqemu_str_addq(&pl, migqemu_sibling("mig-delta"));
		migqemu_str_add(&pl, bases);
		migqemu_str_add(&pl, " ");
		dr->stages[dr->nstages++] = "mig-delta";
	}
	for (int i = 0; i < nf; i++) {
		migqemu_str_add(&pl, "| ");
		migqemu_str_add(&pl, filters[i]);
		migqemu_str_add(&pl, " ");
		if (dr->nstages < 64)
			dr->stages[dr->nstages++] = filters[i];
	}
	migqemu_str_add(&pl, "> ");
	migqemu_str_addq(&pl, tmp);
	return pl.s;
}

/* --base: the chain, as mig-delta's arguments. 0 or an exit status. */
static int checkpoint_base(const struct common *c, struct chain *ch,
			   char **args)
{
	int rc = migqemu_chain_prepare(ch, c->bases, c->nbases, c->decode);

	if (!rc)
		*args = migqemu_chain_args(ch);
	return rc;
}

static int cmd_checkpoint(int argc, char **argv)
{
	struct common c = { 0 };
	struct drive dr = { 0 };
	struct chain ch = { 0 };
	char tmp[PATH_MAX * 2], *pipeline = NULL, *base = NULL;
	const char *file = argv[argc - 1];
	int rc = migqemu_parse_common(argc, argv, &c);

	if (rc == MIG_GO_ON && argc - optind < 2)
		rc = mig_usage_error("checkpoint: need QMP-SOCKET and FILE");
	if (rc == MIG_GO_ON && c.nbases)
		rc = checkpoint_base(&c, &ch, &base);
	if (rc == MIG_GO_ON || rc == 0)
		rc = temp_beside(file, tmp, sizeof tmp);
	if (rc == 0) {
		fill_drive(&dr, &c);
		dr.qmp_path = argv[optind];
		dr.resume = c.resume;
		dr.pipeline = pipeline = checkpoint_pipeline(
			argv + optind + 1, argc - optind - 2, tmp, base, &dr);
		rc = migqemu_drive(&dr);
		if (rc == 0 && rename(tmp, file) < 0) {
			mig_warn("%s: %s", file, strerror(errno));
			rc = MIG_EXIT_IO;
		}
		if (rc != 0) {
			unlink(tmp);
			mig_warn("no checkpoint written to %s", file);
		} else if (!migqemu_quiet) {
			mig_warn("checkpoint %s written; the VM is %s", file,
				 dr.src_status);
		}
	}
	free(pipeline);
	free(base);
	migqemu_chain_free(&ch);
	migqemu_common_free(&c);
	return rc;
}

int main(int argc, char **argv)
{
	mig_progname = "mig-qemu";
	if (mig_stdfds_ensure(NULL) < 0) /* before anything is opened */
		return MIG_EXIT_SYS;
	if (argc < 2)
		return mig_usage_error("no command given (migrate, checkpoint, "
				       "restore, seal)");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return mig_stdout_finish();
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version"))
		return mig_print_version();
	if (!strcmp(cmd, "seal")) {
		if (mig_stdout_closed()) { /* the sealed stream would be lost */
			mig_warn("stdout: closed");
			return MIG_EXIT_IO;
		}
		return migqemu_cmd_seal(argc - 1, argv + 1);
	}
	if (!strcmp(cmd, "migrate"))
		return cmd_migrate(argc - 1, argv + 1);
	if (!strcmp(cmd, "checkpoint"))
		return cmd_checkpoint(argc - 1, argv + 1);
	if (!strcmp(cmd, "restore"))
		return migqemu_cmd_restore(argc - 1, argv + 1);
	return mig_usage_error("unknown command '%s' (migrate, checkpoint, "
			       "restore, seal)", cmd);
}

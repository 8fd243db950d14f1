/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * recv-trust.c - whom mig-recv believes: the signers named with --signer,
 * and how old a stream they signed may be (--not-before).
 *
 * The envelopes check every signature as they are read (channel/
 * envelope.c): given signers, an envelope unsigned or signed by anyone
 * else fails at its header, before its META is read, and one whose END
 * signature fails never lets the emulator finish loading. What is left
 * here is what the envelopes cannot know: that a stream without any
 * envelope is unsigned too, and the reader's own floor on time, against
 * a signer's older checkpoint put in the place of a newer one.
 */
#define _XOPEN_SOURCE 700
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mig.h"
#include "mig-recv.h"

int migrecv_parse_when(const char *s, int64_t *when)
{
	char *end;
	struct tm tm = { 0 };

	if (s[0] == '@') {
		long long v = strtoll(s + 1, &end, 10);
		if (end == s + 1 || *end)
			return -1;
		*when = v;
		return 0;
	}
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	*when = (int64_t)timegm(&tm);
	return 0;
}

static void format_when(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "@%lld", (long long)t);
}

int migrecv_trust_check(const struct mig_envelopes *env,
			const struct recv_trust *t, struct mig_err *e)
{
	struct mig_seal_sig sig;
	char at[32], floor[32];

	if (!t->signers.n)
		return 0;
	if (env->n == 0)
		return mig_err_set(e, MIG_EXIT_DATA, "the stream is not signed "
				   "(it has no envelope), and a trusted signer "
				   "is required (--signer)");
	/* the envelope around the QEMU stream: its END covers all of it */
	mig_envelope_signature(env->st[env->n - 1], &sig);
	if (migrecv_verbose) {
		char id[2 * MIG_STREAM_ID_BYTES + 1];
		for (size_t i = 0; i < MIG_STREAM_ID_BYTES; i++)
			snprintf(id + 2 * i, 3, "%02x", sig.stream_id[i]);
		format_when(sig.created, at, sizeof at);
		mig_warn("signed by %s at %s, stream %s", sig.signer_id, at, id);
	}
	if (t->has_not_before && sig.created < t->not_before) {
		format_when(sig.created, at, sizeof at);
		format_when(t->not_before, floor, sizeof floor);
		return mig_err_set(e, MIG_EXIT_DATA, "the stream was signed at %s, "
				   "before --not-before %s: refusing an older "
				   "stream", at, floor);
	}
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qemu-converge.c - a live migration that finishes: the capabilities and
 * parameters that help it converge (auto-converge, xbzrle, dirty-limit,
 * avail-switchover-bandwidth), refused where this QEMU has none; the
 * watch over it (rates, rounds, percent, ETA); the downtime policy; and,
 * when it does not finish in time, why.
 *
 * A round is what QEMU sends between two dirty syncs. QEMU syncs when
 * what is left to send (ram.remaining) falls below what it could send
 * within the downtime limit; the sync adds the pages dirtied meanwhile, so
 * a round's size is the largest remaining seen in it. A migration
 * converges when its rounds shrink; when they stop shrinking, only a
 * slower guest (auto-converge, dirty-limit), a faster pipeline or a longer
 * downtime limit ends it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"
#include "qemu-converge.h"

static uint64_t u64_of(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

static bool has_capability(json_t *caps, const char *name)
{
	size_t i;
	json_t *c;

	json_array_foreach(caps, i, c) {
		const char *n = json_string_value(json_object_get(c, "capability"));
		if (n && !strcmp(n, name))
			return true;
	}
	return false;
}

static void read_version(struct watch *w)
{
	json_t *v = migqemu_qmp_get(w->q, "query-version", NULL);
	json_t *qv = json_object_get(v, "qemu");

	snprintf(w->version, sizeof w->version, "%lld.%lld.%lld",
		 (long long)json_integer_value(json_object_get(qv, "major")),
		 (long long)json_integer_value(json_object_get(qv, "minor")),
		 (long long)json_integer_value(json_object_get(qv, "micro")));
	json_decref(v);
}

/* An option this QEMU cannot honour: said with its version, exit 2. */
static int lacks(const struct watch *w, const char *opt, const char *what,
		 const char *since)
{
	mig_warn("%s: this QEMU (%s) has no %s (QEMU %s and later have it)",
		 opt, w->version, what, since);
	return MIG_EXIT_USAGE;
}

int migqemu_converge_check(struct watch *w, long downtime_ms)
{
	const struct converge *cv = w->cv;
	json_t *caps = NULL, *params;
	int rc = MIG_GO_ON;

	w->dirty_bps = w->fall_bps = w->wire_bps = w->percent = w->eta_s = -1;
	read_version(w);
	if (cv->dirty_limit) {
		if (!(caps = migqemu_qmp_get(w->q, "query-migrate-capabilities", NULL)))
			return MIG_EXIT_IO;
		if (!has_capability(caps, "dirty-limit"))
			rc = lacks(w, "--dirty-limit", "dirty-limit capability", "8.1");
		json_decref(caps);
	}
	if (rc != MIG_GO_ON)
		return rc;
	if (!(params = migqemu_qmp_get(w->q, "query-migrate-parameters", NULL)))
		return MIG_EXIT_IO;
	if ((cv->switchover_bw || cv->switchover_auto) &&
	    !json_object_get(params, "avail-switchover-bandwidth"))
		rc = lacks(w, "--switchover-bandwidth",
			   "avail-switchover-bandwidth parameter", "8.2");
	w->limit_ms = downtime_ms > 0 ? downtime_ms
				       : (long)u64_of(params, "downtime-limit");
	w->start_limit_ms = w->limit_ms;
	json_decref(params);
	return rc;
}

static void add_capability(json_t *caps, const char *name, bool on)
{
	json_array_append_new(caps, json_pack("{s:s, s:b}", "capability", name,
					      "state", on));
}

/* auto-converge and xbzrle are set as the options say, on or off, so that
 * a migration is what its command line says whatever ran before. */
void migqemu_converge_setup(const struct watch *w, json_t *params, json_t *caps)
{
	const struct converge *cv = w->cv;

	add_capability(caps, "auto-converge", cv->auto_converge);
	add_capability(caps, "xbzrle", cv->xbzrle);
	if (cv->dirty_limit)
		add_capability(caps, "dirty-limit", true);
	if (cv->throttle_initial) {
		json_object_set_new(params, "cpu-throttle-initial",
				    json_integer(cv->throttle_initial));
		json_object_set_new(params, "cpu-throttle-increment",
				    json_integer(cv->throttle_increment));
	}
	if (cv->xbzrle_cache)
		json_object_set_new(params, "xbzrle-cache-size",
				    json_integer((json_int_t)cv->xbzrle_cache));
	if (cv->dirty_limit > 0)
		json_object_set_new(params, "vcpu-dirty-limit",
				    json_integer(cv->dirty_limit));
	if (cv->switchover_bw)
		json_object_set_new(params, "avail-switchover-bandwidth",
				    json_integer((json_int_t)cv->switchover_bw));
}

#define WINDOW_MS 10000
#define SETTLE_MS 2000

/* Keep a sample at most every 250 ms: the ring covers 16 s; note where
 * the stream stood once the pipes had filled. */
static void add_sample(struct watch *w, long now)
{
	if (w->n && now - w->s[w->head].t < 250)
		return;
	if (!w->n)
		w->t_first = now;
	if (!w->t_settled && now - w->t_first >= SETTLE_MS) {
		w->t_settled = now;
		w->tr_settled = w->transferred;
	}
	w->head = (w->head + 1) % WATCH_SAMPLES;
	w->s[w->head] = (struct watch_sample){ now, w->remaining, w->transferred };
	if (w->n < WATCH_SAMPLES)
		w->n++;
}

/* Over the last WINDOW_MS: how fast transferred grows, and how fast
 * remaining falls between syncs (its rises, the syncs, left out). The
 * first SETTLE_MS are left out once the window can do without them:
 * then QEMU fills the pipes and the stages' buffers faster than the
 * pipeline drains, which the rest of the migration never sees again. */
static void measure_rates(struct watch *w)
{
	size_t i, k = w->head;
	uint64_t fell = 0;
	long t_new = w->s[w->head].t, t_old = t_new;
	uint64_t tr_old = w->s[w->head].transferred;
	long t_from = t_new - w->t_first >= SETTLE_MS + 1000
		      ? w->t_first + SETTLE_MS : w->t_first;

	for (i = 1; i < w->n; i++) {
		size_t prev = (k + WATCH_SAMPLES - 1) % WATCH_SAMPLES;
		if (t_new - w->s[prev].t > WINDOW_MS || w->s[prev].t < t_from)
			break;
		if (w->s[prev].remaining > w->s[k].remaining)
			fell += w->s[prev].remaining - w->s[k].remaining;
		t_old = w->s[prev].t;
		tr_old = w->s[prev].transferred;
		k = prev;
	}
	if (t_new - t_old < 1000)
		return; /* too short to say */
	w->fall_bps = (double)fell * 1000 / (double)(t_new - t_old);
	w->wire_bps = (double)(w->s[w->head].transferred - tr_old) * 1000 /
		      (double)(t_new - t_old);
}

/* A round ended with SIZE bytes to send: did the rounds shrink? */
static void end_round(struct watch *w, uint64_t size)
{
	memmove(w->rounds + 1, w->rounds, sizeof w->rounds - sizeof *w->rounds);
	w->rounds[0] = size;
	if (!w->best_round || size < w->best_round - w->best_round / 10) {
		w->best_round = size;
		w->flat_rounds = 0;
	} else {
		w->flat_rounds++;
	}
}

/* Rounds count from the second sync: the first pass sends all of RAM. */
static void follow_rounds(struct watch *w, long syncs)
{
	if (syncs != w->syncs) {
		if (w->syncs >= 2)
			end_round(w, w->round_max);
		w->syncs = syncs;
		w->round_max = w->remaining;
	} else if (w->remaining > w->round_max) {
		w->round_max = w->remaining;
	}
}

/* The stream's bytes per byte of RAM sent so far in the first pass: a
 * zero page costs a few bytes, another a page and its header, so RAM
 * mostly of zeros goes many times faster than RAM of data. */
static double first_pass_ratio(const struct watch *w)
{
	uint64_t sent = w->total > w->remaining ? w->total - w->remaining : 0;

	return sent ? (double)w->transferred / (double)sent : 1;
}

/* The seconds the pipeline needs for what QEMU handed it and it has not
 * delivered yet (its pipes and the stages' buffers): QEMU completes
 * only once the pipeline has ended. Where the pipeline sets the pace,
 * the stream has grown at one rate since the buffers filled, and what
 * QEMU wrote beyond that rate since the start is what they hold. Where
 * QEMU does (its rate rising and falling with the zero pages), the
 * pipeline keeps up and holds next to nothing: none is counted. */
static double backlog_s(const struct watch *w, long now)
{
	double held, steady;

	if (w->wire_bps <= 0 || !w->t_settled || now - w->t_settled < 1000)
		return 0;
	steady = (double)(w->transferred - w->tr_settled) * 1000 /
		 (double)(now - w->t_settled);
	if (steady < w->wire_bps * 0.9 || steady > w->wire_bps * 1.1)
		return 0;
	held = (double)w->transferred - w->wire_bps * (double)(now - w->t_first) / 1000;
	return held > 0 ? held / w->wire_bps : 0;
}

/* The ETA, to QEMU's verdict. In the first pass: what is left of RAM, in
 * bytes of the stream at the ratio seen so far, over the rate the
 * pipeline takes the stream (remaining's own fall rate would count the
 * zero pages behind as if the rest were like them). After it: what is
 * left at the rate remaining falls less the rate the guest dirties; none
 * when that is not positive, as in a migration that does not converge.
 * Either way, plus the pipeline's backlog. */
static void estimate(struct watch *w, long now)
{
	double net = w->fall_bps - (w->dirty_bps > 0 ? w->dirty_bps : 0);

	if (w->total)
		w->percent = 100.0 * (double)(w->total - (w->remaining < w->total
						  ? w->remaining : w->total)) /
			     (double)w->total;
	if (w->syncs < 2)
		w->eta_s = w->wire_bps > 0 ? (double)w->remaining *
			   first_pass_ratio(w) / w->wire_bps : -1;
	else
		w->eta_s = w->fall_bps > 0 && net > 0 ? (double)w->remaining / net : -1;
	if (w->eta_s > 0)
		w->eta_s += backlog_s(w, now);
	if (w->remaining == 0 && w->fall_bps >= 0)
		w->eta_s = 0;
}

void migqemu_watch(struct watch *w, json_t *m, long now)
{
	json_t *ram = json_object_get(m, "ram");
	long syncs;

	if (!ram)
		return;
	w->total = u64_of(ram, "total");
	w->page_size = u64_of(ram, "page-size") ? u64_of(ram, "page-size") : 4096;
	w->remaining = u64_of(ram, "remaining");
	w->transferred = u64_of(ram, "transferred");
	w->expected_ms = (long)u64_of(m, "expected-downtime");
	syncs = (long)u64_of(ram, "dirty-sync-count");
	if (syncs >= 2)
		w->dirty_bps = (double)u64_of(ram, "dirty-pages-rate") *
			       (double)w->page_size;
	follow_rounds(w, syncs);
	add_sample(w, now);
	measure_rates(w);
	estimate(w, now);
}

static bool set_parameter(struct watch *w, const char *name, json_int_t v)
{
	json_t *r = migqemu_qmp_get(w->q, "migrate-set-parameters",
				    json_pack("{s:I}", name, v));
	json_decref(r);
	return r != NULL;
}

/* Two rounds in a row that did not shrink: double the downtime limit, up
 * to --downtime-max. */
static void raise_downtime(struct watch *w)
{
	const struct converge *cv = w->cv;
	long to = w->limit_ms * 2;
	char a[32], b[32], c[32];

	if (!cv->downtime_max_ms || w->flat_rounds < 2 ||
	    w->limit_ms >= cv->downtime_max_ms)
		return;
	if (to > cv->downtime_max_ms)
		to = cv->downtime_max_ms;
	if (!set_parameter(w, "downtime-limit", to))
		return;
	w->limit_ms = to;
	w->flat_rounds = 0;
	if (migqemu_quiet)
		return;
	mig_format_bytes(w->rounds[2], a, sizeof a);
	mig_format_bytes(w->rounds[1], b, sizeof b);
	mig_format_bytes(w->rounds[0], c, sizeof c);
	if (isatty(STDERR_FILENO)) /* after the progress line */
		fputc('\n', stderr);
	mig_warn("not converging (rounds of %s, %s, %s): downtime limit raised "
		 "to %ld ms (--downtime-max %ld)", a, b, c, to, cv->downtime_max_ms);
}

void migqemu_converge_steer(struct watch *w)
{
	raise_downtime(w);
	/* the drain rate as QEMU's switch-over bandwidth, when it moved by
	 * more than a tenth */
	if (w->cv->switchover_auto && w->wire_bps > 0) {
		uint64_t bw = (uint64_t)w->wire_bps, old = w->switchover_set;
		if ((bw > old + old / 10 || bw < old - old / 10) &&
		    set_parameter(w, "avail-switchover-bandwidth", (json_int_t)bw))
			w->switchover_set = bw;
	}
}

static void fmt_rate(double bps, char *buf, size_t len)
{
	size_t n;

	mig_format_bytes(bps > 0 ? (uint64_t)bps : 0, buf, len);
	n = strlen(buf);
	snprintf(buf + n, len - n, "/s");
}

/* It does not converge: the guest dirties as fast as the pipeline drains,
 * or the rounds stopped shrinking. */
static bool not_converging(const struct watch *w)
{
	return w->syncs >= 3 && w->fall_bps > 0 &&
	       (w->dirty_bps >= w->fall_bps * 0.9 || w->flat_rounds >= 2);
}

void migqemu_explain_timeout(const struct watch *w, long sec)
{
	char d[32], f[32], r[32];

	fmt_rate(w->dirty_bps, d, sizeof d);
	fmt_rate(w->fall_bps, f, sizeof f);
	mig_format_bytes(w->round_max, r, sizeof r);
	if (not_converging(w)) {
		mig_warn("timed out after %ld s: the migration does not converge: "
			 "the guest dirties %s, the pipeline drains %s (%s to send "
			 "again each round, %ld dirty syncs; downtime limit %ld ms, "
			 "QEMU expects %ld ms); try --auto-converge, a higher "
			 "--downtime or --downtime-max, or a higher --bandwidth",
			 sec, d, f, r, w->syncs, w->limit_ms, w->expected_ms);
		return;
	}
	mig_format_bytes(w->remaining, r, sizeof r);
	if (w->syncs < 2 && w->eta_s >= 0)
		mig_warn("timed out after %ld s in the first pass over RAM: %s left "
			 "at %s, about %.0f s more for this pass; try a longer "
			 "--timeout or a higher --bandwidth", sec, r, f, w->eta_s);
	else if (w->eta_s >= 0)
		mig_warn("timed out after %ld s: the migration converges but is not "
			 "done: %s left, about %.0f s more at %s; try a longer "
			 "--timeout", sec, r, w->eta_s, f);
	else
		mig_warn("timed out after %ld s: the migration is not done: %s "
			 "left%s%s; try a longer --timeout", sec, r,
			 w->fall_bps > 0 ? ", draining at " : "",
			 w->fall_bps > 0 ? f : "");
}

void migqemu_converge_restore(struct watch *w)
{
	if (w->limit_ms != w->start_limit_ms)
		set_parameter(w, "downtime-limit", w->start_limit_ms);
}

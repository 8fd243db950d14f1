# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# bench/lib.bash - shared by the benchmark scripts: timing, medians, tables.
#   BENCH_RUNS     runs per measurement; the median is reported (default 5)
#   BENCH_VERBOSE  set: every run's time on stderr (median_times)
BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIG_BIN=${MIG_BIN:-$BENCH_REPO/build/bin}
export PATH=$MIG_BIN:$PATH
RUNS=${BENCH_RUNS:-5}

# Seconds taken by a shell command line (run with pipefail), median of
# RUNS runs. Fails if any run fails.
median_time() {
	local i t0 ts=()
	for ((i = 0; i < RUNS; i++)); do
		t0=$EPOCHREALTIME
		bash -o pipefail -c "$1" || { echo "bench: failed: $1" >&2; return 1; }
		ts+=("$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { print a - b }')")
	done
	printf '%s\n' "${ts[@]}" | sort -g | sed -n "$((RUNS / 2 + 1))p"
}

# Like median_time for several command lines, run in turn in each round,
# so that a change of load on a noisy machine falls on all of them alike.
# Prints one median per line, in the order given. BENCH_PREP, if set, is
# run before each timed run, untimed (say, to remove the files a run writes).
median_times() {
	local i j t0 n=$#
	local -a ts=()
	for ((i = 0; i < RUNS; i++)); do
		for ((j = 1; j <= n; j++)); do
			if [ -n "${BENCH_PREP:-}" ]; then bash -c "$BENCH_PREP"; fi
			t0=$EPOCHREALTIME
			bash -o pipefail -c "${!j}" || { echo "bench: failed: ${!j}" >&2; return 1; }
			ts+=("$j $(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { print a - b }')")
			[ -z "${BENCH_VERBOSE:-}" ] || echo "bench: ${ts[-1]#* } s: ${!j}" >&2
		done
	done
	for ((j = 1; j <= n; j++)); do
		printf '%s\n' "${ts[@]}" | awk -v j="$j" '$1 == j { print $2 }' |
			sort -g | sed -n "$((RUNS / 2 + 1))p"
	done
}

# A real QEMU stream of a guest of MIB MiB at PATH, made once per run
# (BENCH_STREAM reuses one).
bench_stream() { # PATH MIB
	if [ -n "${BENCH_STREAM:-}" ]; then
		ln -sf "$BENCH_STREAM" "$1"
	else
		"$BENCH_REPO/scripts/make-test-stream" "$1" "$2" >/dev/null
	fi
}

# One table row: NAME SECONDS BYTES BASELINE_SECONDS
row() {
	set -- "${1//|/\\|}" "${@:2}"
	awk -v n="$1" -v t="$2" -v s="$3" -v f="$4" \
		'BEGIN { printf "| %-44s | %8.3f | %8.0f | %6.2f |\n", n, t, s / t / 1e6, t / f }'
}
table_head() { # TITLE-OF-RATIO-COLUMN
	printf '| %-44s | %8s | %8s | %6s |\n' pipeline seconds "MB/s" "$1"
	printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" ---------- ---------- --------
}

# --- Rows of runs: times[KEY] holds "SECONDS BYTES," for each run ---------
# median of field F (1 seconds, 2 bytes) of KEY's runs
median_of() { # KEY F
	tr ',' '\n' <<<"${times[$1]:-}" | awk -v f="$2" 'NF { print $f }' |
		sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int(NR / 2) + 1] }'
}
# "MIN-MAX" seconds of KEY's runs: how much the machine let them scatter
range_of() { # KEY
	tr ',' '\n' <<<"${times[$1]:-}" | awk 'NF { print $1 }' | sort -g |
		awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'
}

# --- A link with a rate: two network namespaces joined by a veth pair ------
# The caller names them: NEAR FAR (namespaces), VNEAR VFAR (the veth ends),
# A_NEAR A_FAR (addresses on a /30), and removes them with link_down.
link_up() {
	ip netns add "$NEAR" && ip netns add "$FAR" &&
		ip link add "$VNEAR" netns "$NEAR" type veth peer name "$VFAR" netns "$FAR" &&
		ip -n "$NEAR" addr add "$A_NEAR/30" dev "$VNEAR" &&
		ip -n "$FAR" addr add "$A_FAR/30" dev "$VFAR" &&
		ip -n "$NEAR" link set "$VNEAR" up && ip -n "$FAR" link set "$VFAR" up &&
		ip -n "$NEAR" link set lo up && ip -n "$FAR" link set lo up
}
link_down() {
	ip netns del "$NEAR" 2>/dev/null
	ip netns del "$FAR" 2>/dev/null
}
# RATE|none: the same tbf on both ends (tbf, not netem, which this kernel
# lacks), or none
link_shape() {
	local ns dev
	for ns in "$NEAR:$VNEAR" "$FAR:$VFAR"; do
		dev=${ns#*:} ns=${ns%%:*}
		ip netns exec "$ns" tc qdisc del dev "$dev" root 2>/dev/null
		[ "$1" = none ] && continue
		ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$1" burst 1mb latency 100ms || return 1
	done
}
# QEMU in each namespace, as DIR/qemu-near and DIR/qemu-far (QNEAR,
# QFAR): nsenter execs, so the pid QEMU gets is the one qemu.bash tracks
link_qemus() {
	local ns n
	for ns in near far; do
		n=$NEAR; [ $ns = far ] && n=$FAR
		printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s %s "$@"\n' "$n" "$QEMU" >"$1/qemu-$ns"
		chmod +x "$1/qemu-$ns"
	done
	QNEAR=$1/qemu-near QFAR=$1/qemu-far
}

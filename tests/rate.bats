#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# --rate RATE: every filter, mig-tee and mig-ssh (through a real sshd on
# 127.0.0.1) hold what they write to RATE bytes a second, measured around
# real streams, with the same bytes as without it. Every stage at once
# runs 30 s with a 5 % bound (issue 17), measured after its first byte;
# one filter alone runs 10 s with a 5 % bound; the others about 3 s with
# a 10 % bound (a 3-second run's start, the bucket's first 1/20 s and the
# process's start-up, weigh more).

setup_file() {
	load lib/common
	load lib/sshd
	test_stream_setup
	sshd_start "$BATS_FILE_TMPDIR/sshd" >&3
	# the layers the decoders are timed on, made without a rate
	cd "$BATS_FILE_TMPDIR" || exit 1
	mig-keygen -q -o key
	mig-checksum < "$STREAM" > ck
	mig-compress --no-adapt < "$STREAM" > zc
	mig-encrypt -k key < "$STREAM" > enc
	mig-envelope --meta vm=rate < "$STREAM" > env
	write_meter meter.py
}

teardown_file() {
	load lib/sshd
	sshd_stop "$BATS_FILE_TMPDIR/sshd"
}

setup() {
	load lib/common
	load lib/sshd
	cd "$BATS_TEST_TMPDIR" || exit 1
	F=$BATS_FILE_TMPDIR
}

# Processes a test stopped (SIGSTOP): resumed and ended whatever happened.
teardown() {
	local p
	[ -s "$BATS_TEST_TMPDIR/stopped" ] || return 0
	for p in $(cat "$BATS_TEST_TMPDIR/stopped"); do
		kill -CONT "$p" 2>/dev/null || true
		[ "$p" = "$(cat "$SSHD_PIDFILE")" ] || kill "$p" 2>/dev/null || true
	done
}

size() { stat -c %s "$1"; }

# A rate that makes BYTES take SECONDS, in bytes a second.
rate_for() { echo $(($1 / $2)); }

# COMMAND... with stdin from IN, stdout through a pipe (as in a pipeline)
# into the file out; it must exit 0. ELAPSED: the seconds it took.
timed() { # IN COMMAND...
	local in=$1 t0 t1 st
	shift
	t0=$EPOCHREALTIME
	"$@" < "$in" | cat > out
	st=${PIPESTATUS[0]}
	t1=$EPOCHREALTIME
	[ "$st" -eq 0 ] || fail "$* exited $st"
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

# BYTES moved in ELAPSED seconds were TARGET bytes a second within TOL
# (0.05: 5 %); the figures go to the TAP log.
assert_rate() { # WHAT BYTES TARGET TOL
	local got
	got=$(awk -v n="$2" -v t="$ELAPSED" 'BEGIN { printf "%.0f", n / t }')
	echo "# $1: $2 bytes in $ELAPSED s: $got B/s, target $3 B/s ($(awk -v g="$got" -v r="$3" 'BEGIN { printf "%+.2f %%", (g / r - 1) * 100 }'))" >&3
	awk -v g="$got" -v r="$3" -v tol="$4" 'BEGIN { d = g / r - 1; exit !(d <= tol && -d <= tol) }' ||
		fail "$1: $got B/s for a target of $3 B/s (more than $4 off)"
}

# stdin to stdout, and into FILE: the bytes, those after the first read,
# and the seconds from the first read to the end (monotonic clock): the
# rate a stage held, its start and the bucket's first piece left out.
write_meter() { # PATH
	cat > "$1" <<'PY'
import os, sys, time
n = first = 0
t0 = None
out = sys.stdout.buffer
while True:
    b = os.read(0, 1 << 20)
    if not b:
        break
    if t0 is None:
        t0, first = time.monotonic(), len(b)
    n += len(b)
    out.write(b)
out.flush()
t1 = time.monotonic()
with open(sys.argv[1], "w") as f:
    f.write("%d %d %.6f\n" % (n, n - first, t1 - t0 if t0 is not None else 0))
PY
}

# NAME IN RATE PROG ARGS...: PROG --rate RATE ARGS, stdin from IN, stdout
# through the meter into NAME.out (the meter's figures in NAME.m, the
# exit status in NAME.st, stderr in NAME.err).
metered() {
	local name=$1 in=$2 rate=$3
	shift 3
	"$1" --rate "$rate" "${@:2}" < "$in" 2> "$name.err" | python3 "$F/meter.py" "$name.m" > "$name.out"
	echo "${PIPESTATUS[0]}" > "$name.st"
}

# mig-ssh --rate RATE sending the stream to the suite's sshd, its figures
# in ssh.m as the meter's: the stream's bytes over the time from the first
# byte given to mig-ssh to its exit. The stream is given only once the
# remote command said it runs: until sshd has a reader, the server's
# window runs out and mig-ssh waits on it, not on its rate (measured so,
# 0.1 to 0.4 s of a 3 s transfer, 10 to 16 % below the rate; fed after
# the remote's word, 2.99 to 3.04 s). Not metered at the far end either:
# what waited in sshd would arrive there at once.
metered_ssh() { # RATE
	local t0 t1 st=0 pid feed
	mkfifo ssh.in
	mig-ssh -v -F "$SSH_CFG" --rate "$1" sshd-test \
		"echo runs; exec cat > '$PWD/ssh.out'" < ssh.in > ssh.said 2> ssh.err &
	pid=$!
	exec {feed}> ssh.in
	if ! wait_for 20 grep -qx runs ssh.said; then
		exec {feed}>&-
		wait "$pid" || true # its status is not the failure reported
		echo "the remote command did not say it runs: $(cat ssh.err)" > ssh.err
		echo 255 > ssh.st
		return 0
	fi
	t0=$EPOCHREALTIME
	cat "$STREAM" >&"$feed"
	exec {feed}>&-
	wait "$pid" || st=$?
	t1=$EPOCHREALTIME
	echo "$st" > ssh.st
	awk -v n="$(size "$STREAM")" -v a="$t0" -v b="$t1" \
		'BEGIN { printf "%d %d %.6f\n", n, n, b - a }' > ssh.m
}

# NAME held RATE within TOL by its meter's figures; it exited 0.
assert_metered() { # NAME RATE TOL
	local m
	[ "$(cat "$1.st")" = 0 ] || fail "$1 exited $(cat "$1.st"): $(cat "$1.err")"
	read -r -a m < "$1.m"
	ELAPSED=${m[2]}
	assert_rate "$1" "${m[1]}" "$2" "$3"
}

# The filter COMMAND... with --rate, about SECONDS long on IN, written out
# within TOL of the rate; its output is then in out.
filter_at_rate() { # SECONDS TOL IN EXPECTED_SIZE COMMAND...
	local secs=$1 tol=$2 in=$3 bytes=$4 rate
	shift 4
	rate=$(rate_for "$bytes" "$secs")
	timed "$in" "$@" --rate "$rate"
	assert_rate "$*" "$(size out)" "$rate" "$tol"
}

@test "mig-checksum --rate holds its rate within 5 % over 10 s, with the unlimited output's bytes" {
	filter_at_rate 10 0.05 "$STREAM" "$(size "$F/ck")" mig-checksum
	cmp out "$F/ck"
}

@test "every stage at once, each at its own --rate for 30 s: each within 5 % of its rate, the bytes right" {
	local n secs=30 name
	local -A rate
	n=$(size "$STREAM")
	for name in checksum checksum-d compress decompress encrypt decrypt envelope envelope-d tee; do
		rate[$name]=$(rate_for "$n" "$secs")
	done
	rate[compress]=$(rate_for "$(size "$F/zc")" "$secs")
	rate[ssh]=$(rate_for "$n" "$secs")
	metered checksum "$STREAM" "${rate[checksum]}" mig-checksum &
	metered checksum-d "$F/ck" "${rate[checksum-d]}" mig-checksum -d &
	metered compress "$STREAM" "${rate[compress]}" mig-compress --no-adapt &
	metered decompress "$F/zc" "${rate[decompress]}" mig-decompress &
	metered encrypt "$STREAM" "${rate[encrypt]}" mig-encrypt -k "$F/key" &
	metered decrypt "$F/enc" "${rate[decrypt]}" mig-decrypt -k "$F/key" &
	metered envelope "$STREAM" "${rate[envelope]}" mig-envelope --meta vm=rate &
	metered envelope-d "$F/env" "${rate[envelope-d]}" mig-envelope -d &
	metered tee "$STREAM" "${rate[tee]}" mig-tee ckpt &
	metered_ssh "${rate[ssh]}" &
	wait
	for name in checksum checksum-d compress decompress encrypt decrypt envelope envelope-d tee ssh; do
		assert_metered "$name" "${rate[$name]}" 0.05
	done
	cmp checksum.out "$F/ck"
	cmp compress.out "$F/zc"
	cmp envelope.out "$F/env"
	mig-decrypt -k "$F/key" < encrypt.out | cmp - "$STREAM"
	for name in checksum-d decompress decrypt envelope-d tee ssh; do
		cmp "$name.out" "$STREAM"
	done
	cmp ckpt "$STREAM"
}

@test "decoders at --rate (checksum, decompress, decrypt, envelope): within 10 % over 3 s, the stream byte for byte" {
	local n
	n=$(size "$STREAM")
	filter_at_rate 3 0.10 "$F/ck" "$n" mig-checksum -d
	cmp out "$STREAM"
	filter_at_rate 3 0.10 "$F/zc" "$n" mig-decompress
	cmp out "$STREAM"
	filter_at_rate 3 0.10 "$F/enc" "$n" mig-decrypt -k "$F/key"
	cmp out "$STREAM"
	filter_at_rate 3 0.10 "$F/env" "$n" mig-envelope -d
	cmp out "$STREAM"
}

@test "encoders at --rate (compress, encrypt, envelope): within 10 % over 3 s, the same bytes" {
	filter_at_rate 3 0.10 "$STREAM" "$(size "$F/zc")" mig-compress --no-adapt
	cmp out "$F/zc"
	# a fresh nonce each run: the same stream, not the same bytes
	filter_at_rate 3 0.10 "$STREAM" "$(size "$F/enc")" mig-encrypt -k "$F/key"
	mig-decrypt -k "$F/key" < out | cmp - "$STREAM"
	filter_at_rate 3 0.10 "$STREAM" "$(size "$F/env")" mig-envelope --meta vm=rate
	cmp out "$F/env"
}

@test "zstd-long into a pipe takes waiting for --rate as a slow link: its level rises, the stream intact" {
	mig-compress -v --rate 8M < "$STREAM" 2> err | mig-decompress > back
	cmp back "$STREAM"
	run cat err
	assert_line --regexp '^mig-compress: zstd-long levels 1 to [2-9], adapted to the output$'
}

@test "--frame-size larger than the bucket: a frame goes in pieces, the rate holds" {
	# 16 MiB frames, 16 times the 1 MiB the bucket holds at most: each
	# frame goes in 64 pieces of 256 KiB
	local n rate
	mig-checksum --frame-size 16M < "$STREAM" > ck16
	n=$(size ck16)
	rate=$(rate_for "$n" 3)
	timed "$STREAM" mig-checksum --frame-size 16M --rate "$rate"
	assert_rate "mig-checksum --frame-size 16M" "$(size out)" "$rate" 0.10
	cmp out ck16
}

@test "mig-tee --rate: the forwarded stream and the checkpoint, within 10 % over 3 s" {
	local n rate
	n=$(size "$STREAM")
	rate=$(rate_for "$n" 3)
	timed "$STREAM" mig-tee --rate "$rate" ckpt
	assert_rate "mig-tee" "$(size out)" "$rate" 0.10
	cmp out "$STREAM"
	cmp ckpt "$STREAM"
	# through pipes both ways, where it forwards with tee(2)
	local t0 t1
	t0=$EPOCHREALTIME
	cat "$STREAM" | mig-tee --rate "$rate" ckpt2 | cat > out
	t1=$EPOCHREALTIME
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	assert_rate "mig-tee (tee(2))" "$(size out)" "$rate" 0.10
	cmp out "$STREAM"
	cmp ckpt2 "$STREAM"
}

@test "mig-tee -o --rate: the checkpoint, its only output, is written at the rate" {
	local n rate t0 t1
	n=$(size "$STREAM")
	rate=$(rate_for "$n" 3)
	t0=$EPOCHREALTIME
	mig-tee -o --rate "$rate" ckpt < "$STREAM"
	t1=$EPOCHREALTIME
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	assert_rate "mig-tee -o" "$(size ckpt)" "$rate" 0.10
	cmp ckpt "$STREAM"
}

@test "mig-ssh --rate: what it sends, within 10 % over 3 s once the remote command runs, byte for byte" {
	local rate
	rate=$(rate_for "$(size "$STREAM")" 3)
	metered_ssh "$rate"
	assert_metered ssh "$rate" 0.10
	cmp ssh.out "$STREAM"
}

# Run mig-ssh ARGS... in the background (stdin from $IN) once its remote
# command printed "started", then stop the sshd session process serving
# it: its kernel still acknowledges, nothing answers. Sets MPID.
start_then_stop_session() {
	local before s new=
	before=" $(sshd_sessions | tr '\n' ' ') "
	mig-ssh "$@" < "$IN" > out 2> err &
	MPID=$!
	wait_for 20 grep -q started out || fail "the remote command did not start: $(cat err)"
	for s in $(sshd_sessions); do
		[[ $before == *" $s "* ]] || new+=" $s"
	done
	[ -n "$new" ] || fail "no session process"
	echo $new >> "$BATS_TEST_TMPDIR/stopped"
	kill -STOP $new
}

@test "mig-ssh waiting for its rate still keeps time for keepalives: a stalled server is given up" {
	local rc=0 i t0
	mkfifo in
	# stdin never ends, and at 64 KiB a second the socket never fills:
	# only the keepalives can end mig-ssh
	yes "$(head -c 1000 /dev/zero | tr '\0' x)" > in &
	echo $! >> "$BATS_TEST_TMPDIR/stopped"
	IN=in start_then_stop_session -F "$SSH_CFG" --rate 64K -o ServerAliveInterval=1 \
		-o ServerAliveCountMax=2 sshd-test 'echo started; cat > /dev/null'
	t0=$SECONDS
	for ((i = 0; i < 15 * 50; i++)); do
		kill -0 "$MPID" 2>/dev/null || break
		sleep 0.02
	done
	kill -0 "$MPID" 2>/dev/null && { kill "$MPID"; fail "mig-ssh still waits after 15 s"; }
	wait "$MPID" || rc=$?
	[ "$rc" -eq 255 ] || fail "exit status $rc: $(cat err)"
	(( SECONDS - t0 <= 6 )) || fail "gave up after $((SECONDS - t0)) s, not about 3"
	run cat err
	assert_output "mig-ssh: sshd-test: no answer from the server for 3 s (ServerAliveInterval 1, ServerAliveCountMax 2)"
}

@test "--rate: 0, negative, garbage, bits and overflowing rates are usage errors" {
	local prog arg
	for prog in mig-checksum mig-compress mig-decompress mig-encrypt mig-decrypt mig-envelope mig-tee; do
		for arg in 0 0K -1 -5M fast 5Mbit '' 99999999999999999999 17179869184G; do
			run -2 --separate-stderr "$prog" --rate "$arg" x < /dev/null
			[ -z "$output" ] || fail "$prog --rate '$arg' wrote to stdout"
			output=$stderr assert_output "$prog: --rate: '$arg' is not a rate in bytes per second above 0 (such as 800K, 50M, 1G)
Try '$prog --help'."
		done
	done
	# mig-ssh: 255, as for every failure of its own; before any connection
	for arg in 0 -1 fast 99999999999999999999; do
		run -255 --separate-stderr mig-ssh --rate "$arg" 127.0.0.1 true < /dev/null
		output=$stderr assert_output "mig-ssh: --rate: '$arg' is not a rate in bytes per second above 0 (such as 800K, 50M, 1G)
Try 'mig-ssh --help'."
	done
	run -2 --separate-stderr mig-checksum --rate
	output=$stderr assert_output "mig-checksum: unknown or incomplete option '--rate'
Try 'mig-checksum --help'."
}

@test "--help of every stage names --rate" {
	local prog
	for prog in mig-checksum mig-compress mig-encrypt mig-envelope; do
		run -0 "$prog" --help
		assert_line --regexp '^      --rate RATE      write at most RATE bytes a second \(K, M, G: 1024\^n\)$'
	done
	run -0 mig-tee --help
	assert_line '      --rate RATE      pass on at most RATE bytes a second (K, M, G: 1024^n)'
	run -0 mig-ssh --help
	assert_line '      --rate RATE send at most RATE bytes of stdin a second (K, M, G: 1024^n)'
}

#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# --flush-idle MS: an encoder writes a partial frame once its input has
# been idle MS milliseconds, so a pipeline carries interactive traffic.
# A message goes into a pipeline through a FIFO whose writer stays open,
# and is timed from its write to its read at the far end (bash's
# $EPOCHREALTIME): the issue's pipeline through the suite's real sshd on
# 127.0.0.1, and each filter alone. With --flush-idle 0 it stays in until
# the input ends. Latencies go to fd 3 (bats --tap shows them).

setup_file() {
	load lib/common
	load lib/sshd
	sshd_start "$BATS_FILE_TMPDIR/sshd" >&3
	mig-keygen -q -o "$BATS_FILE_TMPDIR/key"
}

teardown_file() {
	load lib/sshd
	sshd_stop "$BATS_FILE_TMPDIR/sshd"
}

setup() {
	load lib/common
	load lib/sshd
	cd "$BATS_TEST_TMPDIR" || exit 1
	K=$BATS_FILE_TMPDIR/key
	PIPE_PID=
}

# A pipeline a test left running (a failed assertion): its input and
# output closed, so every stage ends; the shell that ran it killed, and
# waited for.
teardown() {
	close_input
	close_output
	if [ -n "$PIPE_PID" ]; then
		kill "$PIPE_PID" 2>/dev/null || true
		wait "$PIPE_PID" 2>/dev/null || true
	fi
}

# Start PIPELINE (bash) reading the FIFO in and writing the FIFO out; W and
# R are our ends (the writer stays open until close_input).
start() { # PIPELINE
	mkfifo in out
	bash -c "$1" < in > out 2> err &
	PIPE_PID=$!
	exec {W}> in
	exec {R}< out
}

close_input() {
	if [ -n "${W:-}" ]; then
		exec {W}>&-
		W=
	fi
}

close_output() {
	if [ -n "${R:-}" ]; then
		exec {R}<&-
		R=
	fi
}

# Write MSG and read its bytes back at the far end within LIMIT seconds:
# they must be exactly MSG. MS: the milliseconds from write to read.
roundtrip() { # MSG LIMIT
	local got t0 t1
	t0=$EPOCHREALTIME
	printf '%s' "$1" >&"$W"
	IFS= read -r -N "${#1}" -t "$2" -u "$R" got ||
		fail "'$1' did not come out within $2 s; stderr: $(cat err)"
	t1=$EPOCHREALTIME
	[ "$got" = "$1" ] || fail "got '$got' for '$1'"
	MS=$(((${t1/./} - ${t0/./}) / 1000))
}

# Messages through PIPELINE, each out in under 100 ms (the first, which
# waits for the pipeline to start, within 10 s); then the input closes,
# nothing more comes out and every stage exits 0.
assert_prompt() { # NAME PIPELINE
	local i times=
	start "$2"
	roundtrip "hello, first message" 10
	for i in 1 2 3 4 5; do
		roundtrip "message $i: ping" 1
		times+=" $MS"
		[ "$MS" -lt 100 ] || fail "$1: message $i took $MS ms (under 100 asked)"
	done
	echo "# $1: ms from write to far end:$times" >&3
	close_input
	local rest
	rest=$(cat <&"$R")
	close_output
	[ -z "$rest" ] || fail "$1: more came out: '$rest'"
	wait "$PIPE_PID" || fail "$1: exited $?; stderr: $(cat err)"
	PIPE_PID=
	[ ! -s err ] || fail "$1: stderr: $(cat err)"
}

@test "the issue's pipeline: compress | encrypt | mig-ssh host 'decrypt | decompress', each message out in under 100 ms" {
	assert_prompt "compress|encrypt|ssh" \
		"mig-compress | mig-encrypt -k '$K' | mig-ssh -F '$SSH_CFG' sshd-test \"mig-decrypt -k '$K' | mig-decompress\""
}

@test "every filter alone delivers a message in under 100 ms: compress with each codec, encrypt, checksum, envelope" {
	local a
	for a in zstd-long zstd lz4 zlib; do
		assert_prompt "compress -a $a" "mig-compress -a $a | mig-decompress"
		rm -f in out err
	done
	assert_prompt "encrypt" "mig-encrypt -k '$K' | mig-decrypt -k '$K'"
	rm -f in out err
	assert_prompt "checksum" "mig-checksum | mig-checksum -d"
	rm -f in out err
	assert_prompt "envelope" "mig-envelope --meta vm=chat | mig-envelope -d"
}

@test "on several threads, and through mig-tee, a message is out in under 100 ms" {
	assert_prompt "compress -a zstd -T 4" "mig-compress -a zstd -T 4 | mig-decompress -T 4"
	rm -f in out err
	assert_prompt "checksum | mig-tee" "mig-checksum | mig-tee copy.mig | mig-checksum -d"
	# the checkpoint is the whole layer: every message in its own frame
	run -0 mig-info copy.mig
	assert_line --regexp '^  frames 6 \(6 data\), inner 95 B,'
}

@test "--flush-idle 0: the message stays in while the input is open, and comes out when it ends" {
	local got
	start "mig-compress --flush-idle 0 | mig-encrypt --flush-idle 0 -k '$K' | mig-decrypt -k '$K' | mig-decompress"
	printf 'held back' >&"$W"
	run -142 read -r -N 9 -t 1 -u "$R" got # bash: a read that timed out
	close_input
	IFS= read -r -N 9 -t 10 -u "$R" got || fail "nothing came out at the end"
	[ "$got" = "held back" ]
	wait "$PIPE_PID"
	PIPE_PID=
}

@test "a larger --flush-idle holds a message about that long; a message waits for no more than it" {
	start "mig-checksum --flush-idle 400 | mig-checksum -d"
	roundtrip "first" 10
	roundtrip "second" 5
	[ "$MS" -ge 400 ] || fail "out after $MS ms, before the 400 ms idle time"
	[ "$MS" -lt 1400 ] || fail "out after $MS ms"
	echo "# --flush-idle 400: out after $MS ms" >&3
}

@test "a stream of many short frames: each decoder reads it byte-exact, mig-info verifies it" {
	local enc dec
	for enc in "mig-compress -a zstd-long" "mig-compress -a zstd" \
		"mig-compress -a lz4" "mig-compress -a zlib" "mig-encrypt -k $K" \
		"mig-checksum" "mig-envelope --meta vm=chat"; do
		case $enc in
		mig-compress*) dec=mig-decompress ;;
		mig-encrypt*) dec="mig-decrypt -k $K" ;;
		mig-checksum) dec="mig-checksum -d" ;;
		mig-envelope*) dec="mig-envelope -d" ;;
		esac
		# the messages are what roundtrip sent; keep them to compare
		start "tee plain | $enc | tee layer.mig | $dec"
		for ((i = 0; i < 60; i++)); do
			roundtrip "line $i of a chat, $RANDOM$RANDOM" 10
		done
		close_input
		close_output
		wait "$PIPE_PID" || fail "$enc: exited $?: $(cat err)"
		PIPE_PID=
		# decoded again from the file: the same bytes
		$dec < layer.mig > back
		cmp plain back
		if [[ $enc == mig-encrypt* ]]; then
			# whole to its END; its content needs the key
			run -5 mig-info layer.mig
			assert_line "  frames 60 and END, content not verified"
		else
			run -0 mig-info layer.mig
			assert_line --regexp "^  frames 6[01] \\(60 data\\), "
			assert_line "inner data: $(stat -c %s plain) bytes, not a QEMU stream"
		fi
		rm -f in out err plain layer.mig back
	done
}

@test "a stream of short frames is decoded the same whole, from a file and in one read" {
	start "mig-compress -a zstd-long | tee layer.mig | mig-decompress"
	for ((i = 0; i < 20; i++)); do
		roundtrip "$i" 10
	done
	close_input
	close_output
	wait "$PIPE_PID"
	PIPE_PID=
	run -0 mig-decompress layer.mig
	assert_output "012345678910111213141516171819"
	# the frames went out short: 20 DATA frames for 30 bytes
	run -0 mig-info layer.mig
	assert_line --regexp '^  frames 20 \(20 data\), inner 30 B,'
}

@test "from a file, input is never idle: full frames, as before" {
	head -c 3000000 /dev/urandom > big
	mig-checksum --flush-idle 1 < big > a.mig
	run -0 mig-info a.mig
	assert_line --regexp '^  frames 3 \(3 data\), '
	assert_line "inner data: 3000000 bytes, not a QEMU stream"
	mig-checksum --flush-idle 0 < big > b.mig
	cmp a.mig b.mig
}

@test "--flush-idle: usage errors for bad values, and it is for encoding" {
	local v
	for v in abc -1 '' 1.5 60001 10x ' 5' +5 99999999999999999999; do
		run -2 --separate-stderr mig-checksum --flush-idle "$v" < /dev/null
		output=$stderr assert_output "mig-checksum: --flush-idle: '$v' is not a number of milliseconds from 0 to 60000
Try 'mig-checksum --help'."
	done
	run -2 --separate-stderr mig-decompress --flush-idle 5 < /dev/null
	output=$stderr assert_output "mig-decompress: --flush-idle is for encoding
Try 'mig-decompress --help'."
	run -0 mig-encrypt --help
	assert_line "      --flush-idle MS  write a partial frame after MS ms without input"
	run -0 bash -c 'printf x | mig-checksum --flush-idle 60000 | mig-checksum -d'
	assert_output x
}

@test "the vectors of mig-stream(5) with short frames mid-layer: written byte for byte, read back" {
	# a message, read back at the far end, then the next: each pause is
	# the idle time, so the frames fall where the page shows them
	start "mig-checksum --frame-size 4 | tee layer.mig | mig-checksum -d"
	roundtrip $'hi\n' 10
	roundtrip $'hello\n' 10
	close_input
	wait "$PIPE_PID"
	PIPE_PID=
	cmp layer.mig "$REPO/tests/vectors/checksum-short.mig"
	rm -f in out err layer.mig
	start "mig-compress -a zstd-long --no-adapt --frame-size 30 | tee layer.mig | mig-decompress"
	roundtrip $'hello\n' 10
	roundtrip $'hello\n' 10
	close_input
	wait "$PIPE_PID"
	PIPE_PID=
	cmp layer.mig "$REPO/tests/vectors/compress-short-zstd-long.mig"
	run -0 mig-checksum -d "$REPO/tests/vectors/checksum-short.mig"
	assert_output $'hi\nhello'
	run -0 mig-decompress "$REPO/tests/vectors/compress-short-zstd-long.mig"
	assert_output $'hello\nhello'
	# the old reader's way of reading is the only way: no flag, no version
	run -0 mig-info "$REPO/tests/vectors/checksum-short.mig"
	assert_line --regexp '^  frames 3 \(3 data\), '
}

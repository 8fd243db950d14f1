#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# Fault injection (issue 8): real QEMU, a real sshd, the full pipeline
#   mig-qemu seal | mig-tee CKPT | mig-compress | mig-encrypt -k K |
#     mig-ssh HOST 'mig-decrypt -k K | mig-decompress | mig-recv QEMU ... -incoming -'
# driven by mig-qemu migrate.  Every stage is killed at a random point of
# the stream, the network is cut (a veth link between two network
# namespaces, taken down) and the sshd killed, the disk under mig-tee
# fills up, and checkpoints are damaged (flipped, dropped, duplicated,
# truncated bytes).  Each case checks that nothing is lost: a non-zero
# exit naming the stage, the source VM still running, no destination VM,
# no complete-looking checkpoint, no stray process or temporary file.
#
# Random but reproducible: the seed is printed ("# faults: seed N");
# FAULTS_SEED=N replays a run.  The last line counts the cases:
# "# faults: N cases tried, N nothing lost".
# shellcheck disable=SC2016,SC2154,SC2034,SC2046

MIB=64

setup_file() {
	load lib/common
	load lib/sshd
	test_stream_setup
	sshd_start "$BATS_FILE_TMPDIR/sshd" >&3
	mig-keygen -q -o "$BATS_FILE_TMPDIR/k"
	export FAULTS_SEED=${FAULTS_SEED:-$(date +%s)}
	echo "# faults: seed $FAULTS_SEED (FAULTS_SEED=$FAULTS_SEED replays this run)" >&3
	: > "$BATS_FILE_TMPDIR/tried"
	: > "$BATS_FILE_TMPDIR/nothing-lost"
}

teardown_file() {
	load lib/sshd
	sshd_stop "$BATS_FILE_TMPDIR/sshd"
	echo "# faults: $(wc -l < "$BATS_FILE_TMPDIR/tried") cases tried," \
		"$(wc -l < "$BATS_FILE_TMPDIR/nothing-lost") nothing lost" >&3
}

setup() {
	load lib/migrate
	migrate_test_setup
	K=$BATS_FILE_TMPDIR/k
	RANDOM=$((FAULTS_SEED + BATS_TEST_NUMBER))
	# temporary files of the pipeline's stages, local and remote, land
	# here (both must be empty at the end), and TMPDIR marks the stages'
	# processes for procs_in: give it to what starts them (the source VM,
	# whose exec: pipeline inherits it, the restores), not to this shell
	mkdir -p "$T/tmp" "$T/rtmp"
}

teardown() {
	vm_cleanup_all
	# the far side of a cut link: its sshd, its sessions, its namespaces
	if [ -s "$T/nsshd/sshd.pid" ]; then
		local p
		for p in $(ps -o pid= --ppid "$(cat "$T/nsshd/sshd.pid")"); do
			kill -KILL "$p" 2>/dev/null || true
		done
		sshd_stop "$T/nsshd"
	fi
	local p
	for p in $(procs_in "$T"); do kill -KILL "$p" 2>/dev/null || true; done
	[ -z "${NS_NEAR:-}" ] || ip netns del "$NS_NEAR" 2>/dev/null || true
	[ -z "${NS_FAR:-}" ] || ip netns del "$NS_FAR" 2>/dev/null || true
	if mountpoint -q "$T/small" 2>/dev/null; then umount "$T/small"; fi
}

# ---- bookkeeping ---------------------------------------------------------

case_begin() { echo "$*" >> "$BATS_FILE_TMPDIR/tried"; CASE=$*; }
case_end() { echo "$CASE" >> "$BATS_FILE_TMPDIR/nothing-lost"; }

# VAR = a random integer in [LO, HI] from the seeded generator (not in a
# $(...): bash reseeds RANDOM in subshells, and the run would not replay).
rand() { printf -v "$1" '%d' $(($2 + ((RANDOM << 15) | RANDOM) % ($3 - $2 + 1))); }

# ---- what "nothing lost" means ---------------------------------------------

# The files of the test directory now (before a migration).
files_snapshot() { (cd "$T" && find . -mindepth 1 -not -path './tmp/*' -not -path './rtmp/*' | sort) > "$T/.files"; }

# No temporary file: nothing in TMPDIR (local and remote), no hidden
# mig-tee temporary, and nothing new in the test directory but what the
# test itself named (the logs, the stage pids, the destination's pid file
# and QMP socket).
assert_no_temporaries() {
	run find "$T/tmp" "$T/rtmp" -mindepth 1
	assert_output ""
	run find "$T" -name '.mig-*'
	assert_output ""
	run bash -c "cd '$T' && find . -mindepth 1 -not -path './tmp/*' -not -path './rtmp/*' | sort |
		comm -13 .files - | grep -v -x -e ./out -e ./err -e ./.files -e './[a-z]*.stage' \
			-e './dst.pid' -e './dst.qmp'"
	assert_output ""
}

# After a failed migration MQ-RC (mig-qemu's exit status): all the checks.
assert_nothing_lost() { # RC [CKPT]
	local rc=$1 ckpt=${2:-$T/ckpt}
	[ "$rc" -ne 0 ] || { cat err; fail "mig-qemu exited 0"; }
	run cat err
	assert_output --partial "the source VM keeps running"
	run vm_status src
	assert_output running
	assert_no_dest dst
	# the far sshd of a cut link listens on: it is the test's
	[ ! -s "$T/nsshd/sshd.pid" ] || local KEEP_PIDS
	[ ! -s "$T/nsshd/sshd.pid" ] || KEEP_PIDS=$(cat "$T/nsshd/sshd.pid")
	assert_no_procs_in "$T"
	if [ -e "$ckpt" ]; then
		run mig-info -q "$ckpt"
		[ "$status" -ne 0 ] || fail "a complete-looking checkpoint $ckpt"
	fi
	assert_no_temporaries
}

# ---- kill every stage -------------------------------------------------------

# The full pipeline, each stage wrapped so that its pid is known.
full_pipeline() { # [mig-ssh options]
	echo "$T/stage tee mig-tee $T/ckpt | $T/stage comp mig-compress |" \
		"$T/stage enc mig-encrypt -k $K | $T/stage ssh mig-ssh -F $SSH_CFG${*:+ $*} sshd-test 'export TMPDIR=$T/rtmp;" \
		"$T/stage dec mig-decrypt -k $K | $T/stage decomp mig-decompress |" \
		"$T/stage recv mig-recv $(dest dst)'"
}

# Kill VICTIM (a stage's name, seal or sshd) with SIGKILL once it runs and
# a random number of bytes (64 KB to 20 MB of a ~46 MB stream) went
# through, $ROUNDS times at different points; each time mig-qemu must fail
# with a message containing each of WHAT..., and nothing be lost.
ROUNDS=${FAULTS_ROUNDS:-3}

kill_case() {
	local round
	for ((round = 0; round < ROUNDS; round++)); do
		if ((round > 0)); then
			vm_cleanup_all
			rm -f "$T"/*.stage "$T/dst.pid" "$T/dst.qmp" "$T/out" "$T/err" "$T/ckpt"
		fi
		kill_once "$@"
	done
}

kill_once() { # VICTIM WHAT...
	local victim=$1 at pid rc=0
	shift
	rand at 65536 20000000
	case_begin "kill $victim after $at bytes"
	echo "# $CASE" >&3
	TMPDIR=$T/tmp source_vm src
	files_snapshot
	mig-qemu migrate --bandwidth 16M --timeout 60 --grace 20 "$VM_DIR/src.mq" \
		"$(full_pipeline)" > out 2> err &
	local mq=$!
	case $victim in
	seal)
		wait_for 20 seal_pid src > /dev/null
		pid=$(seal_pid src) ;;
	sshd)
		stage_pid recv > /dev/null
		pid=$(sshd_sessions | head -1) ;;
	*)
		pid=$(stage_pid "$victim") ;;
	esac
	[ -n "$pid" ] || fail "no pid for $victim"
	wait_transferred src "$at" 30 || { kill "$mq"; fail "the migration did not get to $at bytes"; }
	kill -KILL "$pid"
	wait "$mq" || rc=$?
	[ "$rc" -eq 1 ] || { cat err; fail "mig-qemu exited $rc"; }
	run cat err
	local what
	for what in "$@"; do
		assert_output --partial "$what"
	done
	[ -z "${FAULTS_SHOW:-}" ] || sed 's/^/#   /' err >&3
	assert_nothing_lost "$rc"
	case_end
}

@test "kill the seal at a random point" {
	kill_case seal "stage 1 (mig-qemu seal) failed: exit status 137"
}

@test "kill mig-tee at a random point" {
	kill_case tee "stage 2 ($T/stage tee mig-tee $T/ckpt) failed: exit status 137"
}

@test "kill mig-compress at a random point" {
	kill_case comp "stage 3 ($T/stage comp mig-compress) failed: exit status 137"
}

@test "kill mig-encrypt at a random point" {
	kill_case enc "stage 4 ($T/stage enc mig-encrypt -k $K) failed: exit status 137"
}

@test "kill mig-ssh at a random point" {
	kill_case ssh "stage 5 ($T/stage ssh $SSH" ") failed: exit status 137"
}

# The stage after the one killed refuses what it got: truncated, or, when
# the kill came before a whole frame had passed (4 MiB frames), empty.
@test "kill the remote mig-decrypt at a random point" {
	kill_case dec "stage 5 ($T/stage ssh $SSH" ") failed: exit status" \
		"mig-decompress: stdin: "
}

@test "kill the remote mig-decompress at a random point" {
	kill_case decomp "stage 5 ($T/stage ssh $SSH" ") failed: exit status" \
		"mig-recv: stdin: "
}

@test "kill the remote mig-recv at a random point" {
	# the remote shell reports its last command's death
	kill_case recv "stage 5 ($T/stage ssh $SSH" ") failed: exit status 137" \
		"Killed                  | $T/stage recv mig-recv"
}

@test "kill the sshd session at a random point" {
	kill_case sshd "stage 5 ($T/stage ssh $SSH" ") failed: exit status 255" \
		"mig-ssh: sshd-test: connection lost"
	# mig-ssh's own 255 is not a signal
	refute_output --partial "signal"
}

# ---- cut the network ----------------------------------------------------------

# Two network namespaces joined by a veth link on a private /30: the
# source VM (and so the whole sending pipeline) in the near one, an sshd
# listening in the far one.  The far sshd drops a silent client after 3 s
# (ClientAliveInterval 1, ClientAliveCountMax 3): OpenSSH's default never
# does, and a receiving side cut off by a dead link would wait forever.
netns_setup() {
	NS_NEAR=migf-n$$ NS_FAR=migf-f$$
	ip netns add "$NS_NEAR"
	ip netns add "$NS_FAR"
	ip -n "$NS_NEAR" link add "mfn$$" type veth peer name "mff$$" netns "$NS_FAR"
	ip -n "$NS_NEAR" addr add 10.199.77.1/30 dev "mfn$$"
	ip -n "$NS_FAR" addr add 10.199.77.2/30 dev "mff$$"
	ip -n "$NS_NEAR" link set "mfn$$" up
	ip -n "$NS_FAR" link set "mff$$" up
	ip -n "$NS_NEAR" link set lo up
	ip -n "$NS_FAR" link set lo up
	SSHD_NETNS=$NS_FAR SSHD_ADDR=10.199.77.2 \
		SSHD_EXTRA=$'ClientAliveInterval 1\nClientAliveCountMax 3' sshd_start "$T/nsshd"
	SSH="mig-ssh -F $SSH_CFG sshd-test"
	# the source QEMU, and the exec: pipeline it runs, in the near namespace
	printf '#!/bin/sh\nexec ip netns exec %s qemu-system-x86_64 "$@"\n' "$NS_NEAR" > "$T/qemu-near"
	chmod +x "$T/qemu-near"
}

@test "cut the link (veth down) mid-migration: mig-ssh gives up in seconds" {
	netns_setup
	local at rc=0 t0
	# early enough that data still flows: zstd-long's output of the rest
	# can be all on its way by 20 MB (a cut after the remote's EOF, while
	# mig-ssh waits for its exit status, is not this case: see the note)
	rand at 1000000 8000000
	case_begin "link down after $at bytes"
	echo "# $CASE" >&3
	TMPDIR=$T/tmp QEMU=$T/qemu-near source_vm src
	files_snapshot
	mig-qemu migrate --bandwidth 16M --timeout 120 --grace 60 "$VM_DIR/src.mq" \
		"$(full_pipeline -o ServerAliveInterval=1)" > out 2> err &
	local mq=$!
	stage_pid recv > /dev/null
	wait_transferred src "$at" 30 || { kill "$mq"; fail "the migration did not get to $at bytes"; }
	ip -n "$NS_NEAR" link set "mfn$$" down
	t0=$SECONDS
	wait "$mq" || rc=$?
	echo "# mig-qemu ended $((SECONDS - t0)) s after the link went down" >&3
	# ServerAliveInterval=1: 1 s x (3 + 1); neither --timeout nor --grace came into it
	(( SECONDS - t0 <= 15 )) || fail "took $((SECONDS - t0)) s"
	[ "$rc" -eq 1 ] || { cat err; fail "mig-qemu exited $rc"; }
	run cat err
	assert_output --partial "mig-ssh: sshd-test: no answer from the server for 4 s (ServerAliveInterval 1, ServerAliveCountMax 3)"
	assert_output --partial "stage 5 ($T/stage ssh mig-ssh -F $SSH_CFG -o ServerAliveInterval=1 sshd-test"
	assert_output --partial ") failed: exit status 255"
	refute_output --partial "cancel"
	# the far side: its sshd drops the session, mig-recv its emulator
	assert_nothing_lost "$rc"
	case_end
}

@test "kill the far sshd (listener and session) mid-migration behind the veth link" {
	netns_setup
	local at rc=0 p
	rand at 1000000 20000000
	case_begin "far sshd killed after $at bytes"
	echo "# $CASE" >&3
	TMPDIR=$T/tmp QEMU=$T/qemu-near source_vm src
	files_snapshot
	mig-qemu migrate --bandwidth 16M --timeout 60 --grace 20 "$VM_DIR/src.mq" \
		"$(full_pipeline)" > out 2> err &
	local mq=$!
	stage_pid recv > /dev/null
	wait_transferred src "$at" 30 || { kill "$mq"; fail "the migration did not get to $at bytes"; }
	kill -KILL $(cat "$T/nsshd/sshd.pid") $(sshd_sessions)
	wait "$mq" || rc=$?
	[ "$rc" -eq 1 ] || { cat err; fail "mig-qemu exited $rc"; }
	run cat err
	assert_output --partial "mig-ssh: sshd-test: connection lost"
	assert_output --partial ") failed: exit status 255"
	assert_nothing_lost "$rc"
	case_end
}

# ---- a full disk under mig-tee ------------------------------------------------

# The pipeline with mig-tee's checkpoint on an 8 MiB tmpfs (the stream is
# about 46 MB).
small_pipeline() { # [mig-tee options]
	echo "mig-tee $* $T/small/ckpt | mig-compress | mig-encrypt -k $K |" \
		"$SSH 'export TMPDIR=$T/rtmp; mig-decrypt -k $K | mig-decompress | mig-recv $(dest dst)'"
}

@test "a full disk under mig-tee --required fails the migration; the source runs on" {
	case_begin "disk full, --required"
	mkdir small && mount -t tmpfs -o size=8m tmpfs small
	TMPDIR=$T/tmp source_vm src
	files_snapshot
	local rc=0
	mig-qemu migrate --timeout 60 "$VM_DIR/src.mq" "$(small_pipeline --required)" > out 2> err || rc=$?
	[ "$rc" -eq 1 ] || { cat err; fail "mig-qemu exited $rc"; }
	run cat err
	assert_output --partial "mig-tee: $T/small/ckpt: write to output: No space left on device; checkpoint abandoned"
	assert_output --partial "stage 2 (mig-tee --required $T/small/ckpt) failed: exit status 3"
	assert_nothing_lost "$rc" "$T/small/ckpt"
	run ls -A small
	assert_output ""
	case_end
}

@test "a full disk under mig-tee without --required: the migration completes, no checkpoint" {
	case_begin "disk full, not required"
	mkdir small && mount -t tmpfs -o size=8m tmpfs small
	TMPDIR=$T/tmp source_vm src
	run -0 --separate-stderr mig-qemu migrate --timeout 60 "$VM_DIR/src.mq" "$(small_pipeline)"
	output=$stderr assert_output --partial "mig-tee: $T/small/ckpt: write to output: No space left on device; checkpoint abandoned, the stream went on"
	output=$stderr assert_output --partial "every stage exited 0"
	vm_attach dst
	run vm_status dst
	assert_output running
	run vm_status src
	assert_output postmigrate
	run ls -A small
	assert_output ""
	run find "$T/tmp" "$T/rtmp" -mindepth 1
	assert_output ""
	case_end
}

# ---- damaged checkpoints --------------------------------------------------------

# Damage a copy of CKPT into OUT: flip one byte, drop, duplicate N bytes,
# or truncate, at a random offset; say what was done in DAMAGE.
damage() { # KIND CKPT OUT
	local size off n
	size=$(stat -c %s "$2")
	rand off 1 $((size - 1))
	rand n 1 4096
	case $1 in
	flip) cp "$2" "$3"; flip_byte "$3" "$off"; DAMAGE="flip byte $off" ;;
	drop) { head -c "$off" "$2"; tail -c +$((off + n + 1)) "$2"; } > "$3"; DAMAGE="drop $n bytes at $off" ;;
	dup) { head -c $((off + n)) "$2"; tail -c +$((off + 1)) "$2"; } > "$3"; DAMAGE="duplicate $n bytes at $off" ;;
	trunc) head -c "$off" "$2" > "$3"; DAMAGE="truncate at $off of $size" ;;
	esac
}

# Damage CKPT ROUNDS times in each way; each copy, restored through
# DECODERS (mig-qemu restore, or a plain pipeline into mig-recv every other
# time) must fail naming the first decoder, and leave no VM.
damage_cases() { # CKPT ROUNDS DECODER...
	local ckpt=$1 rounds=$2 kind i rc name
	shift 2
	local first=$1 plain
	plain=$(printf '%s | ' "$@")
	for kind in flip drop dup trunc; do
		for ((i = 0; i < rounds; i++)); do
			name=d-$kind-$i
			damage "$kind" "$ckpt" bad
			case_begin "$ckpt: $DAMAGE"
			echo "# $CASE" >&3
			rc=0
			if ((i % 2 == 0)); then
				TMPDIR=$T/tmp mig-qemu restore bad "$@" -- $(dest "$name") > out 2> err || rc=$?
				[ "$rc" -ne 0 ] || fail "$CASE: mig-qemu restore exited 0"
				run cat err
				assert_output --partial "mig-qemu: restore: stage 1 ($first) failed: exit status 1"
			else
				TMPDIR=$T/tmp bash -o pipefail -c "$plain mig-recv $(dest "$name")" < bad > out 2> err || rc=$?
				[ "$rc" -ne 0 ] || fail "$CASE: the plain pipeline exited 0"
				run cat err
			fi
			assert_output --regexp "(^|$(printf '\n'))${first%% *}: stdin: "
			assert_no_dest "$name"
			assert_no_procs_in "$T"
			case_end
		done
	done
	run find "$T/tmp" -mindepth 1
	assert_output ""
}

@test "damaged checkpoints made through mig-compress | mig-encrypt fail at mig-decrypt, no VM left" {
	source_vm src
	mig-qemu checkpoint --resume --timeout 60 "$VM_DIR/src.mq" mig-compress "mig-encrypt -k $K" ckpt
	run -5 mig-info -q ckpt # whole to its END; its content needs the key
	damage_cases ckpt 5 "mig-decrypt -k $K" mig-decompress
}

@test "damaged checkpoints made through mig-checksum fail at mig-checksum -d, no VM left" {
	source_vm src
	mig-qemu checkpoint --resume --timeout 60 "$VM_DIR/src.mq" mig-checksum ckpt
	mig-info -q ckpt
	damage_cases ckpt 5 "mig-checksum -d"
}

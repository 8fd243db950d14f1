#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# Tests against a real QEMU: migkit's filters carry real migration streams.
#
# Needs $MIG_BIN/mig-checksum (default: build/bin under the repository).
# One 64 MiB test stream is made per run of this file (setup_file).
# shellcheck disable=SC2016,SC2154  # bash -c scripts use their own $vars; bats sets $stderr

load lib/common
load lib/qemu

MIB=64

setup_file() {
	MIG_BIN=$(realpath -m "${MIG_BIN:-$BATS_TEST_DIRNAME/../build/bin}")
	export MIG_BIN
	if [[ ! -x $MIG_BIN/mig-checksum ]]; then
		echo "no $MIG_BIN/mig-checksum: build first (make) or set MIG_BIN" >&2
		return 1
	fi
	STREAM=$BATS_FILE_TMPDIR/stream.mig
	export STREAM
	make_test_stream "$STREAM" "$MIB"
}

teardown() {
	vm_cleanup_all
}

size_of() { stat -c %s "$1"; }

@test "the test stream is a QEMU stream: QEVM, version 3" {
	run bash -c 'head -c 8 "$STREAM" | od -An -tx1 | tr -d " \n"'
	assert_success
	assert_output "5145564d00000003"
	[[ -f $STREAM.ram ]]
}

@test "mig-checksum | mig-checksum -d gives back the stream byte for byte" {
	run bash -c 'set -o pipefail; "$MIG_BIN/mig-checksum" <"$STREAM" | "$MIG_BIN/mig-checksum" -d >"$BATS_TEST_TMPDIR/out"'
	assert_success
	run cmp "$STREAM" "$BATS_TEST_TMPDIR/out"
	assert_success
}

@test "a paused VM checkpointed through mig-checksum restores paused, same RAM" {
	local ck=$BATS_TEST_TMPDIR/ckpt
	vm_start_source src "$STREAM.ram" "$MIB"
	qmp src '{"execute":"stop"}'
	run vm_status src
	assert_output paused

	run vm_migrate src "$(vm_shq "$MIG_BIN/mig-checksum") > $(vm_shq "$ck")"
	assert_success
	assert_output completed

	vm_start_dest dst "$MIB" "$(vm_shq "$MIG_BIN/mig-checksum") -d < $(vm_shq "$ck")"
	run vm_wait_incoming dst 60
	assert_success
	assert_output completed
	run vm_status dst
	assert_output paused
	run vm_feed_status dst 10
	assert_output 0

	vm_pmemsave src "$BATS_TEST_TMPDIR/src.mem" "${MIB}M"
	vm_pmemsave dst "$BATS_TEST_TMPDIR/dst.mem" "${MIB}M"
	run vm_same_ram "$BATS_TEST_TMPDIR/src.mem" "$BATS_TEST_TMPDIR/dst.mem"
	assert_success
}

@test "a VM that never ran (-S) restores to prelaunch with its RAM image intact" {
	local ck=$BATS_TEST_TMPDIR/ckpt
	vm_start_source src "$STREAM.ram" "$MIB" -S
	run vm_migrate src "$(vm_shq "$MIG_BIN/mig-checksum") > $(vm_shq "$ck")"
	assert_output completed

	vm_start_dest dst "$MIB" "$(vm_shq "$MIG_BIN/mig-checksum") -d < $(vm_shq "$ck")"
	run vm_wait_incoming dst 60
	assert_output completed
	# QEMU calls a VM that never ran "prelaunch", not "paused".
	run vm_status dst
	assert_output prelaunch

	local mem=$BATS_TEST_TMPDIR/dst.mem
	vm_pmemsave dst "$mem" "${MIB}M"
	# Guest RAM is the image except 640 KiB..1 MiB (legacy VGA/ROM window).
	run cmp -n $((640 << 10)) "$mem" "$STREAM.ram"
	assert_success
	run cmp -i $((1 << 20)) "$mem" "$STREAM.ram"
	assert_success
}

@test "a running VM checkpointed through mig-checksum restores running" {
	local ck=$BATS_TEST_TMPDIR/ckpt
	vm_start_source src "$STREAM.ram" "$MIB"
	run vm_status src
	assert_output running
	run vm_migrate src "$(vm_shq "$MIG_BIN/mig-checksum") > $(vm_shq "$ck")"
	assert_success
	assert_output completed
	run vm_status src
	assert_output postmigrate

	vm_start_dest dst "$MIB" "$(vm_shq "$MIG_BIN/mig-checksum") -d < $(vm_shq "$ck")"
	run vm_wait_incoming dst 60
	assert_success
	assert_output completed
	run vm_status dst
	assert_output running
}

@test "a checkpoint with a flipped byte: mig-checksum -d fails, output is a prefix" {
	local ck=$BATS_TEST_TMPDIR/ckpt out=$BATS_TEST_TMPDIR/out
	"$MIG_BIN/mig-checksum" <"$STREAM" >"$ck"
	flip_byte "$ck" $(($(size_of "$ck") / 2))

	run -1 --separate-stderr bash -c '"$MIG_BIN/mig-checksum" -d <"$1" >"$2"' _ "$ck" "$out"
	output=$stderr assert_output --partial "mig-checksum"
	output=$stderr assert_output --partial "checksum mismatch"
	local n; n=$(size_of "$out")
	((n < $(size_of "$STREAM")))
	run cmp -n "$n" "$out" "$STREAM"
	assert_success
}

@test "a truncated checkpoint: mig-checksum -d fails with truncated, output is a prefix" {
	local ck=$BATS_TEST_TMPDIR/ckpt cut=$BATS_TEST_TMPDIR/cut out=$BATS_TEST_TMPDIR/out
	"$MIG_BIN/mig-checksum" <"$STREAM" >"$ck"
	head -c $(($(size_of "$ck") / 2)) "$ck" >"$cut"

	run -1 --separate-stderr bash -c '"$MIG_BIN/mig-checksum" -d <"$1" >"$2"' _ "$cut" "$out"
	output=$stderr assert_output --partial "mig-checksum"
	output=$stderr assert_output --partial "truncated"
	local n; n=$(size_of "$out")
	((n < $(size_of "$STREAM")))
	run cmp -n "$n" "$out" "$STREAM"
	assert_success
}

@test "a destination fed from a failed decode never reports a completed migration" {
	local ck=$BATS_TEST_TMPDIR/ckpt bad=$BATS_TEST_TMPDIR/bad cut=$BATS_TEST_TMPDIR/cut
	"$MIG_BIN/mig-checksum" <"$STREAM" >"$ck"
	cp "$ck" "$bad"
	flip_byte "$bad" $(($(size_of "$bad") / 2))
	head -c $(($(size_of "$ck") / 2)) "$ck" >"$cut"

	vm_start_dest flipped "$MIB" "$(vm_shq "$MIG_BIN/mig-checksum") -d < $(vm_shq "$bad")"
	vm_start_dest cut "$MIB" "$(vm_shq "$MIG_BIN/mig-checksum") -d < $(vm_shq "$cut")"

	run vm_wait_incoming flipped 60
	assert_failure
	refute_output completed
	run vm_feed_status flipped 10
	assert_output 1
	run grep -F "checksum mismatch" "$VM_DIR/flipped.feed.err"
	assert_success

	run vm_wait_incoming cut 60
	assert_failure
	refute_output completed
	run vm_feed_status cut 10
	assert_output 1
	run grep -F "truncated" "$VM_DIR/cut.feed.err"
	assert_success
}

@test "mig-checksum -d refuses a raw QEMU stream" {
	run -1 --separate-stderr bash -c '"$MIG_BIN/mig-checksum" -d <"$STREAM" >/dev/null'
	output=$stderr assert_output --partial "raw QEMU stream"
}

#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-envelope: META around a stream, peeled by every decoder.

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || exit 1
}

@test "an envelope round-trips a real QEMU stream and keeps its META" {
	mig-envelope --meta vm=web-1 --meta "cmdline=qemu -m 64M" < "$STREAM" > env
	run -0 od -An -tx1 -N6 env
	assert_output " 89 4d 49 47 01 04"
	mig-envelope -d < env | cmp - "$STREAM"
	run -0 mig-info -j env
	[ "$(jq -r '.layers[0].kind' <<<"$output")" = envelope ]
	[ "$(jq -r '.layers[0].meta.cmdline' <<<"$output")" = "qemu -m 64M" ]
	[ "$(jq -r '.inner' <<<"$output")" = qemu ]
}

@test "every decoder peels envelopes first and shows their META with -v" {
	mig-checksum < "$STREAM" | mig-envelope --meta a=1 | mig-envelope --meta b=2 > env
	run -0 --separate-stderr bash -c 'mig-checksum -d -v < env > out'
	cmp out "$STREAM"
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 --regexp "^mig-checksum: envelope layer \(hash=xxh3\): [0-9]+ frames"
	assert_line --index 1 "mig-checksum: envelope META (not authenticated) b=2"
	assert_line --index 3 "mig-checksum: envelope META (not authenticated) a=1"
	assert_line --index 4 --regexp "^mig-checksum: checksum layer "
}

@test "a damaged envelope is refused even when the inner layer is intact" {
	mig-checksum < "$STREAM" | mig-envelope --meta a=1 > env
	flip_byte env 30
	run -1 --separate-stderr bash -c 'mig-checksum -d < env > out'
	output=$stderr assert_output --partial "frame 0 (offset 21): checksum mismatch"
	[ ! -s out ]
}

@test "a truncated envelope is refused after the inner layer's frames" {
	mig-checksum < "$STREAM" | mig-envelope > env
	head -c $(( $(stat -c %s env) - 10 )) env > cut
	run -1 --separate-stderr bash -c 'mig-checksum -d < cut > out'
	output=$stderr assert_output --regexp "truncated"
	assert_prefix out "$STREAM"
}

@test "mig-envelope -d names what it was given instead" {
	mig-checksum < "$STREAM" > ck
	run -1 --separate-stderr bash -c 'mig-envelope -d < ck'
	output=$stderr assert_output "mig-envelope: stdin: input is a checksum layer; run mig-checksum -d first"
	mig-envelope < "$STREAM" > env
	run -1 --separate-stderr bash -c 'mig-checksum -d < env'
	output=$stderr assert_output "mig-checksum: stdin: input is a raw QEMU stream, not a checksum layer: nothing to decode"
}

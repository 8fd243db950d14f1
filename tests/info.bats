#!/usr/bin/env bats
# mig-info: describing (and thereby verifying) streams.

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || exit 1
}

@test "a raw QEMU stream: machine, RAM blocks, devices, complete" {
	run -0 mig-info "$STREAM"
	assert_line --index 0 "$STREAM: $(stat -c %s "$STREAM") bytes"
	assert_line --index 1 "QEMU migration stream, version 3"
	assert_line --index 2 --regexp "^  machine pc-q35-[0-9.]+$"
	assert_line --regexp "^    mem +64.0 MiB  [0-9]+ pages, [0-9]+ zero$"
	assert_line --regexp "^  devices \([0-9]+\): timer .*globalstate$"
	assert_line "  end: EOF marker, device description"
}

@test "the pages of the RAM block add up to its size" {
	run -0 mig-info --json "$STREAM"
	jq -e '.qemu.ram_blocks[] | select(.id == "mem") |
		.pages + .zero_pages + .other_pages == 16384' <<<"$output"
	jq -e '.complete == true and .error == null and .inner == "qemu"' <<<"$output"
}

@test "layers are listed outermost first, with META and sizes" {
	mig-checksum --meta vm=demo < "$STREAM" | mig-checksum > ck2
	run -0 mig-info ck2
	assert_line --index 1 "layer 1: checksum (hash=xxh3)"
	assert_line --index 3 "layer 2: checksum (hash=xxh3)"
	assert_line --index 4 "  meta (not authenticated) vm=demo"
	assert_line --index 6 "QEMU migration stream, version 3"
}

@test "the test vector, described exactly" {
	run -0 mig-info < "$REPO/tests/vectors/checksum-hello.mig"
	assert_output "stdin: 130 bytes
layer 1: checksum (hash=xxh3)
  meta (not authenticated) vm=demo
  frames 3 (2 data), inner 6 B, encoded 130 B, ratio 21.667
inner data: 6 bytes, not a QEMU stream"
}

@test "META is shown escaped and marked not authenticated: ESC [ 2 J and a newline stay on one line" {
	printf 'x' | mig-checksum --meta "vm=$(printf 'a\e[2J\nlayer 9: forged \\ \xff')" > m
	run -0 mig-info m
	assert_output 'm: 130 bytes
layer 1: checksum (hash=xxh3)
  meta (not authenticated) vm=a\x1b[2J\x0alayer 9: forged \\ \xff
  frames 2 (1 data), inner 1 B, encoded 130 B, ratio 130.000
inner data: 1 bytes, not a QEMU stream'
	# JSON: jansson escapes control characters; bytes that are not UTF-8
	# come escaped as in the text, rather than the value being dropped
	run -0 mig-info --json m
	[ "$(jq -r '.layers[0].meta.vm' <<<"$output")" = 'a\x1b[2J\x0alayer 9: forged \\ \xff' ]
	[ "$(jq -r '.layers[0].meta_authenticated' <<<"$output")" = false ]
	printf 'x' | mig-checksum --meta "vm=$(printf 'a\e[2J\nb')" > u
	run -0 mig-info --json u
	assert_output --partial '"vm": "a\u001B[2J\nb"'
	[ "$(jq -r '.layers[0].meta.vm' <<<"$output")" = "$(printf 'a\e[2J\nb')" ]
}

@test "--json for scripts" {
	mig-checksum --meta vm=demo < "$STREAM" > ck
	run -0 mig-info -j ck
	[ "$(jq -r '.layers[0].kind' <<<"$output")" = checksum ]
	[ "$(jq -r '.layers[0].meta.vm' <<<"$output")" = demo ]
	[ "$(jq -r '.layers[0].inner_bytes' <<<"$output")" = "$(stat -c %s "$STREAM")" ]
	[ "$(jq -r '.bytes' <<<"$output")" = "$(stat -c %s ck)" ]
	jq -e '.qemu.machine | startswith("pc-q35-")' <<<"$output"
}

@test "a truncated checkpoint is not complete: exit 1" {
	mig-checksum < "$STREAM" | head -c 3000000 > cut
	run -1 --separate-stderr mig-info -q cut
	[ -z "$output" ]
	output=$stderr assert_output "mig-info: cut: truncated: the stream ends inside frame 2 (offset 2097205)"
}

@test "a complete layer around a truncated QEMU stream is not complete either" {
	head -c 3000000 "$STREAM" | mig-checksum > ck
	run -1 --separate-stderr mig-info -j ck
	jq -e '.complete == false' <<<"$output"
	output=$stderr assert_output --regexp "^mig-info: ck: QEMU stream: truncated: "
}

@test "a corrupt checkpoint: exit 1 with the frame named" {
	mig-checksum < "$STREAM" > ck
	flip_byte ck $(( $(ck_frame_offset 1) + 77 ))
	run -1 --separate-stderr mig-info -q ck
	output=$stderr assert_output --partial "frame 1 (offset $(ck_frame_offset 1)): checksum mismatch"
}

@test "unknown and empty input" {
	printf 'hello' > h
	run -0 mig-info h
	assert_line --index 1 "inner data: 5 bytes, not a QEMU stream"
	run -0 mig-info < /dev/null
	assert_line --index 1 "inner data: empty"
}

@test "usage errors" {
	run -2 mig-info --bogus
	run -2 --separate-stderr mig-info nonexistent
	output=$stderr assert_output "mig-info: nonexistent: No such file or directory"
	run -0 mig-info --help
	assert_line --index 0 "usage: mig-info [--json] [-q] [FILE]"
}

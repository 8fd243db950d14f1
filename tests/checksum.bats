#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-checksum: the command, its options, and failing closed on real
# QEMU streams.

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || exit 1
}

@test "--help prints the usage and exits 0" {
	run -0 mig-checksum --help
	assert_line --index 0 "usage: mig-checksum [options] [FILE]"
	assert_output --partial "-d, --decode"
}

@test "--version prints the version" {
	run -0 mig-checksum -V
	assert_output "mig-checksum (migkit) 0.1.0"
}

@test "an unknown option is a usage error (exit 2)" {
	run -2 --separate-stderr mig-checksum --bogus
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-checksum: unknown or incomplete option '--bogus'"
}

@test "two inputs are a usage error" {
	run -2 --separate-stderr mig-checksum a b
	output=$stderr assert_output --partial "one input at most"
}

@test "a missing input file is named: an I/O error (exit 3)" {
	run -3 --separate-stderr mig-checksum nonexistent
	output=$stderr assert_output "mig-checksum: nonexistent: No such file or directory"
}

@test "--frame-size out of range is a usage error" {
	run -2 --separate-stderr mig-checksum --frame-size 17M
	output=$stderr assert_output --partial "--frame-size: '17M' is not a size from 1 to 16M"
	run -2 mig-checksum --frame-size 0
	run -2 mig-checksum --frame-size 1X
}

@test "--meta must be KEY=VALUE with a valid key" {
	run -2 --separate-stderr bash -c 'mig-checksum --meta novalue </dev/null >/dev/null'
	output=$stderr assert_output "mig-checksum: stdin: --meta 'novalue' is not KEY=VALUE"
	run -2 --separate-stderr bash -c 'mig-checksum --meta "a b=c" </dev/null >/dev/null'
	output=$stderr assert_output --partial "META key has a character outside [A-Za-z0-9._-] at position 2"
}

@test "encoding options are refused with -d" {
	run -2 --separate-stderr mig-checksum -d --meta a=b
	output=$stderr assert_output --partial "--meta is for encoding"
}

@test "the layer starts with the mig magic, version 1, kind 1" {
	printf 'x' | mig-checksum > out
	run -0 od -An -tx1 -N6 out
	assert_output " 89 4d 49 47 01 01"
}

@test "the encoder matches the test vector byte for byte" {
	printf 'hello\n' | mig-checksum --meta vm=demo --frame-size 4 > out
	cmp out "$REPO/tests/vectors/checksum-hello.mig"
	mig-checksum < /dev/null > empty
	cmp empty "$REPO/tests/vectors/checksum-empty.mig"
}

@test "a real QEMU stream round-trips byte for byte" {
	mig-checksum < "$STREAM" > ck
	mig-checksum -d < ck > back
	cmp back "$STREAM"
	# the layer costs a header, 16 bytes a frame and an END
	frames=$(( ($(stat -c %s "$STREAM") + 1048575) / 1048576 ))
	[ "$(stat -c %s ck)" -eq $(( $(stat -c %s "$STREAM") + 21 + frames * 16 + 48 )) ]
}

@test "input and output through FILE arguments and pipes" {
	mig-checksum "$STREAM" | cat | mig-checksum -d - | cmp - "$STREAM"
}

@test "layers nest: two checksums peel in order" {
	mig-checksum < "$STREAM" | mig-checksum > ck2
	mig-checksum -d < ck2 > ck1
	run -0 mig-info -j ck1
	[ "$(jq -r '.layers | length' <<<"$output")" = 1 ]
	mig-checksum -d < ck1 | cmp - "$STREAM"
}

@test "empty input makes a valid empty layer" {
	mig-checksum < /dev/null > e
	[ "$(stat -c %s e)" -eq 69 ]
	mig-checksum -d < e > back
	[ ! -s back ]
}

@test "a flipped byte is refused, naming the frame and offset; output is a prefix" {
	mig-checksum < "$STREAM" > ck
	at=$(ck_frame_offset 5)
	flip_byte ck $((at + 1000))
	run -1 --separate-stderr bash -c 'mig-checksum -d < ck > out'
	output=$stderr assert_output --regexp "^mig-checksum: stdin: frame 5 \(offset $at\): checksum mismatch \(stored [0-9a-f]{16}, computed [0-9a-f]{16}\): the frame is corrupt, or frames were dropped, repeated or reordered$"
	[ "$(stat -c %s out)" -eq $((5 * 1048576)) ]
	assert_prefix out "$STREAM"
}

@test "a dropped frame is refused at that frame" {
	mig-checksum < "$STREAM" > ck
	a=$(ck_frame_offset 3); b=$(ck_frame_offset 4)
	{ head -c "$a" ck; tail -c +$((b + 1)) ck; } > dropped
	run -1 --separate-stderr bash -c 'mig-checksum -d < dropped > out'
	output=$stderr assert_output --partial "frame 3 (offset $a): checksum mismatch"
	assert_prefix out "$STREAM"
}

@test "a repeated frame is refused" {
	mig-checksum < "$STREAM" > ck
	a=$(ck_frame_offset 3); b=$(ck_frame_offset 4)
	{ head -c "$b" ck; tail -c +$((a + 1)) ck; } > dup
	run -1 --separate-stderr bash -c 'mig-checksum -d < dup > out'
	output=$stderr assert_output --partial "frame 4 (offset $b): checksum mismatch"
	assert_prefix out "$STREAM"
}

@test "a truncated layer is refused at every kind of cut; output is a prefix" {
	mig-checksum < "$STREAM" > ck
	size=$(stat -c %s ck)
	for cut in 3 15 30 $(ck_frame_offset 2) $(( $(ck_frame_offset 2) + 5 )) \
		$(( $(ck_frame_offset 7) + 4096 )) $((size - 50)) $((size - 1)); do
		head -c "$cut" ck > cut
		run -1 --separate-stderr bash -c 'mig-checksum -d < cut > out'
		output=$stderr assert_output --regexp "^mig-checksum: stdin: truncated: "
		assert_prefix out "$STREAM"
	done
}

@test "a raw QEMU stream is not decoded, and nothing is written" {
	run -1 --separate-stderr bash -c 'mig-checksum -d < "$STREAM" > out'
	output=$stderr assert_output "mig-checksum: stdin: input is a raw QEMU stream, not a checksum layer: nothing to decode"
	[ ! -s out ]
}

@test "other input is described by its first bytes" {
	run -1 --separate-stderr bash -c 'printf "hello, world" | mig-checksum -d'
	output=$stderr assert_output "mig-checksum: stdin: input is not a mig stream (it starts 68 65 6c 6c 6f 2c 20 77)"
	run -1 --separate-stderr bash -c 'mig-checksum -d < /dev/null'
	output=$stderr assert_output "mig-checksum: stdin: input is empty, not a checksum layer"
}

@test "data after END is refused" {
	printf 'abc' | mig-checksum > ck
	printf 'X' >> ck
	run -1 --separate-stderr bash -c 'mig-checksum -d < ck'
	output=$stderr assert_output --partial "data after the END frame at offset"
}

@test "a closed output ends the filter at once with exit 3" {
	run -3 --separate-stderr bash -c 'mig-checksum < "$STREAM" | head -c 100 > /dev/null; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-checksum: stdin: write to stdout: Broken pipe"
	run -3 --separate-stderr bash -c 'mig-checksum < "$STREAM" | mig-checksum -d | head -c 100 > /dev/null; exit ${PIPESTATUS[1]}'
}

@test "a full disk is an I/O error (exit 3)" {
	run -3 --separate-stderr bash -c 'mig-checksum < "$STREAM" > /dev/full'
	output=$stderr assert_output "mig-checksum: stdin: write to stdout: No space left on device"
}

@test "an unreadable input is an I/O error (exit 3)" {
	run -3 --separate-stderr bash -c 'mig-checksum < / > out'
	output=$stderr assert_output "mig-checksum: stdin: read: Is a directory"
}

@test "an encoder wrapping a layer cut short writes no END of its own: exit 1" {
	# the upstream stage dies mid-stream; its layer has no END
	mig-checksum < "$STREAM" | head -c 5000000 > cut
	run -1 --separate-stderr bash -c 'mig-checksum < cut > outer'
	output=$stderr assert_output "mig-checksum: stdin: the layer it wraps is incomplete: truncated: the stream ends inside frame 4 (offset 4194389)"
	# so whatever reads the outer layer sees the cut too
	run -1 --separate-stderr mig-info -q outer
	output=$stderr assert_output --regexp "^mig-info: outer: truncated: the stream ends after frame 5 \(offset [0-9]+\) with no END frame$"
	run -1 --separate-stderr bash -c 'mig-tee ckpt < outer > /dev/null'
	[ ! -e ckpt ]
	run -1 --separate-stderr bash -c 'mig-checksum -d < outer | mig-checksum -d > out'
	assert_prefix out "$STREAM"
}

@test "an encoder wrapping a layer with data after its END fails at once" {
	{ mig-checksum < "$STREAM"; printf X; } > extra
	run -1 --separate-stderr bash -c 'mig-envelope < extra > /dev/null'
	output=$stderr assert_output --regexp "^mig-envelope: stdin: the layer it wraps is incomplete: data after the END frame at offset [0-9]+$"
}

@test "--progress reports bytes and rate on stderr" {
	run -0 --separate-stderr bash -c 'mig-checksum --progress < "$STREAM" > /dev/null'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --regexp "^mig-checksum: [0-9.]+ MiB in, [0-9.]+ MiB out, .*/s, [0-9.]+ s$"
}

@test "--progress on a terminal: one line, rewritten in place" {
	# a pause in the input, so that a report comes before the last one
	run -0 on_tty '(head -c 3000000 "$STREAM"; sleep 1.5; tail -c +3000001 "$STREAM") |
		mig-checksum --progress > /dev/null'
	# the first bytes in and out, a line each, then the one line
	[ "${#lines[@]}" -eq 3 ] || fail "not three lines: $output"
	# each report starts with a carriage return; all but the last end by
	# clearing the rest of the line (ESC [K)
	local cr=$'\r' esc=$'\e' report='mig-checksum: [0-9.]+ [KMG]?i?B in, [0-9.]+ [KMG]?i?B out, [^,]*/s, [0-9.]+ s'
	local first="^${cr}mig-checksum: first byte in after [0-9]+\\.[0-9]{2} s$esc\\[K\$"
	[[ ${lines[0]} =~ $first ]] || fail "first byte in: $(printf %q "${lines[0]}")"
	[[ ${lines[1]} =~ ${first/in/out} ]] || fail "first byte out: $(printf %q "${lines[1]}")"
	local re="^($cr$report$esc\\[K)+$cr$report\$"
	[[ ${lines[2]} =~ $re ]] || fail "not in place: $(printf %q "${lines[2]}")"
}

# The seconds of "PROG: first byte DIR after S s", the one such line of
# $stderr (fails unless there is exactly one).
first_byte_s() { # PROG DIR
	local re="^$1: first byte $2 after ([0-9]+\\.[0-9]{2}) s\$" l n=0 s=
	while IFS= read -r l; do
		[[ $l =~ $re ]] && { n=$((n + 1)); s=${BASH_REMATCH[1]}; }
	done <<< "$stderr"
	[ "$n" -eq 1 ] || { echo "$n lines 'first byte $2' in: $stderr" >&2; return 1; }
	echo "$s"
}

@test "--progress says once when the first byte came in and went out, counted from the start" {
	# the input starts 0.5 s after the pipeline: both times say so (less
	# the filter's own start, which a sanitizer build makes slower)
	run -0 --separate-stderr bash -c '(sleep 0.5; cat "$STREAM") | mig-checksum --progress > out'
	cmp out <(mig-checksum < "$STREAM")
	tin=$(first_byte_s mig-checksum in)
	tout=$(first_byte_s mig-checksum out)
	awk -v i="$tin" -v o="$tout" 'BEGIN { exit !(i >= 0.4 && i < 30 && o >= i) }' ||
		fail "in after $tin s, out after $tout s"
	# the reports come before the last bytes-and-rate line
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-checksum: first byte in after $tin s"
	assert_line --index 1 "mig-checksum: first byte out after $tout s"
	assert_line --index -1 --regexp "^mig-checksum: [0-9.]+ MiB in, "
	# decoding: the output waits for a verified frame, never before the input
	run -0 --separate-stderr bash -c 'mig-checksum -d --progress < out > /dev/null'
	tin=$(first_byte_s mig-checksum in)
	tout=$(first_byte_s mig-checksum out)
	awk -v i="$tin" -v o="$tout" 'BEGIN { exit !(o >= i) }' || fail "in $tin, out $tout"
	# an empty input has no first byte in; the encoder still writes its
	# header out
	run -0 --separate-stderr bash -c ': | mig-checksum --progress > /dev/null'
	lines=("${stderr_lines[@]}")
	output=$stderr assert_line --regexp "^mig-checksum: first byte out after [0-9]+\\.[0-9]{2} s$"
	output=$stderr refute_line --partial "first byte in"
	# and without --progress, nothing
	run -0 --separate-stderr bash -c 'mig-checksum < "$STREAM" > /dev/null'
	[ -z "$stderr" ]
}

@test "encoders refuse to write a stream to a terminal (exit 2)" {
	mig-keygen -q -o k
	local f
	for f in checksum compress "encrypt -k k" envelope; do
		run -2 on_tty "mig-$f < \"\$STREAM\""
		assert_output "mig-${f%% *}: refusing to write a mig stream to a terminal; redirect standard output"
	done
}

@test "-v shows the layer and its META when decoding" {
	mig-checksum --meta vm.name=web-1 --meta "cmdline=qemu -m 64M" < "$STREAM" > ck
	run -0 --separate-stderr bash -c 'mig-checksum -d -v < ck > /dev/null'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 --regexp "^mig-checksum: checksum layer \(hash=xxh3\): [0-9]+ frames, "
	assert_line --index 1 "mig-checksum: checksum META (not authenticated) vm.name=web-1"
	assert_line --index 2 "mig-checksum: checksum META (not authenticated) cmdline=qemu -m 64M"
}

@test "a changed frame flags byte is refused by mig-checksum -d, mig-info and mig-tee, on every kind of frame" {
	head -c 3145728 /dev/urandom > data # frames 0-2 of 1 MiB, END is frame 3
	mig-checksum --meta a=b < data > ck0
	# the META frame comes first: frame k (DATA k-1) is after it
	local meta=$((8 + 3 + 8)) k at bit
	for k in 0 1 2 3 4; do
		for bit in 01 80; do
			at=$((k == 0 ? 21 : $(ck_frame_offset $((k - 1))) + meta))
			cp ck0 bad
			printf "\\x$bit" | dd of=bad bs=1 seek=$((at + 1)) conv=notrunc status=none
			run -1 --separate-stderr bash -c 'mig-checksum -d < bad > out'
			output=$stderr assert_output "mig-checksum: stdin: frame $k (offset $at): flags 0x$bit: bit 0x$bit not defined for a checksum layer"
			# nothing of the frame is out: the DATA before it, whole
			cmp out <(head -c $((k < 2 ? 0 : (k - 1) * 1048576)) data)
			run -1 --separate-stderr mig-info -q bad
			output=$stderr assert_output "mig-info: bad: frame $k (offset $at): flags 0x$bit: bit 0x$bit not defined for a checksum layer"
			run -1 --separate-stderr bash -c 'mig-tee t.ck < bad > fwd'
			output=$stderr assert_output "mig-tee: t.ck: not written: frame $k (offset $at): flags 0x$bit: bit 0x$bit not defined for a checksum layer"
			[ ! -e t.ck ]
			cmp fwd bad # forwarded as it came: mig-tee is no decoder
			# an encoder wrapping it withholds its END
			run -1 --separate-stderr bash -c 'mig-checksum < bad > wrapped'
			output=$stderr assert_output --partial "the layer it wraps is incomplete: frame $k (offset $at): flags 0x$bit"
		done
	done
	# the header's flags (2 bytes at offset 6) too
	cp ck0 bad
	printf '\x01' | dd of=bad bs=1 seek=7 conv=notrunc status=none
	run -1 --separate-stderr bash -c 'mig-checksum -d < bad > out'
	output=$stderr assert_output "mig-checksum: stdin: layer header: unknown flags 0x0100"
	[ ! -s out ]
}

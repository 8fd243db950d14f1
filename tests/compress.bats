#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-compress / mig-decompress: the commands, their options, round trips
# of real QEMU streams in every codec, failing closed, and VMs restored
# through them.
# shellcheck disable=SC2016,SC2154  # bash -c scripts use their own $vars; bats sets $stderr

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/common
	load lib/qemu
	cd "$BATS_TEST_TMPDIR" || exit 1
}

teardown() {
	vm_cleanup_all
}

MIB=64
# A compress layer's header: 12 fixed bytes, 8 of parameters, 8 of check.
HDR=28

# Offset of frame K of a layer in FILE, walking the frames' lengths.
mz_frame_offset() {
	local at=$HDR i len
	for ((i = 0; i < $2; i++)); do
		len=$(od -An -tu4 -j $((at + 4)) -N4 "$1" | tr -d ' ')
		at=$((at + 8 + len))
	done
	echo "$at"
}
mz_frame_len() { od -An -tu4 -j $(($2 + 4)) -N4 "$1" | tr -d ' '; }
mz_frame_flags() { od -An -tx1 -j $(($2 + 1)) -N1 "$1" | tr -d ' '; }
# After a change to FILE's parameters: its header check again, XXH3-64 of
# the 20 bytes before it, little-endian (xxhsum prints it big-endian).
fix_header_check() {
	local h i
	h=$(head -c 20 "$1" | xxhsum -H3 - | awk '{ print $NF }')
	for ((i = 7; i >= 0; i--)); do
		printf "\\x${h:$((2 * i)):2}"
	done | dd of="$1" bs=1 seek=20 conv=notrunc status=none
}

@test "--help prints the usage, with the codec options" {
	run -0 mig-compress --help
	assert_line --index 0 "usage: mig-compress [options] [FILE]"
	assert_line --index 2 "       mig-decompress"
	assert_output --partial "-a, --algo ALGO      zstd-long (default), zstd, zlib or lz4"
	assert_output --partial "-T, --threads N"
}

@test "--version, -h and usage errors, under both names: each its own" {
	run -0 mig-compress -V
	assert_output "mig-compress (migkit) 0.1.0"
	run -0 mig-decompress -V
	assert_output "mig-decompress (migkit) 0.1.0"
	run -0 mig-decompress -h
	assert_line --index 0 "usage: mig-decompress [options] [FILE]"
	assert_line --index 1 "       mig-compress -d [options] [FILE]"
	assert_output --partial "See mig-decompress(1) and mig-stream(5)."
	refute_output --partial "mig-compress [options]"
	run -2 --separate-stderr mig-decompress --bogus
	output=$stderr assert_output "mig-decompress: unknown or incomplete option '--bogus'
Try 'mig-decompress --help'."
	run -0 mig-decrypt -h
	assert_line --index 0 "usage: mig-decrypt [options] [FILE]"
	assert_output --partial "See mig-decrypt(1) and mig-stream(5)."
	run -2 --separate-stderr mig-decrypt --bogus
	output=$stderr assert_output "mig-decrypt: unknown or incomplete option '--bogus'
Try 'mig-decrypt --help'."
}

@test "usage errors: bad codec, bad level (whatever the order), -T 0" {
	run -2 --separate-stderr mig-compress -a bz2
	output=$stderr assert_output "mig-compress: -a: unknown codec 'bz2' (zstd-long, zstd, zlib or lz4)"
	run -2 --separate-stderr mig-compress -l 20
	output=$stderr assert_output "mig-compress: -l: '20' is not a level of zstd-long (1 to 19, or -7 to -1 for faster ones)"
	run -2 --separate-stderr mig-compress -l 0
	output=$stderr assert_output "mig-compress: -l: '0' is not a level of zstd-long (1 to 19, or -7 to -1 for faster ones)"
	run -2 --separate-stderr mig-compress -l 15 -a lz4
	output=$stderr assert_output "mig-compress: -l: '15' is not a level of lz4 (1 to 12)"
	run -2 --separate-stderr mig-compress --algo zlib --level 10
	output=$stderr assert_output "mig-compress: -l: '10' is not a level of zlib (1 to 9)"
	run -2 --separate-stderr mig-compress -l fast
	output=$stderr assert_output "mig-compress: -l: 'fast' is not a number"
	run -2 --separate-stderr mig-compress -T 0
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-compress: -T: '0' is not a number of threads from 1 to 64"
	run -2 --separate-stderr mig-decompress -T 65
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decompress: -T: '65' is not a number of threads from 1 to 64"
}

@test "levels at the ends of each codec's range are accepted" {
	for args in "-l -7" "-l 19" "-a zlib -l 9" "-a lz4 -l 12" "-a lz4 -l 2"; do
		# shellcheck disable=SC2086
		printf 'hello hello hello hello hello\n' | mig-compress $args > z
		mig-decompress < z | grep -qx 'hello hello hello hello hello'
	done
}

@test "the layer is kind 2; its parameters record codec, level and frame size" {
	# zstd-long (4), level 1, window 2^27, not adaptive into a file, 4 MiB
	printf 'x' | mig-compress > z
	run -0 od -An -tx1 -w20 -N20 z
	assert_output " 89 4d 49 47 01 02 00 00 08 00 00 00 04 01 1b 00 00 00 40 00"
	printf 'x' | mig-compress -a zstd > z
	run -0 od -An -tx1 -j12 -N8 z
	assert_output " 01 01 00 00 00 00 10 00"
	printf 'x' | mig-compress -a zlib -l 6 --frame-size 64K > z
	run -0 od -An -tx1 -j12 -N8 z
	assert_output " 02 06 00 00 00 00 01 00"
	printf 'x' | mig-compress -a zstd -l -3 > z
	run -0 od -An -tx1 -j12 -N2 z
	assert_output " 01 fd"
}

@test "the encoder matches the test vector byte for byte, and it decodes" {
	printf 'hello\n%.0s' 1 2 3 4 5 6 | mig-compress -a zstd --meta vm=demo --frame-size 30 > out
	cmp out "$REPO/tests/vectors/compress-hello-zstd.mig"
	run -0 mig-decompress "$REPO/tests/vectors/compress-hello-zstd.mig"
	assert_output "$(printf 'hello\n%.0s' 1 2 3 4 5 6)"
}

@test "a real QEMU stream round-trips byte for byte in each codec, smaller" {
	for a in zstd zlib lz4; do
		mig-compress -a "$a" < "$STREAM" > z
		[ "$(stat -c %s z)" -lt $(($(stat -c %s "$STREAM") * 3 / 4)) ] ||
			fail "$a: $(stat -c %s z) bytes"
		mig-decompress < z | cmp - "$STREAM"
		mig-compress -d < z | cmp - "$STREAM"
	done
}

@test "-T 1, 2 and 4 write the same bytes, and decode on 1, 2 and 4 threads" {
	mig-compress -a zstd -T 1 < "$STREAM" > z1
	for t in 2 4; do
		mig-compress -a zstd -T "$t" < "$STREAM" | cmp - z1
	done
	for t in 1 2 4; do
		mig-decompress -T "$t" < z1 | cmp - "$STREAM"
	done
	mig-compress -a lz4 -T 4 "$STREAM" | mig-decompress -T 2 - | cmp - "$STREAM"
}

@test "incompressible input grows only by the framing: 16 bytes a frame" {
	head -c $((8 << 20)) /dev/urandom > rnd
	printf 'abc' >> rnd
	for a in zstd zlib lz4; do
		mig-compress -a "$a" < rnd > z
		# header, 9 stored frames (8 of 1 MiB, one of 3 bytes), END
		[ "$(stat -c %s z)" -eq $((HDR + $(stat -c %s rnd) + 9 * 16 + 8 + 16 + 8)) ] ||
			fail "$a: $(stat -c %s z) bytes"
		[ "$(mz_frame_flags z "$(mz_frame_offset z 4)")" = 01 ]
		mig-decompress < z | cmp - rnd
	done
}

@test "empty input makes a valid empty layer" {
	mig-compress < /dev/null > e
	[ "$(stat -c %s e)" -eq $((HDR + 8 + 16 + 8)) ]
	mig-decompress < e > back
	[ ! -s back ]
}

@test "a flipped byte in a frame's tag: exit 1, the exact message, output a prefix" {
	mig-compress -a zstd < "$STREAM" > z
	at=$(mz_frame_offset z 5)
	flip_byte z $((at + 8 + $(mz_frame_len z "$at") - 3))
	run -1 --separate-stderr bash -c 'mig-decompress < z > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: frame 5 \(offset $at\): content check failed \(stored [0-9a-f]{16}, computed [0-9a-f]{16}\): the frame is corrupt, or frames were dropped, repeated or reordered$"
	[ "$(stat -c %s out)" -eq $((5 * 1048576)) ]
	assert_prefix out "$STREAM"
}

@test "a flipped byte anywhere in compressed data is reported, in each codec" {
	for a in zstd zlib lz4; do
		mig-compress -a "$a" < "$STREAM" > z
		at=$(mz_frame_offset z 3)
		len=$(mz_frame_len z "$at")
		[ "$(mz_frame_flags z "$at")" = 00 ] # a compressed frame
		for pos in 1 5 $((len / 3)) $((len / 2)) $((len - 12)); do
			cp z bad
			flip_byte bad $((at + 8 + pos))
			run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
			output=$stderr assert_output --regexp "^mig-decompress: stdin: frame 3 \(offset $at\): ($a: .+|frame decodes to more than the limit of 1048576 bytes|content check failed \(stored [0-9a-f]{16}, computed [0-9a-f]{16}\): the frame is corrupt, or frames were dropped, repeated or reordered)$"
			[ "$(stat -c %s out)" -eq $((3 * 1048576)) ]
			assert_prefix out "$STREAM"
		done
	done
}

@test "a corrupt header or frame flags are refused" {
	mig-compress -a zstd < "$STREAM" > z
	cp z bad
	flip_byte bad 14
	run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
	output=$stderr assert_output "mig-decompress: stdin: layer header is corrupt (check mismatch)"
	[ ! -s out ]
	at=$(mz_frame_offset z 2)
	cp z bad
	printf '\x04' | dd of=bad bs=1 seek=$((at + 1)) conv=notrunc status=none
	run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
	output=$stderr assert_output "mig-decompress: stdin: frame 2 (offset $at): flags 0x04: bit 0x04 not defined for a compress layer"
	# a compressed frame marked stored fails its check
	printf '\x01' | dd of=bad bs=1 seek=$((at + 1)) conv=notrunc status=none
	run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
	output=$stderr assert_output --partial "mig-decompress: stdin: frame 2 (offset $at): content check failed"
	assert_prefix out "$STREAM"
}

@test "a dropped frame is refused at that frame" {
	mig-compress -a zstd < "$STREAM" > z
	a=$(mz_frame_offset z 3); b=$(mz_frame_offset z 4)
	{ head -c "$a" z; tail -c +$((b + 1)) z; } > dropped
	run -1 --separate-stderr bash -c 'mig-decompress < dropped > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: frame 3 \(offset $a\): content check failed \(stored [0-9a-f]{16}, computed [0-9a-f]{16}\): the frame is corrupt, or frames were dropped, repeated or reordered$"
	[ "$(stat -c %s out)" -eq $((3 * 1048576)) ]
	assert_prefix out "$STREAM"
}

@test "a repeated frame is refused" {
	mig-compress -a zstd < "$STREAM" > z
	a=$(mz_frame_offset z 3); b=$(mz_frame_offset z 4)
	{ head -c "$b" z; tail -c +$((a + 1)) z; } > dup
	run -1 --separate-stderr bash -c 'mig-decompress -T 4 < dup > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: frame 4 \(offset $b\): content check failed \(stored [0-9a-f]{16}, computed [0-9a-f]{16}\): the frame is corrupt, or frames were dropped, repeated or reordered$"
	[ "$(stat -c %s out)" -eq $((4 * 1048576)) ]
	assert_prefix out "$STREAM"
}

@test "a cut layer is refused at every kind of cut; output is a prefix" {
	mig-compress -a lz4 < "$STREAM" > z
	size=$(stat -c %s z)
	f2=$(mz_frame_offset z 2); f7=$(mz_frame_offset z 7)
	for cut in 3 15 30 "$f2" $((f2 + 5)) $((f7 + 4096)) $((size - 30)) $((size - 1)); do
		head -c "$cut" z > cut
		run -1 --separate-stderr bash -c 'mig-decompress < cut > out'
		output=$stderr assert_output --regexp "^mig-decompress: stdin: truncated: "
		assert_prefix out "$STREAM"
	done
	head -c "$f7" z > cut
	run -1 --separate-stderr bash -c 'mig-decompress < cut > out'
	output=$stderr assert_output "mig-decompress: stdin: truncated: the stream ends after frame 7 (offset $f7) with no END frame"
	[ "$(stat -c %s out)" -eq $((7 * 1048576)) ]
}

@test "data after END is refused" {
	printf 'abc' | mig-compress > z
	printf 'X' >> z
	run -1 --separate-stderr bash -c 'mig-decompress < z'
	output=$stderr assert_output --partial "data after the END frame at offset"
}

@test "wrong input: a checksum layer, a raw QEMU stream, other bytes, nothing" {
	mig-checksum < "$STREAM" > ck
	run -1 --separate-stderr bash -c 'mig-decompress < ck > out'
	output=$stderr assert_output "mig-decompress: stdin: input is a checksum layer; run mig-checksum -d first"
	[ ! -s out ]
	run -1 --separate-stderr bash -c 'mig-decompress < "$STREAM" > out'
	output=$stderr assert_output "mig-decompress: stdin: input is a raw QEMU stream, not a compress layer: nothing to decode"
	[ ! -s out ]
	run -1 --separate-stderr bash -c 'printf "hello, world" | mig-compress -d'
	output=$stderr assert_output "mig-compress: stdin: input is not a mig stream (it starts 68 65 6c 6c 6f 2c 20 77)"
	run -1 --separate-stderr bash -c 'mig-decompress < /dev/null'
	output=$stderr assert_output "mig-decompress: stdin: input is empty, not a compress layer"
	mig-compress < "$STREAM" > z
	run -1 --separate-stderr bash -c 'mig-checksum -d < z'
	output=$stderr assert_output "mig-checksum: stdin: input is a compress layer; run mig-decompress first"
}

@test "layers nest with mig-checksum in both orders" {
	mig-checksum < "$STREAM" | mig-compress > ck-z
	run -0 mig-info -j ck-z
	[ "$(jq -r '[.layers[].kind] | join(",")' <<<"$output")" = "compress,checksum" ]
	mig-decompress < ck-z | mig-checksum -d | cmp - "$STREAM"
	mig-compress -a zlib < "$STREAM" | mig-checksum > z-ck
	mig-checksum -d < z-ck | mig-decompress | cmp - "$STREAM"
	mig-compress -a lz4 < "$STREAM" | mig-compress > z-z
	mig-decompress < z-z | mig-decompress | cmp - "$STREAM"
}

@test "-v and mig-info describe the layer" {
	mig-compress -a zlib -l 3 --meta vm.name=web-1 < "$STREAM" > z
	run -0 --separate-stderr bash -c 'mig-decompress -v < z > /dev/null'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 --regexp "^mig-decompress: compress layer \(codec=zlib level=3 frame-size=1M\): [0-9]+ frames, "
	assert_line --index 1 "mig-decompress: compress META (not authenticated) vm.name=web-1"
	run -0 mig-info z
	assert_line --index 1 "layer 1: compress (codec=zlib level=3 frame-size=1M)"
}

@test "a closed output ends the filters at once with exit 3" {
	run -3 --separate-stderr bash -c 'mig-compress < "$STREAM" | head -c 100 > /dev/null; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-compress: stdin: write to stdout: Broken pipe"
	run -3 --separate-stderr bash -c 'mig-compress < "$STREAM" | mig-decompress | head -c 100 > /dev/null; exit ${PIPESTATUS[1]}'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decompress: stdin: write to stdout: Broken pipe"
}

@test "a running VM checkpointed through exec:mig-compress restores running" {
	local ck=$BATS_TEST_TMPDIR/ckpt
	vm_start_source src "$STREAM.ram" "$MIB"
	run vm_migrate src "$(vm_shq "$MIG_BIN/mig-compress") > $(vm_shq "$ck")"
	assert_success
	assert_output completed

	vm_start_dest dst "$MIB" "$(vm_shq "$MIG_BIN/mig-decompress") < $(vm_shq "$ck")"
	run vm_wait_incoming dst 60
	assert_success
	assert_output completed
	run vm_status dst
	assert_output running
	run vm_feed_status dst 10
	assert_output 0
}

@test "a paused VM checkpointed through zlib and lz4 restores with the same RAM" {
	for a in zlib lz4; do
		vm_start_source "src-$a" "$STREAM.ram" "$MIB"
		qmp "src-$a" '{"execute":"stop"}'
		run vm_migrate "src-$a" "$(vm_shq "$MIG_BIN/mig-compress") -a $a -T 2 > $(vm_shq "$PWD/$a.ckpt")"
		assert_output completed
		vm_start_dest "dst-$a" "$MIB" "$(vm_shq "$MIG_BIN/mig-decompress") < $(vm_shq "$PWD/$a.ckpt")"
		run vm_wait_incoming "dst-$a" 60
		assert_output completed
		run vm_status "dst-$a"
		assert_output paused
		vm_pmemsave "src-$a" "src-$a.mem" "${MIB}M"
		vm_pmemsave "dst-$a" "dst-$a.mem" "${MIB}M"
		vm_same_ram "src-$a.mem" "dst-$a.mem"
		vm_stop "src-$a"
		vm_stop "dst-$a"
	done
}

@test "a destination fed a damaged compressed checkpoint never completes" {
	mig-compress < "$STREAM" > z
	cp z bad
	flip_byte bad $(($(stat -c %s z) / 2))
	vm_start_dest dst "$MIB" "$(vm_shq "$MIG_BIN/mig-decompress") < $(vm_shq "$PWD/bad")"
	run vm_wait_incoming dst 60
	assert_failure
	refute_output completed
	run vm_feed_status dst 10
	assert_output 1
	run grep -E "mig-decompress: stdin: frame [0-9]+ \(offset [0-9]+\): " "$VM_DIR/dst.feed.err"
	assert_success
}

@test "encoding options are refused when decoding" {
	run -2 --separate-stderr mig-decompress -a lz4
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decompress: --algo is for encoding"
	run -2 --separate-stderr mig-compress -d -l 3
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-compress: --level is for encoding"
}

@test "--memory bounds a decoder's frames in flight, whatever frame size the stream declares" {
	# 64 frames of 16 MiB of zeros: about 35 kB that decode to 1 GiB; at
	# -T 64 they took 1 GiB of memory, and the 2 GiB case 2.1 GB (issue 13)
	head -c 1G /dev/zero | mig-compress -a zstd --frame-size 16M > z16
	[ "$(stat -c %s z16)" -lt 100000 ]
	run -0 --separate-stderr bash -c 'set -o pipefail
		/usr/bin/time -f %M -o rss mig-decompress -T 64 --memory 64M -v < z16 |
			cmp - <(head -c 1G /dev/zero)'
	lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decompress: decoding on 1 thread, not 64: --memory 64.0 MiB allows 1 frame in flight"
	local rss
	rss=$(tail -1 rss) # peak resident set, KiB
	(( rss < 64 * 1024 )) || fail "peak RSS $rss KiB over --memory 64M"
	# the default, 1G: 31 frames in flight, 15 threads, under 1 GiB
	run -0 --separate-stderr bash -c 'set -o pipefail
		/usr/bin/time -f %M -o rss mig-decompress -T 64 -v < z16 |
			cmp - <(head -c 1G /dev/zero)'
	lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decompress: decoding on 15 threads, not 64: --memory 1.0 GiB allows 31 frames in flight"
	rss=$(tail -1 rss)
	(( rss < 1024 * 1024 )) || fail "peak RSS $rss KiB over the default 1 GiB"
	# a 1 MiB-frame stream at -T 2 fits the default: nothing said
	head -c 4M /dev/urandom > r
	mig-compress -a zstd < r > r.mz
	run -0 --separate-stderr bash -c 'mig-decompress -T 2 -v < r.mz | cmp - r'
	output=$stderr refute_output --partial "decoding on"
}

@test "--memory: a size of at least one frame in flight, for decoding only" {
	run -2 --separate-stderr mig-decompress --memory 32M
	lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decompress: --memory: '32M' is not a size of at least one frame in flight (32.1 MiB)"
	run -2 --separate-stderr mig-decompress --memory lots
	lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decompress: --memory: 'lots' is not a size of at least one frame in flight (32.1 MiB)"
	run -2 --separate-stderr bash -c 'mig-compress --memory 1G < /dev/null > out'
	lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-compress: --memory is for decoding (-d)"
	head -c 100000 /dev/urandom > r
	mig-compress < r > r.mz
	mig-decompress --memory 1G < r.mz | cmp - r
	mig-decrypt --help | grep -q -- "--memory SIZE"
}

# zstd-long, the default: one zstd stream through the DATA frames
# (mig-stream(5)), long-distance matching over 128 MiB, frames one at a time.

@test "zstd-long: a real stream round-trips, much smaller than independent frames" {
	mig-compress < "$STREAM" > long
	mig-compress -a zstd < "$STREAM" > indep
	mig-decompress < long | cmp - "$STREAM"
	# the test stream's RAM repeats itself far apart: long matching finds it
	[ "$(stat -c %s long)" -lt $(($(stat -c %s indep) * 9 / 10)) ] ||
		fail "zstd-long $(stat -c %s long) bytes, zstd $(stat -c %s indep)"
	run -0 mig-info long
	assert_line --index 1 "layer 1: compress (codec=zstd-long level=1 frame-size=4M window=128.0 MiB)"
}

@test "zstd-long: -T 1, 2 and 4 write the same bytes (zstd's workers), and decode" {
	mig-compress --no-adapt -T 1 < "$STREAM" > z1
	for t in 2 4; do
		mig-compress --no-adapt -T "$t" < "$STREAM" | cmp - z1
	done
	mig-decompress -T 4 < z1 | cmp - "$STREAM"
}

@test "zstd-long: --adapt where the output is a pipe, not into a file; its bytes decode" {
	printf 'x' | mig-compress | od -An -tx1 -j15 -N1 | grep -qx ' 01'
	printf 'x' | mig-compress > f
	run -0 od -An -tx1 -j15 -N1 f
	assert_output " 00"
	printf 'x' | mig-compress -l 3 | od -An -tx1 -j15 -N1 | grep -qx ' 00'
	mig-compress --adapt < "$STREAM" > a
	run -0 mig-info a
	assert_line --index 1 --regexp '^layer 1: compress \(codec=zstd-long level=1 \(adaptive\) '
	mig-decompress < a | cmp - "$STREAM"
	run -2 --separate-stderr mig-compress -a lz4 --adapt < /dev/null
	output=$stderr assert_output --partial "--adapt is for zstd-long"
}

@test "zstd-long: a changed byte in any frame, a dropped, repeated or stored frame, a cut: refused, output a prefix" {
	mig-compress --no-adapt < "$STREAM" > z
	local n at len
	n=$(($(stat -c %s "$STREAM") / (4 << 20)))
	at=$(mz_frame_offset z 2)
	len=$(mz_frame_len z "$at")
	for pos in 3 $((len / 2)) $((len - 4)); do
		cp z bad
		flip_byte bad $((at + 8 + pos))
		run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
		output=$stderr assert_output --regexp "^mig-decompress: stdin: frame 2 \(offset $at\): "
		[ "$(stat -c %s out)" -eq $((2 * (4 << 20))) ]
		assert_prefix out "$STREAM"
	done
	# dropped: the next frame's piece does not follow; its tag fails
	a=$(mz_frame_offset z 1); b=$(mz_frame_offset z 2)
	{ head -c "$a" z; tail -c +$((b + 1)) z; } > dropped
	run -1 --separate-stderr bash -c 'mig-decompress < dropped > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: frame 1 \(offset $a\): "
	assert_prefix out "$STREAM"
	# repeated
	{ head -c "$b" z; tail -c +$((a + 1)) z; } > dup
	run -1 --separate-stderr bash -c 'mig-decompress < dup > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: frame 2 \(offset $b\): "
	assert_prefix out "$STREAM"
	# a DATA frame marked stored
	cp z bad
	printf '\x01' | dd of=bad bs=1 seek=$((at + 1)) conv=notrunc status=none
	run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
	output=$stderr assert_output "mig-decompress: stdin: frame 2 (offset $at): a stored DATA frame in a zstd-long layer (its DATA is one stream)"
	# cut
	head -c $((b + 100)) z > cut
	run -1 --separate-stderr bash -c 'mig-decompress < cut > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: truncated: "
	assert_prefix out "$STREAM"
	[ "$n" -gt 2 ]
}

@test "zstd-long: a stream whose level changed midway (--adapt under --rate): a new zstd frame from the change on; it decodes; a changed byte there, the frames about it swapped, a cut at the change: refused, output a prefix" {
	head -c $((24 << 20)) "$STREAM" > part
	# --rate makes writing wait: the level climbs while the frames go
	mig-compress -v --adapt --rate 2M < part 2> err | cat > z
	run cat err
	assert_line --regexp '^mig-compress: zstd-long levels 1 to [2-9], adapted to the output$'
	assert_line --regexp '^mig-compress: zstd-long: level [2-9] from frame [0-9]+ on, in a zstd worker$'
	local n
	n=$(sed -n 's/^mig-compress: zstd-long: level [2-9] from frame \([0-9]*\) on.*/\1/p' err)
	[ "$n" -ge 1 ] && [ "$n" -le 4 ]
	mig-decompress < z | cmp - part
	# frame n's piece starts a zstd frame (its magic), frame n - 1's and
	# the first's only the first does
	local an ap
	an=$(mz_frame_offset z "$n"); ap=$(mz_frame_offset z $((n - 1)))
	[ "$(od -An -tx1 -j $((an + 8)) -N4 z | tr -d ' ')" = 28b52ffd ]
	[ "$(od -An -tx1 -j $((HDR + 8)) -N4 z | tr -d ' ')" = 28b52ffd ]
	[ "$n" -eq 1 ] || [ "$(od -An -tx1 -j $((ap + 8)) -N4 z | tr -d ' ')" != 28b52ffd ]
	cp z bad
	flip_byte bad $((an + 8 + $(mz_frame_len z "$an") / 2))
	run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: frame $n \(offset $an\): "
	[ "$(stat -c %s out)" -eq $((n * (4 << 20))) ]
	assert_prefix out part
	# frames n - 1 and n swapped
	{ head -c "$ap" z; tail -c +$((an + 1)) z | head -c $((8 + $(mz_frame_len z "$an")));
	  tail -c +$((ap + 1)) z | head -c $((an - ap)); tail -c +$((an + 9 + $(mz_frame_len z "$an"))) z; } > swapped
	[ "$(stat -c %s swapped)" -eq "$(stat -c %s z)" ]
	run -1 --separate-stderr bash -c 'mig-decompress < swapped > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: frame $((n - 1)) \(offset $ap\): "
	[ "$(stat -c %s out)" -eq $(((n - 1) * (4 << 20))) ]
	assert_prefix out part
	# cut where the first zstd frame ended: a whole zstd frame, but the
	# layer's END is missing
	head -c "$an" z > cut
	run -1 --separate-stderr bash -c 'mig-decompress < cut > out'
	output=$stderr assert_output --regexp "^mig-decompress: stdin: truncated: "
	cmp out <(head -c $((n * (4 << 20))) part)
}

@test "zstd-long: a window over 2^27 or a stray parameter byte is refused at the header" {
	printf 'x' | mig-compress > z
	cp z bad
	printf '\x1c' | dd of=bad bs=1 seek=14 conv=notrunc status=none
	fix_header_check bad
	run -1 --separate-stderr bash -c 'mig-decompress < bad > out'
	output=$stderr assert_output "mig-decompress: stdin: layer header: zstd-long window 2^28 is not from 2^10 to 2^27 (or adapt byte 0)"
	[ ! -s out ]
}

@test "zstd-long --adapt: a slow reader raises the level, a fast one keeps it; -v says so" {
	head -c $((48 << 20)) "$STREAM" > part
	# a reader of at most about 10 MB/s (bounded: 2000 pieces): writing
	# waits, the level climbs
	run -0 --separate-stderr bash -c 'mig-compress -v --adapt < part | {
		for ((n = 0; n < 2000; n++)); do
			[ "$(dd bs=131072 count=1 iflag=fullblock status=none | wc -c)" -gt 0 ] || break
			sleep 0.0125
		done; cat > /dev/null; }'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --regexp '^mig-compress: zstd-long levels 1 to [2-9], adapted to the output$'
	# into /dev/null nothing waits: level 1 throughout
	run -0 --separate-stderr bash -c 'mig-compress -v --adapt < part > /dev/null'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line "mig-compress: zstd-long levels 1 to 1, adapted to the output"
}

@test "zstd-long --adapt: a level chosen with one of the last two pieces is never used, and -v does not name it" {
	# three DATA frames: no write has waited when the first is
	# compressed, so a change is chosen after the second at the
	# earliest (the rate makes writing wait); the zstd frame would end
	# with the third, the new level start with a fourth
	head -c $((12 << 20)) "$STREAM" > part
	run -0 --separate-stderr bash -c 'mig-compress -v --adapt --rate 4M < part | cat > z'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --regexp '^mig-compress: 3 frames, 12.0 MiB in, [0-9.]+ MiB out$'
	assert_line "mig-compress: zstd-long levels 1 to 1, adapted to the output"
	refute_line --partial " on, in a zstd worker"
	[ "${#lines[@]}" -eq 2 ]
	mig-decompress < z | cmp - part
}

@test "zstd-long --adapt: a slow reader while every CPU is busy keeps level 1 (the stages after wait for CPU, not for a link)" {
	head -c $((48 << 20)) "$STREAM" > part
	# a busy loop on every CPU, niced so the test itself still runs:
	# the kernel counts their time as busy, none is spare
	local hogs=() i
	for ((i = 0; i < $(nproc); i++)); do
		timeout 120 nice -n 19 sh -c 'while :; do :; done' &
		hogs+=($!)
	done
	run -0 --separate-stderr bash -c 'mig-compress -v --adapt < part | {
		for ((n = 0; n < 2000; n++)); do
			[ "$(dd bs=131072 count=1 iflag=fullblock status=none | wc -c)" -gt 0 ] || break
			sleep 0.0125
		done; cat > /dev/null; }'
	kill "${hogs[@]}"
	wait "${hogs[@]}" 2>/dev/null || true
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line "mig-compress: zstd-long levels 1 to 1, adapted to the output"
}

@test "zstd-long: compresses in mig-compress's own thread, fixed or adapting, until the level first changes; then in one zstd worker; all decode" {
	head -c $((6 << 20)) "$STREAM" > part
	mkfifo in out
	local mode pid feeder drainer i
	for mode in --no-adapt --adapt -l3; do
		mig-compress "$mode" < in > out &
		pid=$!
		exec 7> in 8< out
		cat part >&7 8<&- &
		feeder=$!
		# the first frame's first bytes out: the 4 MiB frame was
		# compressed, by a zstd worker if there were one; the input stays
		# open, so the process waits for more with its threads
		dd bs=1 count=$((28 + 100)) status=none <&8 > first
		run -0 ls "/proc/$pid/task"
		[ "${#lines[@]}" -eq 1 ] || fail "$mode: ${#lines[@]} threads"
		cat <&8 > rest 7>&- &
		drainer=$!
		wait "$feeder"
		exec 7>&-
		wait "$drainer"
		exec 8<&-
		wait "$pid"
		cat first rest | mig-decompress | cmp - part
	done
	# a level that climbs (writing waits under --rate): a worker from then on
	head -c $((24 << 20)) "$STREAM" > part
	mkfifo zout
	cat zout > z &
	drainer=$!
	mig-compress -v --adapt --rate 8M < in 2> err > zout &
	pid=$!
	exec 7> in
	cat part >&7 &
	feeder=$!
	# the worker starts with the frame after the change (bounded: 10 s)
	local threads=0
	for ((i = 0; i < 200 && threads < 2; i++)); do
		threads=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
		sleep 0.05
	done
	wait "$feeder"
	exec 7>&-
	wait "$pid"
	wait "$drainer"
	run cat err
	assert_line --regexp '^mig-compress: zstd-long: level [2-9] from frame [0-9]+ on, in a zstd worker$'
	[ "$threads" -eq 2 ] || fail "after the change: $threads threads"
	mig-decompress < z | cmp - part
}

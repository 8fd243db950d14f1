#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-compact: each RAM page once, with its final content; QEMU loads the
# result to the same RAM. Real streams: a paused VM's (test_stream_setup)
# and a live migration of a running VM (firmware only) at a low bandwidth,
# in which QEMU re-sends the pages the guest dirtied meanwhile.
# shellcheck disable=SC2154  # bats sets $output, $stderr, $status

load lib/common
load lib/qemu

MIB=64

# A running VM migrated live at 20 MB/s: the first pass takes seconds, and
# what the guest (or KVM's dirty log of a private file mapping) dirtied
# meanwhile is sent again.
make_live_stream() { # OUT
	local VM_DIR rc=0
	VM_DIR=$(mktemp -d "$BATS_FILE_TMPDIR/vm.XXXXXX")
	vm_make_ram "$BATS_FILE_TMPDIR/live.ram" "$MIB" || return 1
	vm_start_source live "$BATS_FILE_TMPDIR/live.ram" "$MIB" || rc=1
	((rc)) || MIG_MAX_BANDWIDTH=20000000 vm_migrate live "cat > $(vm_shq "$1")" >/dev/null || rc=1
	_vm_kill "$VM_DIR" live
	return "$rc"
}

setup_file() {
	load lib/common
	test_stream_setup
	LIVE=$BATS_FILE_TMPDIR/live
	export LIVE
	make_live_stream "$LIVE"
}

setup() {
	cd "$BATS_TEST_TMPDIR" || exit 1
}

teardown() {
	vm_cleanup_all
}

size_of() { stat -c %s "$1"; }

# Wait (bounded, polling: the writer is a process QEMU started) until FILE
# exists and is not empty.
wait_for_file() { # FILE TIMEOUT
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ -s "$1" ] && return 0
		_vm_tick 0.1
	done
	fail "$1 did not appear within $2 s"
}

# Offset of the first record of the first ram PART section (after the
# START's EOS and footer, then 0x02 and the same section id).
first_part_records() { # FILE
	perl -0777 -ne '/\x00{7}\x10\x7e(....)\x02\1/s or die "no PART\n";
		print $+[0], "\n"' "$1"
}

# Offset of the ram START section (0x01, id, "ram", instance 0, version 4).
ram_start() { # FILE
	perl -0777 -ne '/\x01....\x03ram\x00\x00\x00\x00\x00\x00\x00\x04/s or die "no START\n";
		print $-[0], "\n"' "$1"
}

# FILE with the bytes HEX inserted at OFFSET, into OUT.
insert_at() { # FILE OFFSET HEX OUT
	{ head -c "$2" "$1"; printf '%s' "$3" | xxd -r -p; tail -c +"$(($2 + 1))" "$1"; } > "$4"
}

# Two destinations, paused, loaded from A and B: their RAM (the mem block
# and the 256 KiB BIOS below 4 GiB) must be the same.
assert_same_ram_loaded() { # A B
	vm_start_dest a "$MIB" "cat $(vm_shq "$1")" -S
	vm_start_dest b "$MIB" "cat $(vm_shq "$2")" -S
	run -0 vm_wait_incoming a 60
	assert_output completed
	run -0 vm_wait_incoming b 60
	assert_output completed
	run -0 vm_status b
	[[ $output == paused || $output == prelaunch ]] # -S: RAM stays as loaded
	for v in a b; do
		vm_pmemsave "$v" "$v.mem" "${MIB}M"
		qmp "$v" "{\"execute\":\"pmemsave\",\"arguments\":{\"val\":4294705152,\"size\":262144,\"filename\":\"$PWD/$v.bios\"}}" >/dev/null
		[ "$(size_of "$v.bios")" = 262144 ]
	done
	vm_same_ram a.mem b.mem
	cmp a.bios b.bios
}

# A tiny stream made by hand in QEMU's format: one 8 KiB block "a"; page 0
# sent as "A"s in a PART, page 1 as a zero page, page 0 again as "B"s in
# the END; a device section; EOF; the device description. With COMPACT=1,
# what mig-compact must make of it: one PART with page 0's "B"s and page
# 1's zero record (continuing block "a"), the END with nothing but EOS.
# CAP=NAME: a configuration/capabilities subsection naming it; CMD=HEX: a
# QEMU_VM_COMMAND record right before the ram END.
tiny_stream() { # [COMPACT]
	COMPACT=${1:-0} perl -e '
		my $c = $ENV{COMPACT};
		sub rec { pack("Q>", $_[0]) }
		my $s = "QEVM" . pack("N", 3) . "\x07" . pack("N", 10) . "pc-q35-7.2";
		$s .= "\x05\x1aconfiguration/capabilities" . pack("N", 1) . pack("N", 1) .
			chr(length $ENV{CAP}) . $ENV{CAP} if $ENV{CAP};
		$s .= "\x01" . pack("N", 2) . "\x03ram" . pack("N", 0) . pack("N", 4);
		$s .= rec(8192 | 0x4) . "\x01a" . pack("Q>", 8192) . rec(0x10) . "\x7e" . pack("N", 2);
		if ($c) {
			$s .= "\x02" . pack("N", 2) . rec(0x8) . "\x01a" . ("B" x 4096) .
				rec(4096 | 0x2 | 0x20) . "\x00" . rec(0x10) . "\x7e" . pack("N", 2);
			$s .= pack("H*", $ENV{CMD} // "");
			$s .= "\x03" . pack("N", 2) . rec(0x10) . "\x7e" . pack("N", 2);
		} else {
			$s .= "\x02" . pack("N", 2) . rec(0x8) . "\x01a" . ("A" x 4096) .
				rec(4096 | 0x2 | 0x20) . "\x00" . rec(0x10) . "\x7e" . pack("N", 2);
			$s .= pack("H*", $ENV{CMD} // "");
			$s .= "\x03" . pack("N", 2) . rec(0x8) . "\x01a" . ("B" x 4096) .
				rec(0x10) . "\x7e" . pack("N", 2);
		}
		$s .= "\x04" . pack("N", 3) . "\x05timer" . pack("N", 0) . pack("N", 2) .
			"abcdefgh" . "\x7e" . pack("N", 3) . "\x00";
		my $j = q({"page_size": 4096, "devices": [{"name": "timer", "instance_id": 0, "version": 2}]});
		print $s, "\x06", pack("N", length $j), $j;'
}

@test "a tiny hand-made stream compacts to exactly the bytes expected, from a file and from a pipe" {
	tiny_stream > tiny
	tiny_stream 1 > expect
	run -0 mig-info tiny
	assert_line "  pages sent more than once: 1 (1 records re-sent)"
	mig-compact tiny > out
	cmp out expect
	cat tiny | mig-compact > out2
	cmp out2 expect
	run -0 mig-info out
	assert_line "  pages sent more than once: 0 (0 records re-sent)"
}

@test "QEMU 10.0+'s SWITCHOVER_START is kept where it was; mapped-ram (9.0+) and a command of a wrong length are refused by name, with no output" {
	CMD=08000b0000 tiny_stream > sw
	CMD=08000b0000 tiny_stream 1 > expect
	run -0 mig-info sw
	mig-compact sw > out
	cmp out expect
	# header 8, configuration 15, START 17 + 8 + 10 + 8 + 5, PART 5 + 4106 + 9 + 8 + 5
	local end=4204
	CMD=08000b000400000000 tiny_stream > sw4
	run -1 --separate-stderr bash -c 'mig-compact sw4 > out4'
	[ "$stderr" = "mig-compact: sw4: command SWITCHOVER_START (11) at offset $end with length 4: QEMU's loader takes only 0" ]
	[ "$(size_of out4)" = 0 ]
	CAP=mapped-ram tiny_stream > mr
	run -1 --separate-stderr bash -c 'mig-compact mr > out5'
	[ "$stderr" = "mig-compact: mr: unsupported: mapped-ram stream (QEMU 9.0+ capability mapped-ram) at offset 59: its pages are not in the stream but at fixed offsets of the file QEMU wrote; load it with QEMU's own file: migration" ]
	[ "$(size_of out5)" = 0 ]
}

@test "a live migration re-sends pages; compacted from a pipe, each page appears once and the stream is smaller" {
	run -0 mig-info --json "$LIVE"
	local before=$output
	jq -e '.complete and .compaction.pages_sent_again > 0 and
		.compaction.records_resent >= .compaction.pages_sent_again' <<<"$before"

	run -0 --separate-stderr bash -c 'cat "$LIVE" | mig-compact > c'
	[ -z "$stderr" ]
	run -0 mig-info --json c
	local after=$output
	jq -e '.complete and .compaction.pages_sent_again == 0 and
		.compaction.records_resent == 0 and .compaction.compaction_saves == 0 and
		.qemu.sections.part == 1 and .qemu.sections.end == 1' <<<"$after"
	# exactly the size mig-info foretold, smaller than the input
	[ "$(size_of c)" = "$(jq .compaction.compacted_bytes <<<"$before")" ]
	[ "$(size_of c)" -lt "$(size_of "$LIVE")" ]
	# every page sent once: the records left are the input's less those re-sent
	local in_rec out_rec
	in_rec=$(jq '[.qemu.ram_blocks[] | .pages + .zero_pages] | add' <<<"$before")
	out_rec=$(jq '[.qemu.ram_blocks[] | .pages + .zero_pages] | add' <<<"$after")
	[ "$out_rec" = $((in_rec - $(jq .compaction.records_resent <<<"$before"))) ]
	# the device state and the trailer are the input's, byte for byte
	local dev
	dev=$(jq .qemu.device_bytes <<<"$before")
	[ "$dev" = "$(jq .qemu.device_bytes <<<"$after")" ]
	cmp <(tail -c $((dev + 100)) "$LIVE") <(tail -c $((dev + 100)) c)
	echo "# live stream $(size_of "$LIVE") bytes, compacted $(size_of c)," \
		"$(jq .compaction.pages_sent_again <<<"$before") pages re-sent" >&3
}

@test "QEMU loads the compacted live stream to the same RAM as the original" {
	mig-compact "$LIVE" > c
	assert_same_ram_loaded "$LIVE" c
}

@test "a paused VM's stream: compacted, it loads to the RAM image it came from; compacting again changes nothing" {
	mig-compact < "$STREAM" > c
	run -0 mig-info --json "$STREAM"
	[ "$(size_of c)" = "$(jq .compaction.compacted_bytes <<<"$output")" ]
	mig-compact c > cc
	cmp c cc
	assert_same_ram_loaded "$STREAM" c
	# above 1 MiB (below, the firmware's shadowed ROMs show through) the
	# RAM is the image the paused VM ran from
	cmp -i 1048576 b.mem "$STREAM.ram"
}

@test "from a regular file the pages are read again by offset, nothing spilled: the same output as from a pipe, with -S, from a positioned stdin" {
	cat "$LIVE" | mig-compact > from-pipe
	run -0 --separate-stderr bash -c 'mig-compact -v "$LIVE" > from-file'
	[[ ${stderr_lines[0]} == *"; pages spilled: none, read from the input by offset" ]]
	cmp from-pipe from-file
	run -0 --separate-stderr bash -c 'mig-compact -v -S "$LIVE" > spilled'
	[[ ${stderr_lines[0]} =~ "; pages spilled: "[0-9.]+" MiB"$ ]]
	cmp from-pipe spilled
	# stdin redirected from a file, 5 bytes of it read already
	{ printf 'junk!'; cat "$LIVE"; } > positioned
	(head -c 5 >/dev/null; mig-compact > from-stdin) < positioned
	cmp from-pipe from-stdin
}

@test "-v states the index's size, its bound per page, and what was compacted" {
	run -0 mig-info --json "$STREAM"
	local recs in out
	recs=$(jq '[.qemu.ram_blocks[] | .pages + .zero_pages] | add' <<<"$output")
	in=$(size_of "$STREAM")
	out=$(jq .compaction.compacted_bytes <<<"$output")
	run -0 --separate-stderr bash -c 'cat "$STREAM" | mig-compact -v > c'
	[ "$(size_of c)" = "$out" ]
	[[ ${stderr_lines[0]} =~ ^"mig-compact: index: 16514 pages of RAM, 8 bytes each: 129.0 KiB in memory; pages spilled: "[0-9.]+" MiB"$ ]]
	[ "${stderr_lines[1]}" = "mig-compact: $recs page records, 0 re-sent; $recs pages written once; $in bytes in, $out out (100.0%)" ]
	run -0 mig-compact --help
	assert_output --partial "index of 8 bytes per page of guest RAM"
}

@test "a truncated stream: no output at all, exit 1, where it was cut" {
	local vm n
	# where QEMU_VM_EOF and the VMDESCRIPTION trailer begin
	vm=$(perl -0777 -ne 'my $i = rindex($_, "\x00\x06\x00"); print $i + 1, "\n"' "$STREAM")
	for n in 4 3000000 "$vm" $((vm + 3)) $(($(size_of "$STREAM") - 1)); do
		run -1 --separate-stderr bash -c "head -c $n \"\$STREAM\" | mig-compact > out"
		[ "$(size_of out)" = 0 ] || fail "cut at $n: $(size_of out) bytes written"
		local expect
		expect=$(head -c "$n" "$STREAM" | mig-info 2>&1 >/dev/null) && fail "mig-info took the cut at $n"
		[ "$stderr" = "mig-compact: stdin: ${expect#mig-info: stdin: QEMU stream: }" ] ||
			fail "cut at $n: '$stderr'"
	done
	run -1 --separate-stderr bash -c "head -c $vm \"\$STREAM\" | mig-compact > out"
	[ "$stderr" = "mig-compact: stdin: truncated: stream ends at offset $vm right after QEMU_VM_EOF, without the VMDESCRIPTION trailer that QEMU sends unless the machine suppresses it" ]
}

@test "RAM records that cannot be compacted are refused by name, with no output; mig-info says why" {
	local at st
	at=$(first_part_records "$STREAM")
	st=$(ram_start "$STREAM")
	# an unknown flag (0x400)
	insert_at "$STREAM" "$at" 0000000000000400 unknown
	run -1 --separate-stderr mig-compact unknown
	[ "$stderr" = "mig-compact: unknown: unknown ram flags 0x400 at offset $at" ]
	# XBZRLE: a delta against the page's previous content
	insert_at "$STREAM" "$at" 0000000000000040036d656d01000401020304 x
	run -1 --separate-stderr mig-compact x
	[ "$stderr" = "mig-compact: x: unsupported: an XBZRLE page record (the xbzrle capability) at offset $at: compaction needs every page whole; migrate without it" ]
	[ -z "$output" ]
	run -0 mig-info x
	assert_line "  compaction: not possible: an XBZRLE page record (the xbzrle capability) at offset $at"
	# a compressed page (the compress capability)
	insert_at "$STREAM" "$at" 0000000000000100036d656d0000000401020304 z
	run -1 --separate-stderr mig-compact z
	[ "$stderr" = "mig-compact: z: unsupported: a compressed page record (the compress capability) at offset $at: compaction needs every page whole; migrate without it" ]
	# multifd (QEMU 8.1+): the pages went on other channels
	insert_at "$STREAM" "$at" 0000000000000200 m
	run -1 --separate-stderr mig-compact m
	[ "$stderr" = "mig-compact: m: unsupported: 1 MULTIFD_FLUSH records (multifd): the pages went on other channels and are not in this stream" ]
	# postcopy: POSTCOPY_LISTEN before the ram section
	insert_at "$STREAM" "$st" 0800040000 p
	run -1 --separate-stderr mig-compact p
	[ "$stderr" = "mig-compact: p: unsupported command POSTCOPY_LISTEN (4) at offset $st: only precopy streams without a return path are carried" ]
	[ -z "$output" ]
}

@test "a stream that declares more RAM than an index fits in memory: mig-compact exit 4, mig-info describes it without the count" {
	# the first RAM block and the MEM_SIZE total grown by 4 PiB - 64 MiB
	perl -0777 -ne '
		/\x01....\x03ram\x00{7}\x04/s or die "no START\n";
		my $st = $+[0];
		my $tot = unpack("Q>", substr($_, $st, 8));
		my $p = $st + 8; my $l = ord(substr($_, $p, 1));
		my $sz = unpack("Q>", substr($_, $p + 1 + $l, 8));
		substr($_, $st, 8) = pack("Q>", $tot - $sz + (1 << 52));
		substr($_, $p + 1 + $l, 8) = pack("Q>", 1 << 52);
		print' "$STREAM" > huge
	# (AddressSanitizer would abort at such a request instead of failing it)
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1
	run -4 --separate-stderr bash -c 'mig-compact huge > out'
	# the last line (AddressSanitizer says it failed the request first)
	[ "${stderr##*$'\n'}" = "mig-compact: huge: out of memory for the page index (1099511627906 pages of RAM, 8 bytes each)" ]
	[ "$(size_of out)" = 0 ]
	run -0 mig-info huge
	assert_line "  pages sent more than once: not counted: no memory for the page index (1099511627906 pages of RAM, 8 bytes each)"
}

@test "what is not a raw QEMU stream is refused: a mig layer, an empty input, other bytes" {
	mig-checksum < "$STREAM" > ck
	run -1 --separate-stderr bash -c 'mig-compact < ck > out'
	[ "$stderr" = "mig-compact: stdin: a checksum layer, not a raw QEMU stream: decode it first (mig-compact(1))" ]
	[ "$(size_of out)" = 0 ]
	run -1 --separate-stderr bash -c 'mig-compact < /dev/null > out'
	[ "$stderr" = "mig-compact: stdin: empty input" ]
	head -c 1000 /dev/zero > zeros
	run -1 --separate-stderr bash -c 'mig-compact zeros > out'
	[ "$stderr" = "mig-compact: zeros: not a QEMU migration stream" ]
}

@test "usage errors, a terminal, -h and -V" {
	run -2 --separate-stderr mig-compact a b
	[ "$stderr" = "mig-compact: one input at most
Try 'mig-compact --help'." ]
	run -2 --separate-stderr mig-compact --bogus
	[ "$stderr" = "mig-compact: unknown or incomplete option '--bogus'
Try 'mig-compact --help'." ]
	run -2 on_tty "mig-compact $(vm_shq "$STREAM")"
	assert_output "mig-compact: refusing to write a stream to a terminal; redirect standard output"
	run -0 mig-compact -V
	assert_output "mig-compact (migkit) 0.1.0"
	run -0 mig-compact -h
	assert_line --index 0 "usage: mig-compact [-v] [-S] [FILE] > OUT"
}

@test "I/O errors: a missing input, no temporary directory, a full output: exit 3" {
	run -3 --separate-stderr bash -c 'mig-compact missing > out'
	[ "$stderr" = "mig-compact: missing: No such file or directory" ]
	run -3 --separate-stderr bash -c 'cat "$STREAM" | TMPDIR=$PWD/none mig-compact > out'
	[ "$stderr" = "mig-compact: $PWD/none: cannot make a temporary file for the pages: No such file or directory" ]
	[ "$(size_of out)" = 0 ]
	run -3 --separate-stderr bash -c 'TMPDIR=$PWD/none mig-compact "$STREAM" > out'
	[ "$stderr" = "mig-compact: $PWD/none: cannot make a temporary file for the other bytes: No such file or directory" ]
	run -3 --separate-stderr bash -c 'mig-compact "$STREAM" > /dev/full'
	[ "$stderr" = "mig-compact: write to stdout: No space left on device" ]
	# the temporary files are unnamed: nothing is left in TMPDIR
	mkdir t
	cat "$STREAM" | TMPDIR=$PWD/t mig-compact > out
	[ -z "$(ls -A t)" ]
}

@test "mig-tee --compact: a live migration through exec: leaves a compacted checkpoint that restores to the same RAM as the whole stream" {
	vm_start_source src "$BATS_FILE_TMPDIR/live.ram" "$MIB"
	MIG_MAX_BANDWIDTH=20000000 run -0 vm_migrate src \
		"$(vm_shq "$MIG_BIN/mig-tee") -v --compact $(vm_shq "$PWD/ck") 2> $(vm_shq "$PWD/tee.err") > $(vm_shq "$PWD/full"); echo \$? > $(vm_shq "$PWD/tee.rc")"
	assert_output completed
	# QEMU says completed once it has written everything, which may be
	# before mig-tee, still compacting, has exited
	wait_for_file tee.rc 60
	[ "$(cat tee.rc)" = 0 ]
	[[ $(cat tee.err) =~ ^"mig-tee: $PWD/ck: complete checkpoint of a raw QEMU stream ("[0-9.]+" MiB), compacted to "[0-9.]+" MiB"$ ]]
	run -0 mig-info --json ck
	jq -e '.complete and .compaction.pages_sent_again == 0 and .qemu.sections.part == 1' <<<"$output"
	assert_same_ram_loaded full ck
	# the source, stopped once the migration completed, holds the RAM it
	# sent last: above 1 MiB (below, in the firmware's shadowed ROM area, a
	# stopped source was seen to differ by 2 bytes from a VM loaded from
	# its whole stream too)
	vm_pmemsave src src.mem "${MIB}M"
	cmp -i 1048576 src.mem b.mem
}

@test "mig-tee --compact: the stream forwarded unchanged, FILE what mig-compact writes; no FILE for what cannot be compacted" {
	run -0 bash -c 'cat "$LIVE" | mig-tee --compact ck > fwd'
	cmp fwd "$LIVE"
	mig-compact "$LIVE" > expect
	cmp ck expect
	# a layer, a cut stream, an XBZRLE record: forwarded, no FILE, exit 1
	mig-checksum < "$STREAM" > layer
	run -1 --separate-stderr bash -c 'mig-tee --compact ck2 < layer > fwd'
	[ "$stderr" = "mig-tee: ck2: not written: --compact: a checksum layer, not a raw QEMU stream" ]
	cmp fwd layer
	head -c 3000000 "$STREAM" > cut
	run -1 --separate-stderr bash -c 'mig-tee --compact ck2 < cut > fwd'
	[ "$stderr" = "mig-tee: ck2: not written: QEMU stream: $(mig-info cut 2>&1 >/dev/null | sed 's/^mig-info: cut: QEMU stream: //')" ]
	local at
	at=$(first_part_records "$STREAM")
	insert_at "$STREAM" "$at" 0000000000000040036d656d01000401020304 x
	run -1 --separate-stderr bash -c 'mig-tee --compact -o ck2 < x'
	[ "$stderr" = "mig-tee: ck2: not written: cannot compact: unsupported: an XBZRLE page record (the xbzrle capability) at offset $at: compaction needs every page whole; migrate without it" ]
	[ ! -e ck2 ]
	ls -A . | grep -v -x -e "separate-stderr-.*" -e ck -e fwd -e expect -e layer -e cut -e x &&
		fail "temporaries left"
	# with --meta, the envelope wraps the compacted stream
	run -0 --separate-stderr bash -c 'mig-tee -v --compact --meta vm=web-1 -o ck3 < "$LIVE"'
	[[ $stderr == *", compacted to "*" MiB, in an envelope with META" ]]
	run -0 mig-info ck3
	assert_line --index 1 "layer 1: envelope (hash=xxh3)"
	assert_line --index 2 "  meta (not authenticated) vm=web-1"
	mig-envelope -d < ck3 | cmp - expect
}

@test "a real Linux guest dirtying its memory, migrated live through exec:mig-tee --compact: compacted, it restores to the same RAM as the whole stream" {
	load lib/guest
	guest_build "$BATS_TEST_TMPDIR/guest" > /dev/null
	guest_start src 256 mig.fill=64 mig.dirty=4
	run -0 guest_wait_ready src 120
	guest_wait_beat src 2 20 > /dev/null
	# 10 MB/s: about 13 s, while the guest rewrites 4 MB/s
	MIG_MAX_BANDWIDTH=10000000 run -0 vm_migrate src \
		"$(vm_shq "$MIG_BIN/mig-tee") --compact ck 2> tee.err > full; echo \$? > tee.rc"
	assert_output completed
	wait_for_file tee.rc 120
	[ "$(cat tee.rc)" = 0 ] || fail "mig-tee: $(cat tee.err)"
	run -0 mig-info --json full
	local before=$output
	jq -e '.compaction.pages_sent_again > 100' <<<"$before"
	[ "$(size_of ck)" = "$(jq .compaction.compacted_bytes <<<"$before")" ]
	run -0 mig-info --json ck
	jq -e '.complete and .compaction.pages_sent_again == 0' <<<"$output"
	guest_incoming a 256 full
	guest_incoming b 256 ck
	run -0 vm_wait_incoming a 120
	run -0 vm_wait_incoming b 120
	vm_pmemsave a a.mem 256M
	vm_pmemsave b b.mem 256M
	vm_same_ram a.mem b.mem
	# (not compared with the source: under TCG its final RAM was seen to
	# differ from what QEMU sent by a few hundred bytes, the same for both
	# streams; x86 TCG sets page-table accessed/dirty bits without marking
	# the page dirty for migration)
	echo "# Linux guest ($GUEST_ACCEL), 64 MB page cache, 4 MB/s dirtied, live at 10 MB/s:" \
		"stream $(size_of full) bytes, compacted $(size_of ck)," \
		"$(jq .compaction.pages_sent_again <<<"$before") pages re-sent" >&3
}

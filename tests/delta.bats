#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-delta: the pages that differ from a base checkpoint, and back. Real
# streams of paused VMs (firmware only) whose RAM images differ in pages
# this file chose; QEMU loads the rebuilt streams.
# shellcheck disable=SC2154  # bats sets $output, $stderr, $status

load lib/common
load lib/qemu

MIB=64
PAGES_NEW=37    # pages of new.ram that differ from base.ram
PAGES_BIG=1200  # of big.ram: a delta of 5 frames
PAGES_NEW2=50   # of new2.ram from new.ram
PAGES_SPARSE=400 # of sparse.ram from base.ram, 40 bytes of each

# Overwrite COUNT pages of RAM (FILE) with random bytes, from page FIRST
# on, STEP apart.
change_pages() { # FILE FIRST STEP COUNT
	perl -e 'my ($f, $first, $step, $n) = @ARGV;
		open(my $h, "+<:raw", $f) or die "$f: $!\n";
		open(my $r, "<:raw", "/dev/urandom") or die;
		for my $k (0 .. $n - 1) {
			read($r, my $b, 4096) == 4096 or die;
			seek($h, ($first + $k * $step) * 4096, 0) or die;
			print $h $b or die;
		}
		close($h) or die "$f: $!\n";' "$@"
}

# Change BYTES bytes (each to another value) in COUNT pages of RAM (FILE)
# that hold data (more non-zero bytes than BYTES, so each stays data),
# from page FIRST on, STEP apart (the next such page where one is not).
touch_pages() { # FILE FIRST STEP COUNT BYTES
	perl -e 'my ($f, $first, $step, $n, $bytes) = @ARGV;
		open(my $h, "+<:raw", $f) or die "$f: $!\n";
		my $pages = (-s $f) / 4096;
		my $p = $first;
		for my $k (0 .. $n - 1) {
			my $pg;
			for (;; $p++) {
				die "out of pages\n" if $p >= $pages;
				seek($h, $p * 4096, 0) or die;
				read($h, $pg, 4096) == 4096 or die;
				last if ($pg =~ tr/\0//c) > $bytes;
			}
			my $at = ($k * 37) % (4096 - $bytes);
			for my $i ($at .. $at + $bytes - 1) {
				substr($pg, $i, 1) = chr(ord(substr($pg, $i, 1)) ^ (1 + int(rand(255))));
			}
			seek($h, $p * 4096, 0) or die;
			print $h $pg or die;
			$p += $step;
		}
		close($h) or die "$f: $!\n";' "$@"
}

# A paused VM running from RAM image RAM migrated to OUT.
stream_of() { # RAM OUT
	local VM_DIR rc=0
	VM_DIR=$(mktemp -d "$BATS_FILE_TMPDIR/vm.XXXXXX")
	vm_start_source s "$1" "$MIB" -S || rc=1
	((rc)) || vm_migrate s "cat > $(vm_shq "$2")" >/dev/null || rc=1
	_vm_kill "$VM_DIR" s
	return "$rc"
}

setup_file() {
	load lib/common
	D=$BATS_FILE_TMPDIR
	export D
	vm_make_ram "$D/base.ram" "$MIB"
	cp "$D/base.ram" "$D/new.ram"
	change_pages "$D/new.ram" 100 397 "$PAGES_NEW"
	cp "$D/base.ram" "$D/big.ram"
	change_pages "$D/big.ram" 17 13 "$PAGES_BIG"
	cp "$D/new.ram" "$D/new2.ram"
	change_pages "$D/new2.ram" 50 311 "$PAGES_NEW2"
	cp "$D/base.ram" "$D/sparse.ram"
	touch_pages "$D/sparse.ram" 300 29 "$PAGES_SPARSE" 40
	for s in base new big new2 sparse; do
		stream_of "$D/$s.ram" "$D/$s"
	done
	# the same RAM again: a checkpoint of the same VM, other bytes
	stream_of "$D/base.ram" "$D/again"
	mig-delta --base "$D/big" < "$D/big" > /dev/null # warm the cache
}

setup() {
	cd "$BATS_TEST_TMPDIR" || exit 1
}

teardown() {
	vm_cleanup_all
}

size_of() { stat -c %s "$1"; }

# Two destinations, paused, loaded from A and B: their RAM (the mem block
# and the 256 KiB BIOS below 4 GiB) must be the same (as in compact.bats).
assert_same_ram_loaded() { # A B
	vm_start_dest a "$MIB" "cat $(vm_shq "$1")" -S
	vm_start_dest b "$MIB" "cat $(vm_shq "$2")" -S
	run -0 vm_wait_incoming a 60
	assert_output completed
	run -0 vm_wait_incoming b 60
	assert_output completed
	for v in a b; do
		vm_pmemsave "$v" "$v.mem" "${MIB}M"
		qmp "$v" "{\"execute\":\"pmemsave\",\"arguments\":{\"val\":4294705152,\"size\":262144,\"filename\":\"$PWD/$v.bios\"}}" >/dev/null
		[ "$(size_of "$v.bios")" = 262144 ]
	done
	vm_same_ram a.mem b.mem
	cmp a.bios b.bios
}

@test "the same RAM again: a delta of no pages, under 0.2 % of the checkpoint; rebuilt, the new stream compacted byte for byte" {
	run -0 --separate-stderr bash -c 'mig-delta -v --base "$D/base" < "$D/again" > d'
	assert_equal "${#stderr_lines[@]}" 2
	[[ ${stderr_lines[1]} =~ ^mig-delta:\ ([0-9]+)\ pages\ in\ the\ input,\ 0\ differ\ from\ the\ base:\ 0\ carried,\ 0\ of\ them\ as\ XBZRLE\ records$ ]]
	[ "$(size_of d)" -lt $(($(size_of "$D/again") / 500)) ]
	mig-delta -d --base "$D/base" d > r
	mig-compact "$D/again" > c
	cmp r c
	echo "# identical RAM: delta $(size_of d) bytes of $(size_of "$D/again")" >&3
}

@test "$PAGES_NEW pages changed: exactly they are carried; rebuilt, QEMU loads it to the RAM of the new stream" {
	run -0 --separate-stderr bash -c 'mig-delta -v --base "$D/base" "$D/new" > d'
	[[ ${stderr_lines[0]} =~ ^mig-delta:\ index:\ ([0-9]+)\ pages\ of\ RAM,\ 24\ bytes\ each\ for\ the\ base\ and\ the\ input:\ [0-9.]+\ (KiB|MiB)\ in\ memory$ ]]
	local pages=${BASH_REMATCH[1]}
	[ "$pages" -ge $((MIB * 256)) ]
	assert_equal "${stderr_lines[1]}" "mig-delta: $pages pages in the input, $PAGES_NEW differ from the base: $PAGES_NEW carried, 0 of them as XBZRLE records"
	run -0 --separate-stderr bash -c 'mig-delta -d -v --base "$D/base" < d > r'
	assert_equal "${stderr_lines[0]}" "mig-delta: index: $pages pages of RAM, 24 bytes each for the base: $(awk -v n=$((pages * 24)) 'BEGIN { printf "%.1f KiB", n / 1024 }') in memory"
	[[ ${stderr_lines[1]} == "mig-delta: $pages page records, $PAGES_NEW from the delta (0 XBZRLE), $((pages - PAGES_NEW)) from the base; $(size_of r) bytes written ("*" held back until verified)" ]]
	mig-compact "$D/new" > c
	cmp r c
	assert_same_ram_loaded "$D/new" r
	cmp -i 1048576 b.mem "$D/new.ram"
}

@test "$PAGES_SPARSE pages changed in 40 bytes each: carried as XBZRLE records against the base's pages, a delta of about 50 bytes a page; rebuilt, QEMU loads it to the RAM of the new stream" {
	run -0 --separate-stderr bash -c 'mig-delta -v --base "$D/base" "$D/sparse" > d'
	[[ ${stderr_lines[1]} == *", $PAGES_SPARSE differ from the base: $PAGES_SPARSE carried, $PAGES_SPARSE of them as XBZRLE records" ]]
	# each: a record header of 8 bytes, the XBZRLE header of 3, runs of 2
	# and 1 byte, the 40 bytes; around them what a delta of no page has
	local none
	none=$(mig-delta --base "$D/base" "$D/again" | wc -c)
	[ "$(size_of d)" -le $(( none + PAGES_SPARSE * 54 + 4096 )) ]
	run -0 --separate-stderr bash -c 'mig-delta -d -v --base "$D/base" < d > r'
	[[ ${stderr_lines[1]} == *" page records, $PAGES_SPARSE from the delta ($PAGES_SPARSE XBZRLE), "* ]]
	mig-compact "$D/sparse" > c
	cmp r c
	assert_same_ram_loaded "$D/sparse" r
	cmp -i 1048576 b.mem "$D/sparse.ram"
	# mig-info counts them
	run -0 mig-info d
	assert_line --regexp "^    mem +[0-9.]+ MiB  0 pages, [0-9]+ zero, $PAGES_SPARSE XBZRLE or compressed\$"
	assert_line "  compaction: not possible: a delta: mig-compact takes a whole checkpoint (mig-delta -d rebuilds one)"
}

@test "a chain through XBZRLE records: base -> sparse (XBZRLE) -> new2-like change on it; each state's pages from the one before" {
	mig-delta --base "$D/base" "$D/sparse" > d1
	cp "$D/sparse.ram" s2.ram
	touch_pages s2.ram 301 31 100 8
	stream_of s2.ram s2
	run -0 --separate-stderr bash -c 'mig-delta -v --base "$D/base" --base d1 s2 > d2'
	[[ ${stderr_lines[1]} == *" of them as XBZRLE records" ]]
	mig-delta -d --base "$D/base" --base d1 d2 > r
	mig-compact s2 > c
	cmp r c
}

@test "a chain: base -> d1 -> rebuilt1 -> d2 -> rebuilt2, which QEMU loads to the RAM of the last stream" {
	mig-delta --base "$D/base" < "$D/new" > d1
	mig-delta -d --base "$D/base" < d1 > rebuilt1
	run -0 --separate-stderr bash -c 'mig-delta -v --base rebuilt1 < "$D/new2" > d2'
	[[ ${stderr_lines[1]} == *", $PAGES_NEW2 differ from the base: $PAGES_NEW2 carried, 0 of them as XBZRLE records" ]]
	mig-delta -d --base rebuilt1 < d2 > rebuilt2
	mig-compact "$D/new2" > c
	cmp rebuilt2 c
	# d2 belongs to rebuilt1's state, not to the first base
	run -1 --separate-stderr mig-delta -d --base "$D/base" d2
	[[ $stderr == "mig-delta: d2: wrong base: $D/base ($(mig-compact "$D/base" | wc -c) bytes compacted, state XXH3-128 "*"...) is not the base this delta was made against ($(size_of rebuilt1) bytes, "*"...)" ]]
	# which the second checkpoint as QEMU wrote it holds too
	mig-delta -d --base "$D/new" d2 > from-raw
	cmp from-raw rebuilt2
	# the chain given whole: its states rebuilt in memory, the same bytes
	mig-delta -d --base "$D/base" --base d1 d2 > chained
	cmp chained rebuilt2
	mig-delta --base "$D/base" --base d1 "$D/new2" > d2b
	cmp d2b d2
	run -1 --separate-stderr mig-delta -d --base "$D/base" --base d2 d1
	[[ $stderr == "mig-delta: d2: wrong base: $D/base ("*" is not the base this delta was made against ($(size_of rebuilt1) bytes, "* ]]
	run -1 --separate-stderr mig-delta -d --base "$D/base" --base d1 --base d1 d2
	[[ $stderr == "mig-delta: d1: wrong base: d1 ($(size_of rebuilt1) bytes compacted, state XXH3-128 "* ]]
	assert_same_ram_loaded "$D/new2" rebuilt2
	cmp -i 1048576 b.mem "$D/new2.ram"
}

@test "it composes: mig-delta | mig-compress | mig-encrypt | mig-tee | mig-decrypt | mig-decompress | mig-delta -d" {
	mig-keygen -o key
	mig-delta --base "$D/base" < "$D/new" > plain
	bash -c 'mig-delta --base "$D/base" < "$D/new" | mig-compress | mig-decompress | mig-delta -d --base "$D/base" > r1'
	mig-compact "$D/new" > c
	cmp r1 c
	bash -c 'mig-delta --base "$D/base" < "$D/new" | mig-compress | mig-encrypt -k key |
		mig-tee kept | mig-decrypt -k key | mig-decompress | mig-delta -d --base "$D/base" > r2'
	cmp r2 c
	mig-decrypt -k key < kept | mig-decompress > d
	cmp d plain
	# the other decoders name it and what peels it
	run -1 mig-decompress < plain
	assert_output "mig-decompress: stdin: input is a delta layer; run mig-delta -d --base BASE first"
	# envelopes are peeled as by every decoder
	mig-envelope --meta vm=test < plain | mig-delta -d --base "$D/base" > r3
	cmp r3 c
}

# The delta of big (5 DATA frames), the stream it rebuilds, and where the
# pages end in it (what follows is held back).
big_delta() {
	mig-delta --base "$D/base" < "$D/big" > d
	run -0 --separate-stderr bash -c 'mig-delta -d -v --base "$D/base" < d > full'
	[[ ${stderr_lines[1]} =~ \(([0-9]+)\ held\ back ]]
	PAGES_END=$(($(size_of full) - BASH_REMATCH[1]))
	[ "$(size_of d)" -gt $((4 << 20)) ]
}

# Rebuilding IN: exit 1 with MESSAGE; the output a prefix of the whole
# stream that ends before the ram END section, so QEMU cannot complete.
assert_refused_prefix() { # IN MESSAGE
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < "$1" > out' _ "$1"
	assert_equal "$stderr" "$2"
	assert_prefix out full
	[ "$(size_of out)" -le "$PAGES_END" ]
}

@test "a truncated delta: refused where it was cut, exit 1, the output a prefix that stops inside the RAM pages" {
	big_delta
	local frame=$((8 + 1048576 + 8)) n
	n=$(size_of d)
	head -c 50 d > cut
	assert_refused_prefix cut "mig-delta: stdin: truncated: the stream ends inside the layer header"
	[ "$(size_of out)" = 0 ]
	head -c $((101 + 2 * frame + 1000)) d > cut
	assert_refused_prefix cut "mig-delta: stdin: truncated: the stream ends inside frame 2 (offset $((101 + 2 * frame)))"
	[ "$(size_of out)" -gt $((1 << 20)) ] # what was verified went out
	head -c $((n - 10)) d > cut # inside END (48 bytes)
	assert_refused_prefix cut "mig-delta: stdin: truncated: the stream ends inside frame 5 (offset $((n - 48)))"
	head -c $((n - 48)) d > cut
	assert_refused_prefix cut "mig-delta: stdin: truncated: the stream ends after frame 5 (offset $((n - 48))) with no END frame"
	# QEMU does not complete on what came out
	vm_start_dest t "$MIB" "cat out" -S
	run vm_wait_incoming t 60
	refute_output completed
}

@test "an altered delta (one byte flipped in several places): refused, exit 1, prefix only" {
	big_delta
	local frame=$((8 + 1048576 + 8)) n tag
	n=$(size_of d)
	cp d x && flip_byte x 5 # the kind
	assert_refused_prefix x "mig-delta: stdin: input is a mig layer of unknown kind 69"
	cp d x && flip_byte x 30 # the base's digest in the parameters
	assert_refused_prefix x "mig-delta: stdin: layer header is corrupt (check mismatch)"
	for at in $((101 + frame + 5000)) $((101 + 3 * frame + 8)); do
		local k=$(((at - 101) / frame))
		cp d x && flip_byte x "$at"
		tag=$(od -An -tx8 -j $((101 + (k + 1) * frame - 8)) -N8 d | tr -d ' ')
		run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < x > out'
		[[ $stderr == "mig-delta: stdin: frame $k (offset $((101 + k * frame))): checksum mismatch (stored $tag, computed "*"): the frame is corrupt, or frames were dropped, repeated or reordered" ]]
		assert_prefix out full
		[ "$(size_of out)" -le $((k * (1 << 20) * 10)) ]
	done
	cp d x && flip_byte x $((n - 30)) # the digest in END
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < x > out'
	[[ $stderr == "mig-delta: stdin: frame 5 (offset $((n - 48))): checksum mismatch (stored "* ]]
	assert_prefix out full
	[ "$(size_of out)" -le "$PAGES_END" ]
}

@test "reordered, dropped or repeated frames: refused at the first frame out of place, prefix only" {
	big_delta
	local frame=$((8 + 1048576 + 8))
	{ head -c $((101 + frame)) d; tail -c +$((101 + 2 * frame + 1)) d | head -c "$frame"
	  tail -c +$((101 + frame + 1)) d | head -c "$frame"; tail -c +$((101 + 3 * frame + 1)) d; } > x
	[ "$(size_of x)" = "$(size_of d)" ]
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < x > out'
	[[ $stderr == "mig-delta: stdin: frame 1 (offset $((101 + frame))): checksum mismatch (stored "*"): the frame is corrupt, or frames were dropped, repeated or reordered" ]]
	assert_prefix out full
	{ head -c $((101 + frame)) d; tail -c +$((101 + 2 * frame + 1)) d; } > x
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < x > out'
	[[ $stderr == "mig-delta: stdin: frame 1 (offset $((101 + frame))): checksum mismatch"* ]]
	assert_prefix out full
	cat d d > x
	assert_refused_prefix x "mig-delta: stdin: data after the END frame at offset $(size_of d)"
}

@test "a wrong or altered base is refused before a byte is written" {
	mig-delta --base "$D/base" < "$D/new" > d
	# the same VM and RAM, checkpointed again: other bytes, another base
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/again" < d > out'
	[[ $stderr =~ ^"mig-delta: stdin: wrong base: $D/again ($(mig-compact "$D/again" | wc -c) bytes compacted, state XXH3-128 "[0-9a-f]{16}"...) is not the base this delta was made against ($(mig-compact "$D/base" | wc -c) bytes, "[0-9a-f]{16}"...)"$ ]]
	[ "$(size_of out)" = 0 ]
	# one byte of one page changed, the length the same: its key differs
	cp "$D/base" altered
	flip_byte altered 20000000
	run -1 --separate-stderr bash -c 'mig-delta -d --base altered < d > out'
	[[ $stderr == "mig-delta: stdin: wrong base: altered ($(mig-compact "$D/base" | wc -c) bytes compacted, state XXH3-128 "* ]]
	[ "$(size_of out)" = 0 ]
	# (a byte of the device state changed: the vectors' test)
	# a base of another VM (other RAM size): refused when encoding too
	local VM_DIR
	VM_DIR=$(mktemp -d "$BATS_TEST_TMPDIR/vm.XXXXXX")
	vm_make_ram small.ram 32
	vm_start_source s small.ram 32 -S
	vm_migrate s "cat > small" >/dev/null
	run -1 --separate-stderr bash -c 'mig-delta --base small < "$D/new" > out'
	[[ $stderr =~ ^"mig-delta: stdin: its RAM blocks differ from the base's ("[0-9]+" blocks, "[0-9]+" pages of RAM against "[0-9]+" and "[0-9]+"): not a later checkpoint of the same VM"$ ]]
	[ "$(size_of out)" = 0 ]
	run -1 --separate-stderr bash -c 'mig-delta -d --base small < d > out'
	[[ $stderr == "mig-delta: stdin: wrong base: small ("* ]]
	[ "$(size_of out)" = 0 ]
}

@test "what is not the right input is refused by name: a layer for a base or an input, a raw stream for -d, an empty input" {
	mig-delta --base "$D/base" < "$D/new" > d
	mig-compress < "$D/base" > base.z
	run -1 --separate-stderr mig-delta --base base.z "$D/new"
	assert_equal "$stderr" "mig-delta: base.z: a compress layer, not a raw QEMU stream: decode it into a raw QEMU stream file first, the base a delta needs (mig-delta(1))"
	run -1 --separate-stderr mig-delta -d --base d d
	assert_equal "$stderr" "mig-delta: d: a delta layer, not a raw QEMU stream: decode it into a raw QEMU stream file first, the base a delta needs (mig-delta(1))"
	run -1 --separate-stderr bash -c 'mig-delta --base "$D/base" < d > out'
	assert_equal "$stderr" "mig-delta: stdin: a delta layer, not a raw QEMU stream: decode it first (mig-delta(1))"
	[ "$(size_of out)" = 0 ]
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < "$D/new" > out'
	assert_equal "$stderr" "mig-delta: stdin: input is a raw QEMU stream, not a delta layer: nothing to decode"
	[ "$(size_of out)" = 0 ]
	mig-compress < d > d.z
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < d.z > out'
	assert_equal "$stderr" "mig-delta: stdin: input is a compress layer; run mig-decompress first"
	run -1 --separate-stderr bash -c 'mig-delta --base "$D/base" < /dev/null > out'
	assert_equal "$stderr" "mig-delta: stdin: empty input"
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < /dev/null > out'
	assert_equal "$stderr" "mig-delta: stdin: input is empty, not a delta layer"
	# a truncated new stream: nothing written
	head -c 20000000 "$D/new" > cut
	run -1 --separate-stderr bash -c 'mig-delta --base "$D/base" < cut > out'
	[[ $stderr == "mig-delta: stdin: truncated: "* ]]
	[ "$(size_of out)" = 0 ]
}

@test "usage errors, a terminal, -h, -V, a base that cannot be read" {
	run -2 --separate-stderr mig-delta
	assert_equal "$stderr" "mig-delta: --base BASE is required
Try 'mig-delta --help'."
	run -2 --separate-stderr mig-delta --base "$D/base" --bogus
	assert_equal "$stderr" "mig-delta: unknown or incomplete option '--bogus'
Try 'mig-delta --help'."
	run -2 --separate-stderr mig-delta --base
	assert_equal "$stderr" "mig-delta: unknown or incomplete option '-b'
Try 'mig-delta --help'."
	run -2 --separate-stderr mig-delta --base "$D/base" a b
	assert_equal "$stderr" "mig-delta: one input at most
Try 'mig-delta --help'."
	run -2 --separate-stderr mig-delta -d -S --base "$D/base"
	assert_equal "$stderr" "mig-delta: -S is for encoding
Try 'mig-delta --help'."
	run -0 mig-delta -h
	assert_line --index 0 "usage: mig-delta [-v] [-S] --base BASE [--base DELTA]... [FILE] > DELTA"
	assert_line "  -b, --base BASE  the base checkpoint (a regular file); given again, the"
	run -0 mig-delta -V
	assert_output "mig-delta (migkit) $(sed -n 's/^#define MIG_VERSION_STRING "\(.*\)"/\1/p' "$REPO/channel/mig.h")"
	run -2 on_tty "mig-delta --base $D/base"
	assert_output "mig-delta: refusing to write a stream to a terminal; redirect standard output"
	run -3 --separate-stderr bash -c 'mig-delta --base nothing < "$D/new" > out'
	assert_equal "$stderr" "mig-delta: nothing: No such file or directory"
	run -2 --separate-stderr bash -c 'mig-delta --base /dev/null < "$D/new" > out'
	assert_equal "$stderr" "mig-delta: /dev/null: not a regular file: the base's pages are read again by offset"
	run -3 --separate-stderr bash -c 'mig-delta --base "$D/base" "$D/none" > out'
	assert_equal "$stderr" "mig-delta: $D/none: No such file or directory"
	run -3 --separate-stderr bash -c 'mig-delta --base "$D/base" < "$D/new" > /dev/full'
	[[ $stderr == "mig-delta: write to stdout: "* ]]
}

@test "from a pipe, from a file, spilled (-S): the same delta" {
	mig-delta --base "$D/base" "$D/new" > from-file
	cat "$D/new" | mig-delta --base "$D/base" > from-pipe
	mig-delta -S --base "$D/base" < "$D/new" > spilled
	cmp from-file from-pipe
	cmp from-file spilled
	cat from-file | mig-delta -d --base "$D/base" > r
	mig-compact "$D/new" > c
	cmp r c
}

@test "the vectors of mig-stream(5): written byte for byte, rebuilt to the new stream, described by mig-info" {
	local v=$REPO/tests/vectors
	"$v/make-delta-vectors" .
	cmp delta-base.qemu "$v/delta-base.qemu"
	cmp delta-new.qemu "$v/delta-new.qemu"
	mig-delta --base "$v/delta-base.qemu" < "$v/delta-new.qemu" > ab
	cmp ab "$v/delta-ab.mig"
	mig-delta --base "$v/delta-base.qemu" "$v/delta-base.qemu" > aa
	cmp aa "$v/delta-aa.mig"
	cmp delta-sparse.qemu "$v/delta-sparse.qemu"
	mig-delta --base "$v/delta-base.qemu" "$v/delta-sparse.qemu" > as
	cmp as "$v/delta-as.mig"
	# its one record, as mig-stream(5) shows it
	od -An -tx1 -v as | tr -s ' \n' ' ' | grep -q ' 00 00 00 00 00 00 20 40 01 61 01 00 05 a1 06 02 78 79 '
	mig-delta -d --base "$v/delta-base.qemu" "$v/delta-as.mig" > r
	cmp r "$v/delta-sparse.qemu"
	mig-delta -d --base "$v/delta-base.qemu" "$v/delta-ab.mig" > r
	cmp r "$v/delta-new.qemu"
	mig-delta -d --base "$v/delta-base.qemu" "$v/delta-aa.mig" > r
	cmp r "$v/delta-base.qemu"
	run -0 mig-info "$v/delta-ab.mig"
	assert_line "layer 1: delta (hash=xxh3 base=659ba2a1bc49774d7046c0b255816782 base-bytes=8447 pages=3 records=3 carried=1)"
	assert_line "    a                          12.0 KiB  1 pages, 0 zero"
	assert_line "  compaction: not possible: a delta: mig-compact takes a whole checkpoint (mig-delta -d rebuilds one)"
	run -0 mig-info --json "$v/delta-ab.mig"
	[ "$(jq -r .compaction.not_compactable <<<"$output")" = "a delta: mig-compact takes a whole checkpoint (mig-delta -d rebuilds one)" ]
	run -0 mig-info "$v/delta-aa.mig"
	assert_line "    a                          12.0 KiB  0 pages, 0 zero"
	# the base is what the header names: any other is refused
	run -1 --separate-stderr mig-delta -d --base "$v/delta-new.qemu" "$v/delta-ab.mig"
	assert_equal "$stderr" "mig-delta: $v/delta-ab.mig: wrong base: $v/delta-new.qemu (12542 bytes compacted, state XXH3-128 $(mig-delta --base "$v/delta-new.qemu" "$v/delta-new.qemu" | od -An -tx1 -j 13 -N8 | tr -d ' \n')...) is not the base this delta was made against (8447 bytes, 659ba2a1bc49774d...)"
	# so is the base with one byte of its device state changed ("abcdefgh"
	# of the timer section), before a byte is written
	cp "$v/delta-base.qemu" altered
	flip_byte altered "$(grep -boa abcdefgh altered | cut -d: -f1)"
	run -1 --separate-stderr bash -c 'mig-delta -d --base altered "$1" > out' _ "$v/delta-ab.mig"
	[[ $stderr == "mig-delta: $v/delta-ab.mig: wrong base: altered (8447 bytes compacted, state XXH3-128 "* ]]
	[ "$(size_of out)" = 0 ]
}

# Wait until process PID has read FILE to its end (the offset of its
# descriptor of FILE at FILE's length): all its bytes are in memory.
wait_read_whole() { # PID FILE
	local f n path size
	path=$(realpath "$2")
	size=$(size_of "$2")
	for n in $(seq 400); do
		for f in /proc/"$1"/fd/*; do
			[ "$(readlink "$f" 2>/dev/null)" = "$path" ] &&
				[ "$(awk '/^pos:/ { print $2 }' "/proc/$1/fdinfo/${f##*/}" 2>/dev/null)" = "$size" ] &&
				return 0
		done
		sleep 0.05
	done
	fail "$2 not read whole by process $1"
}

# The vectors' base (b) changed in its page 2 ("C"s) after mig-delta -d
# read it whole, before the delta came: refused when the output reaches
# that page, exit 1, the output a prefix of REBUILT ending before page 2.
base_changed_midway() { # DELTA REBUILT PAGE2_AT [--base DELTA]...
	local delta=$1 want=$2 page2_at=$3 pid rc=0
	shift 3
	cp "$REPO/tests/vectors/delta-base.qemu" b
	rm -f gate && mkfifo gate
	{ read -r _ < gate; cat "$delta"; } 3>&- | mig-delta -d --base b "$@" > out 2> err 3>&- &
	pid=$!
	wait_read_whole "$pid" b
	flip_byte b 5000 # page 2's data: bytes 4199 to 8294
	echo > gate
	wait "$pid" || rc=$?
	assert_equal "$rc" 1
	assert_equal "$(cat err)" "mig-delta: stdin: b: page 2 changed since it was read"
	assert_prefix out "$want"
	[ "$(size_of out)" -le "$page2_at" ]
}

@test "a base page changed after the base was read: refused when the output reaches it, no byte of it written; through a chain too, whose states never read it" {
	local v=$REPO/tests/vectors
	# page 2's record is at 8286 in delta-new.qemu, at 4191 in delta-base.qemu
	base_changed_midway "$v/delta-ab.mig" "$v/delta-new.qemu" 8286
	mig-delta --base "$v/delta-new.qemu" "$v/delta-base.qemu" > back
	base_changed_midway back "$v/delta-base.qemu" 4191 --base "$v/delta-ab.mig"
}

# XXH3-128 of standard input, in hex (xxhsum gives the canonical form).
xxh128() { xxhsum -H2 | cut -d' ' -f1; }

# A file's LENGTH bytes from OFFSET, in hex.
hex_at() { od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'; } # FILE OFFSET LENGTH

@test "the base's state digest of mig-stream(5), computed apart: its layout's, its page records', its other bytes'" {
	local v=$REPO/tests/vectors layout pages other
	# page size, then block "a" of 12288 bytes
	layout=$(perl -e 'print pack("Q<", 4096), "\x01a", pack("Q<", 12288)' | xxh128)
	assert_equal "$layout" "$(hex_at "$v/delta-ab.mig" 37 16)"
	# the base's records are those that the delta of the base against
	# itself rebuilds: its digest of the rebuilt records
	pages=$(hex_at "$v/delta-aa.mig" 77 16)
	# everything but the one ram PART section: bytes 71 to 8307 (its
	# header, three page records, EOS, footer), then the ram END
	assert_equal "$(hex_at "$v/delta-base.qemu" 71 5)" 0200000002
	assert_equal "$(hex_at "$v/delta-base.qemu" 8308 1)" 03
	other=$({ head -c 71 "$v/delta-base.qemu"; tail -c +8309 "$v/delta-base.qemu"; } | xxh128)
	run -0 bash -c 'perl -e "print pack(q(H*), shift)" "$1" | xxhsum -H2 | cut -d" " -f1' _ "$layout$pages$other"
	assert_output "$(hex_at "$v/delta-ab.mig" 13 16)"
	assert_output 659ba2a1bc49774d7046c0b255816782
}

@test "a real Linux guest: two checkpoints of it running, beats apart; the delta carries what it dirtied and rebuilds a stream that loads to the RAM of the second" {
	load lib/guest
	guest_build "$BATS_TEST_TMPDIR/guest" > /dev/null
	guest_start src 256 mig.fill=64 mig.dirty=4
	run -0 guest_wait_ready src 120
	guest_wait_beat src 2 20 > /dev/null
	run -0 vm_migrate src "cat > ck1"
	assert_output completed
	qmp src '{"execute":"cont"}' > /dev/null # on from postmigrate
	local n
	n=$(guest_beat src)
	guest_wait_beat src $((n + 3)) 30 > /dev/null # 3 s of 4 MB/s rewritten
	run -0 vm_migrate src "cat > ck2"
	assert_output completed
	run -0 --separate-stderr bash -c 'mig-delta -v --base ck1 < ck2 > d'
	[[ ${stderr_lines[1]} =~ ^mig-delta:\ ([0-9]+)\ pages\ in\ the\ input,\ ([0-9]+)\ differ ]]
	local pages=${BASH_REMATCH[1]} carried=${BASH_REMATCH[2]}
	# at least what the guest rewrote (3 s at 4 MB/s), far from everything
	[ "$carried" -gt 2000 ] && [ "$carried" -lt $((pages / 4)) ]
	mig-delta -d --base ck1 < d > r
	mig-compact ck2 > c
	cmp r c
	guest_incoming a 256 ck2
	guest_incoming b 256 r
	run -0 vm_wait_incoming a 120
	run -0 vm_wait_incoming b 120
	vm_pmemsave a a.mem 256M
	vm_pmemsave b b.mem 256M
	vm_same_ram a.mem b.mem
	echo "# Linux guest ($GUEST_ACCEL), 64 MB page cache, 4 MB/s dirtied:" \
		"checkpoint $(size_of ck2) bytes, delta $(size_of d) ($carried of $pages pages);" \
		"compressed $(mig-compress < ck2 | wc -c) and $(mig-compress < d | wc -c)" >&3
}

@test "a base and an input in envelopes (sealed checkpoints): the base's pages spilled, its state that of the stream inside; the same pages carried" {
	mig-envelope --meta vm=base < "$D/base" > base.env
	mig-envelope --meta vm=new < "$D/new" > new.env
	run -0 --separate-stderr bash -c 'mig-delta -v --base base.env new.env > d'
	assert_equal "${stderr_lines[2]}" "${stderr_lines[2]%%,*}, $PAGES_NEW differ from the base: $PAGES_NEW carried, 0 of them as XBZRLE records"
	[[ ${stderr_lines[1]} =~ ^"mig-delta: pages spilled: "[0-9]+" (temporary file)"$ ]]
	mig-delta -d --base base.env d > r
	mig-compact "$D/new" > c
	cmp r c
	# bound to the state: the same stream outside its envelope, or
	# compacted, is the same base
	mig-delta -d --base "$D/base" < d > r2
	cmp r2 c
	mig-compact "$D/base" > base.c
	mig-delta -d --base base.c < d > r3
	cmp r3 c
	# an envelope cut short is no base
	head -c 20000000 base.env > cut.env
	run -1 --separate-stderr bash -c 'mig-delta --base cut.env < "$D/new" > out'
	# (a 21-byte header, META frame 0 of 23 bytes, then 1 MiB DATA frames)
	assert_equal "$stderr" "mig-delta: cut.env: truncated: the stream ends inside frame 20 (offset $((21 + 23 + 19 * (8 + 1048576 + 8))))"
}

# A paused source VM from RAM image RAM, with a second monitor NAME.mq for
# mig-qemu (as tests/lib/migrate.bash's source_vm).
source_vm_of() { # NAME RAM
	vm_start_source "$1" "$2" "$MIB" -qmp "unix:$VM_DIR/$1.mq,server=on,wait=off" -S
}

# The destination's QEMU arguments for mig-recv, paused (as migrate.bash's dest).
paused_dest() { # NAME
	echo "qemu-system-x86_64 -machine q35 -accel $(qemu_accel) -nodefaults -display none" \
		"-no-user-config -name $1 -m ${MIB}M -object memory-backend-ram,id=mem,size=${MIB}M" \
		"-machine memory-backend=mem -pidfile $VM_DIR/$1.pid" \
		"-qmp unix:$VM_DIR/$1.qmp,server=on,wait=off -S -incoming -"
}

@test "mig-qemu checkpoint --base and restore of a chain (full, delta, delta; compressed): the RAM of the last" {
	export VM_DIR=$BATS_TEST_TMPDIR
	source_vm_of s0 "$D/base.ram"
	run -0 --separate-stderr mig-qemu checkpoint --timeout 60 "$VM_DIR/s0.mq" mig-compress ck0
	source_vm_of s1 "$D/new.ram"
	run -0 --separate-stderr mig-qemu checkpoint --base ck0 --decode mig-decompress --timeout 60 "$VM_DIR/s1.mq" mig-compress ck1
	output=$stderr assert_output --partial "every stage exited 0"
	source_vm_of s2 "$D/new2.ram"
	run -0 --separate-stderr mig-qemu checkpoint --base ck0 --base ck1 --decode mig-decompress --timeout 60 "$VM_DIR/s2.mq" mig-compress ck2
	# the chain's decoded files are gone
	[ -z "$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'mig-qemu-chain.*' -newer ck0)" ]
	# each delta carries only what changed, the first against its own base
	run -0 mig-info ck1
	assert_line --regexp "^layer 2: delta \(.* carried=$PAGES_NEW\)$"
	run -0 mig-info ck2
	assert_line --regexp "^layer 2: delta \(.* carried=$PAGES_NEW2\)$"
	[ "$(size_of ck2)" -lt $(($(size_of ck0) / 20)) ]
	run -0 --separate-stderr mig-qemu restore --base ck0 --base ck1 ck2 mig-decompress -- $(paused_dest d)
	vm_attach d
	vm_pmemsave d d.mem "${MIB}M"
	cmp -i 1048576 d.mem "$D/new2.ram"
	# a chain with a file missing is refused before a byte reaches the
	# emulator, which mig-recv then stops
	run -1 --separate-stderr mig-qemu restore --base ck0 ck2 mig-decompress -- $(paused_dest e)
	[[ $stderr == *"mig-delta: stdin: wrong base: ${TMPDIR:-/tmp}/mig-qemu-chain."*" is not the base this delta was made against"* ]]
	[[ $stderr == *"mig-qemu: restore: stage 3 (mig-recv) failed: exit status 1"* ]]
	[ ! -e "$VM_DIR/e.pid" ] || ! kill -0 "$(cat "$VM_DIR/e.pid")" 2>/dev/null
	# out of order: refused by the chain's own check, naming the file
	run -1 --separate-stderr mig-qemu restore --base ck0 --base ck2 ck1 mig-decompress -- $(paused_dest e2)
	[[ $stderr == *"mig-delta: ${TMPDIR:-/tmp}/mig-qemu-chain."*": wrong base: ${TMPDIR:-/tmp}/mig-qemu-chain."*" is not the base this delta was made against"* ]]
	[ ! -e "$VM_DIR/e2.pid" ] || ! kill -0 "$(cat "$VM_DIR/e2.pid")" 2>/dev/null
}

@test "mig-qemu: --base and --decode where they do not belong are usage errors" {
	run -2 --separate-stderr mig-qemu migrate --base x q 'cat'
	assert_equal "$stderr" "mig-qemu: migrate: --base is for checkpoint and restore
Try 'mig-qemu --help'."
	run -2 --separate-stderr mig-qemu checkpoint --decode mig-decompress q f
	assert_equal "$stderr" "mig-qemu: checkpoint: --decode is for the files of --base
Try 'mig-qemu --help'."
	run -2 --separate-stderr mig-qemu restore --base a --decode mig-decompress f -- x
	assert_equal "$stderr" "mig-qemu: restore: --decode is for checkpoint: restore decodes every file of the chain with its FILTERs
Try 'mig-qemu --help'."
	run -2 --separate-stderr mig-qemu restore --base a --from-stream --trust-unsigned f
	assert_equal "$stderr" "mig-qemu: restore: --from-stream needs the META of a sealed stream, which a delta does not keep: give the emulator's arguments
Try 'mig-qemu --help'."
	# a base that cannot be read: said before anything is migrated
	run -3 --separate-stderr mig-qemu checkpoint --base nothing q f
	assert_equal "$stderr" "mig-qemu: --base: nothing: No such file or directory"
	run -1 --separate-stderr mig-qemu checkpoint --base nothing --decode cat q f
	assert_equal "$stderr" "bash: line 1: nothing: No such file or directory
mig-qemu: --base: nothing could not be decoded (exit status 1)"
	[ ! -e f ]
}

@test "two deltas of one base spliced (one's header, the other's frames): every frame checks, the end does not; all the pages went out, nothing after them" {
	big_delta
	mig-delta --base "$D/base" < "$D/new" > small
	{ head -c 101 small; tail -c +102 d; } > x
	run -1 --separate-stderr bash -c 'mig-delta -d --base "$D/base" < x > out'
	[[ $stderr =~ ^"mig-delta: stdin: the rebuilt pages do not match the delta's header ("([0-9]+)" records, $PAGES_BIG from the delta; expected "([0-9]+)" and $PAGES_NEW, or their digest)"$ ]]
	assert_equal "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
	assert_prefix out full
	assert_equal "$(size_of out)" "$PAGES_END"
	vm_start_dest t "$MIB" "cat out" -S
	run vm_wait_incoming t 60
	refute_output completed
}

#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-info: describing (and thereby verifying) streams.

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/common
	load lib/libvirt
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

# A raw stream of tests/fuzz/corpus/qemu-stream (after its first byte, the
# fuzz reader's piece size): a tiny complete one, and every early end.
raw_case() { tail -c +2 "$REPO/tests/fuzz/corpus/qemu-stream/raw-end-$1"; }

# Offset of the first device state section (FULL "timer") in $STREAM.
first_device_offset() {
	LC_ALL=C grep -obUaP '\x04[\x00-\xff]{4}\x05timer' "$STREAM" | head -1 | cut -d: -f1
}

@test "data that is neither a layer nor a QEMU stream has no end to verify: exit 1" {
	printf 'hello' > h
	run -1 --separate-stderr mig-info h
	assert_line --index 1 "inner data: 5 bytes, not a QEMU stream"
	output=$stderr assert_output "mig-info: h: not a mig layer or a QEMU migration stream: its end cannot be verified"
	run -1 --separate-stderr mig-info -j h
	jq -e '.complete == false and .inner == "unknown"' <<<"$output"
}

@test "an empty input is not complete: exit 1, empty input" {
	: > empty
	run -1 --separate-stderr mig-info empty
	assert_output "empty: 0 bytes
inner data: empty"
	output=$stderr assert_output "mig-info: empty: empty input"
	run -1 --separate-stderr mig-info < /dev/null
	output=$stderr assert_output "mig-info: stdin: empty input"
	run -1 --separate-stderr mig-info -j < /dev/null
	jq -e '.complete == false and .error == "empty input"' <<<"$output"
	# a whole layer around nothing carries an empty stream
	mig-checksum < /dev/null > ck
	run -1 --separate-stderr mig-info -q ck
	output=$stderr assert_output "mig-info: ck: empty input: layer 1 carries no data"
	mig-checksum < /dev/null | mig-checksum > ck2
	run -1 --separate-stderr mig-info -q ck2
	output=$stderr assert_output "mig-info: ck2: empty input: layer 2 carries no data"
}

@test "an encrypted layer is walked to its END: not verified (needs a key), exit 5" {
	mig-keygen -o k
	mig-encrypt -k k < "$STREAM" > e
	run -5 --separate-stderr mig-info e
	assert_line --index 1 "layer 1: encrypt, cannot be opened here ($(stat -c %s e) bytes)"
	assert_line --index 2 --regexp "^  frames [0-9]+ and END, content not verified$"
	output=$stderr assert_output --regexp "^mig-info: e: layer 1 \(encrypt\): not verified \(needs a key\): its framing ends with END after [0-9]+ frames, its content is not checked$"
	run -5 --separate-stderr mig-info -j e
	jq -e '.complete == false and .inner == "closed" and (.error | test("not verified"))' <<<"$output"
	# inside a layer mig-info opens, the same
	mig-checksum < e > ck-e
	run -5 --separate-stderr mig-info -q ck-e
	output=$stderr assert_output --regexp "^mig-info: ck-e: layer 2 \(encrypt\): not verified \(needs a key\)"
	# decrypted, it verifies
	mig-decrypt -k k < e > plain
	run -0 mig-info -q plain
}

@test "a cut encrypted layer is truncated (exit 1), however short, wherever cut" {
	mig-keygen -o k
	mig-encrypt -k k < "$STREAM" > e
	head -c 50 e > e50
	run -1 --separate-stderr mig-info e50
	assert_line --index 1 "layer 1: encrypt, cannot be opened here (50 bytes)"
	output=$stderr assert_output "mig-info: e50: layer 1: truncated: the stream ends inside the layer header"
	head -c 3000000 e > ecut
	run -1 --separate-stderr mig-info -q ecut
	output=$stderr assert_output --regexp "^mig-info: ecut: layer 1: truncated: the stream ends inside frame [0-9]+ \(offset [0-9]+\)$"
	# cut on a frame boundary: every frame whole, but no END
	size=$(stat -c %s e)
	for cut in $((size - 1)) $((size - 40)); do
		head -c $cut e > eb
		run -1 --separate-stderr mig-info -q eb
		output=$stderr assert_output --regexp "^mig-info: eb: layer 1: truncated: "
	done
	: | mig-encrypt -k k > e0
	head -c $(( $(stat -c %s e0) - 1 )) e0 > e0cut
	run -1 --separate-stderr mig-info -q e0cut
	output=$stderr assert_output --regexp "^mig-info: e0cut: layer 1: truncated: "
	# a whole one with data after its END
	{ cat e; printf X; } > etrail
	run -1 --separate-stderr mig-info -q etrail
	output=$stderr assert_output --regexp "data after the END frame at offset [0-9]+$"
}

@test "a raw stream ends where QEMU ends it: every early end is exit 1, each named" {
	raw_case complete > ok
	run -0 mig-info -q ok
	local -A want=(
		[early-eof-after-header]="no configuration section at offset 8 (found byte 0x00): QEMU sends one, naming the machine type, before any section"
		[early-eof-after-config]="incomplete: QEMU_VM_EOF at offset 23 before any RAM section: the stream carries no RAM"
		[early-eof-after-setup]="incomplete: QEMU_VM_EOF at offset 73 before the END of the RAM section (its completion stage)"
		[early-eof-after-part]="incomplete: QEMU_VM_EOF at offset 4208 before the END of the RAM section (its completion stage)"
		[early-eof-after-end]="incomplete: QEMU_VM_EOF at offset 4248 with no device state before it"
		[no-config]="no configuration section at offset 8 (found byte 0x01): QEMU sends one, naming the machine type, before any section"
		[no-ram]="incomplete: device state (section 'timer') at offset 23 before any RAM section: the stream carries no RAM"
		[no-ram-end]="incomplete: device state (section 'timer') at offset 4208 before the END of the RAM section (its completion stage)"
		[no-pages]="incomplete: the RAM section ends (END at offset 73) without a single page: the stream carries no RAM"
		[no-block-list]="the ram setup (START section at offset 23) lists no RAM blocks"
		[part-after-end]="ram PART section at offset 113 after the ram END section"
		[other-iterable]="unsupported: iterable section 'block' at offset 23 (block migration, dirty bitmaps or VFIO); only \"ram\" is read"
		[cut-in-config]="truncated: stream ends inside configuration section (machine type) at offset 13 (it starts at offset 8; 10 more bytes expected)"
		[cut-in-setup]="truncated: stream ends inside ram record header at offset 43 (it starts at offset 40; 5 more bytes expected)"
		[cut-in-part]="truncated: stream ends inside ram page at offset 173 (it starts at offset 78; 4013 more bytes expected)"
		[cut-in-end]="truncated: stream ends inside ram record header at offset 4218 (it starts at offset 4213; 3 more bytes expected)"
		[cut-in-device]="truncated: stream ends inside section header at offset 4260 (it starts at offset 4248; 7 more bytes expected)"
		[cut-in-eof]="truncated: stream ends at offset 4297 right after QEMU_VM_EOF, without the VMDESCRIPTION trailer that QEMU sends unless the machine suppresses it"
		[cut-in-vmdesc]="truncated: stream ends inside the VMDESCRIPTION JSON at offset 4382 (83 bytes announced at offset 4297, 80 present)"
	)
	for c in "${!want[@]}"; do
		raw_case "$c" > "$c"
		run -1 --separate-stderr mig-info -q "$c"
		output=$stderr assert_output "mig-info: $c: QEMU stream: ${want[$c]}"
		# inside a layer that is whole, the same verdict
		mig-checksum < "$c" > "$c.ck"
		run -1 --separate-stderr mig-info -q "$c.ck"
		output=$stderr assert_output "mig-info: $c.ck: QEMU stream: ${want[$c]}"
	done
}

@test "the real stream with its end marker brought forward, or without RAM: exit 1" {
	local dev eofat size
	size=$(stat -c %s "$STREAM")
	dev=$(first_device_offset)
	[ "$dev" -gt 23 ]
	# EOF + VMDESCRIPTION: the tail from the last 0x00 0x06 on
	eofat=$((dev + $(mig-info -j "$STREAM" | jq .qemu.device_bytes)))
	[ "$(od -An -tx1 -j "$eofat" -N2 "$STREAM")" = " 00 06" ]
	head -c 23 "$STREAM" > early && tail -c +$((eofat + 1)) "$STREAM" >> early
	run -1 --separate-stderr mig-info -q early
	output=$stderr assert_output "mig-info: early: QEMU stream: incomplete: QEMU_VM_EOF at offset 23 before any RAM section: the stream carries no RAM"
	head -c "$dev" "$STREAM" > noend && tail -c +$((eofat + 1)) "$STREAM" >> noend
	run -1 --separate-stderr mig-info -q noend
	output=$stderr assert_output "mig-info: noend: QEMU stream: incomplete: QEMU_VM_EOF at offset $dev with no device state before it"
	head -c 23 "$STREAM" > noram && tail -c +$((dev + 1)) "$STREAM" >> noram
	run -1 --separate-stderr mig-info -q noram
	output=$stderr assert_output "mig-info: noram: QEMU stream: incomplete: device state (section 'timer') at offset 23 before any RAM section: the stream carries no RAM"
	# cut in each part: configuration, ram setup, ram, device state, EOF, trailer
	for cut in 15 100 $((dev / 2)) $((dev + 3)) $((dev + 100)) $((eofat + 1)) $((size - 1)); do
		head -c $cut "$STREAM" > cut
		run -1 --separate-stderr mig-info -q cut
		output=$stderr assert_output --regexp "^mig-info: cut: QEMU stream: truncated: "
	done
}

@test "mig-recv refuses a raw stream that carries no RAM, before reporting success" {
	load lib/qemu
	load lib/sshd # wait_for
	load lib/migrate
	export VM_DIR=$BATS_TEST_TMPDIR MIB=64
	local dev
	dev=$(first_device_offset)
	head -c 23 "$STREAM" > noram && tail -c +$((dev + 1)) "$STREAM" >> noram
	run -1 --separate-stderr mig-recv $(dest dst) < noram
	output=$stderr assert_output --partial "mig-recv: stdin: QEMU stream: incomplete: device state (section 'timer') at offset 23 before any RAM section: the stream carries no RAM"
	output=$stderr refute_output --partial "loaded the stream"
	assert_no_dest dst
	vm_cleanup_all
}

@test "usage errors" {
	run -2 --separate-stderr mig-info --bogus
	output=$stderr assert_output "mig-info: unknown or incomplete option '--bogus'
Try 'mig-info --help'."
	run -2 --separate-stderr mig-info --signer
	output=$stderr assert_output "mig-info: unknown or incomplete option '--signer'
Try 'mig-info --help'."
	run -2 --separate-stderr mig-info a b
	output=$stderr assert_output "mig-info: one input at most"
	run -3 --separate-stderr mig-info nonexistent
	output=$stderr assert_output "mig-info: nonexistent: No such file or directory"
	run -0 mig-info --help
	assert_line --index 0 "usage: mig-info [--json] [-q] [--signer PUB]... [FILE]"
}

@test "a libvirt save image: its header and XML, then the QEMU stream; complete" {
	libvirt_image LibvirtQemudSave 0 "$STREAM" >img
	run -0 mig-info img
	assert_line --index 1 "libvirt save image: LibvirtQemudSave (complete), version 2"
	assert_line --index 2 "  running yes, format raw (0), XML 45 bytes, cookie 9 bytes, stream at offset 212"
	assert_line --index 3 "  xml=<domain type='kvm'><name>vm1</name></domain>\\x0a"
	assert_line --index 4 "QEMU migration stream, version 3"
	run -0 mig-info --json img
	jq -e '.libvirt.complete and .libvirt.format == "raw" and .libvirt.cookie == "<cookie/>"
		and .libvirt.stream_offset == 212 and .complete' <<<"$output"
}

@test "a libvirt save image libvirt did not finish (LibvirtQemudPart) is incomplete (1)" {
	libvirt_image LibvirtQemudPart 0 "$STREAM" >img
	run -1 mig-info img
	assert_line --index 1 "libvirt save image: LibvirtQemudPart (not finished by libvirt), version 2"
	assert_line "mig-info: img: incomplete: the libvirt header says LibvirtQemudPart: libvirt had not finished this image (it writes LibvirtQemudSave last)"
}

@test "a libvirt save image through migkit's hook (format lzop, mig layers): the layers and the stream verified" {
	mig-compress <"$STREAM" >payload
	libvirt_image LibvirtQemudSave 4 payload >img
	run -0 mig-info img
	assert_line --index 2 --partial "  running yes, format lzop (4), "
	assert_line --index 4 --regexp "^layer 1: compress "
}

@test "a libvirt save image compressed by another program: followed to its end, not verified (5)" {
	head -c 1000 /dev/urandom >payload
	libvirt_image LibvirtQemudSave 3 payload >img
	run -5 mig-info img
	assert_line "mig-info: img: libvirt image of format xz: its 1000 bytes after the header are the output of the program 'xz', not migkit's: not verified"
}

@test "a libvirt save image cut inside its XML, or with a bad version: refused by name (1)" {
	libvirt_image LibvirtQemudSave 0 "$STREAM" | head -c 150 >img
	run -1 mig-info img
	assert_line "mig-info: img: truncated: the input ends at offset 150, inside the libvirt domain XML, cookie and padding (62 more bytes expected)"
	{ printf LibvirtQemudSave; printf '\x03'; libvirt_image LibvirtQemudSave 0 "$STREAM" | tail -c +18; } >img
	run -1 mig-info img
	assert_line "mig-info: img: libvirt header: unsupported version 3 at offset 16 (expected 2)"
}

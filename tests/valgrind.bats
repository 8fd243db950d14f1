#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# Every command under valgrind's memcheck: no leak, no invalid access, on
# good input and on bad (the error paths free what they took too).

setup_file() {
	load lib/common
	# a small real stream: the first 3 MiB of the test stream are a valid
	# prefix; mig-info and mig-tee must also see a whole one
	test_stream_setup
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || exit 1
	head -c 3000000 "$STREAM" > part
}

vg() {
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
		--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 "$@"
}

@test "valgrind: mig-checksum and mig-envelope, good and bad input" {
	vg mig-checksum --meta a=b < part > ck
	vg mig-checksum -d < ck | cmp - part
	vg mig-envelope --meta x=y < ck > env
	vg mig-checksum -d -v < env 2>/dev/null | cmp - part
	head -c 1500000 ck > cut
	run -1 vg mig-checksum -d < cut
	run -1 vg mig-checksum -d < part
	run -2 vg mig-checksum --bogus
}

@test "valgrind: mig-info and mig-tee on a whole stream and a cut one" {
	vg mig-info -q "$STREAM"
	run -1 vg mig-info -q part
	vg mig-tee ckpt < "$STREAM" > /dev/null
	run -1 vg mig-tee ckpt2 < part
}

@test "valgrind: libvirt save images in mig-info, mig-compact, mig-tee and mig-recv: whole, unfinished, cut, compressed" {
	load lib/libvirt
	libvirt_image LibvirtQemudSave 0 "$STREAM" >img
	libvirt_image LibvirtQemudPart 0 "$STREAM" >unfinished
	libvirt_image LibvirtQemudSave 0 part | head -c 150 >cut
	head -c 1000 /dev/zero >payload # not a stream migkit knows
	libvirt_image LibvirtQemudSave 3 payload >xz
	vg mig-info img >/dev/null
	vg mig-info --json img >/dev/null
	run -1 vg mig-info unfinished
	run -1 vg mig-info cut
	run -5 vg mig-info xz
	vg mig-compact img >c
	run -1 vg mig-compact unfinished
	vg mig-tee ckpt <img >/dev/null
	run -1 vg mig-tee ckpt2 <unfinished
	run -1 vg mig-recv /bin/true -incoming - <unfinished
	run -1 vg mig-recv /bin/true -incoming - <cut
}

@test "valgrind: mig-compact (from a file, a pipe, spilling) and mig-tee --compact, whole and cut" {
	vg mig-compact "$STREAM" > c1
	cat "$STREAM" | vg mig-compact > c2
	vg mig-compact -S "$STREAM" > c3
	cmp c1 c2
	cmp c1 c3
	run -1 vg mig-compact part
	run -2 vg mig-compact --bogus
	vg mig-tee --compact -o ck < "$STREAM"
	cmp ck c1
	run -1 vg mig-tee --compact -o ck2 < part
}

@test "valgrind: mig-delta (from a file, a pipe, spilling; a base in an envelope), -d whole, cut, against a wrong base" {
	mig-compact "$STREAM" > base
	vg mig-delta --base base "$STREAM" > d1
	cat "$STREAM" | vg mig-delta --base base > d2
	vg mig-delta -S --base base "$STREAM" > d3
	cmp d1 d2
	cmp d1 d3
	vg mig-delta -d --base base d1 | cmp - base
	mig-envelope < base > base.env
	vg mig-delta --base base.env "$STREAM" > d4
	vg mig-delta -d --base base.env d4 | cmp - base
	head -c 2000 d1 > cut
	run -1 vg mig-delta -d --base base cut
	# a wrong base: one byte of a page changed (STREAM itself is the same
	# state as base, its compacted form)
	cp base wrong
	flip_byte wrong $(($(stat -c %s base) / 2))
	run -1 vg mig-delta -d --base wrong d1
	run -1 vg mig-delta --base base part
	run -2 vg mig-delta --bogus
	# a chain (the vectors' tiny streams): there and back again
	local v=$REPO/tests/vectors
	vg mig-delta --base "$v/delta-base.qemu" "$v/delta-new.qemu" > c1
	vg mig-delta -d --base "$v/delta-base.qemu" c1 > r1
	vg mig-delta --base "$v/delta-base.qemu" --base c1 "$v/delta-base.qemu" > c2
	vg mig-delta -d --base "$v/delta-base.qemu" --base c1 c2 | cmp - "$v/delta-base.qemu"
	run -1 vg mig-delta -d --base "$v/delta-base.qemu" --base c2 c1
}

@test "valgrind: mig-encrypt and mig-decrypt, both ciphers, good and bad input" {
	mig-keygen -q -o key
	for c in aes256gcm chacha20poly1305; do
		vg mig-encrypt -T 2 --cipher "$c" -k key < part > enc
		vg mig-decrypt -T 2 -k key < enc | cmp - part
		flip_byte enc 2000000
		run -1 vg mig-decrypt -k key < enc
	done
	run -1 vg mig-decrypt -k key < part
	run -2 vg mig-encrypt < part
}

#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# emu-glue: mig-qemu and mig-recv drive real QEMU migrations end to end,
# over a private OpenSSH server on 127.0.0.1 (tests/lib/sshd.bash).
# shellcheck disable=SC2016,SC2154

MIB=64

setup_file() {
	load lib/common
	load lib/sshd
	test_stream_setup
	sshd_start "$BATS_FILE_TMPDIR/sshd" >&3
}

teardown_file() {
	load lib/sshd
	sshd_stop "$BATS_FILE_TMPDIR/sshd"
}

setup() {
	load lib/migrate
	migrate_test_setup
}

teardown() {
	vm_cleanup_all
}

@test "live migration of a running VM over ssh: completed in seconds, destination runs" {
	source_vm src
	local t0=$SECONDS
	run -0 --separate-stderr mig-qemu migrate --timeout 60 "$VM_DIR/src.mq" \
		"mig-checksum | $SSH 'mig-checksum -d | mig-recv $(dest dst)'"
	(( SECONDS - t0 < 20 )) || fail "took $((SECONDS - t0)) s"
	output=$stderr assert_output --partial "every stage exited 0"
	output=$stderr assert_output --partial "loaded the stream and is running"
	vm_attach dst
	run vm_status dst
	assert_output running
	run vm_status src
	assert_output postmigrate
}

@test "a paused source: the destination is paused with identical RAM; --json reports" {
	# Paused from the start (-S, "prelaunch"): a VM stopped while its
	# firmware starts up can read back differently in the shadowed BIOS
	# area (PAM), with or without migkit.
	source_vm src -S
	run -0 --separate-stderr mig-qemu migrate --json --timeout 60 "$VM_DIR/src.mq" \
		"mig-checksum | $SSH 'mig-checksum -d | mig-recv $(dest dst)'"
	run jq -r 'select(.event == "result") | "\(.result) \(.qemu_completed) \([.stages[].status] | join(","))"' <<< "$output"
	assert_output "completed true 0,0,0"
	vm_attach dst
	run vm_status dst
	assert_output prelaunch
	vm_pmemsave src src.mem "${MIB}M"
	vm_pmemsave dst dst.mem "${MIB}M"
	vm_same_ram src.mem dst.mem
}

@test "--send-config and mig-recv --from-stream: the destination is started from the signed stream" {
	source_vm src -name from-the-source
	mig-keygen -q --sign-pair "$T/src.sign"
	run -0 --separate-stderr mig-qemu migrate --send-config --sign "$T/src.sign" --timeout 60 "$VM_DIR/src.mq" \
		"mig-checksum | $SSH 'mig-checksum -d | mig-recv --from-stream --signer $T/src.sign.pub -- -pidfile $VM_DIR/dst.pid -qmp unix:$VM_DIR/dst.qmp,server=on,wait=off'"
	vm_attach dst
	run vm_status dst
	assert_output running
	# the source's name, its RAM now anonymous memory of the same id
	run -0 cat "/proc/$(cat "$VM_DIR/dst.pid")/cmdline"
	assert_output --partial "from-the-source"
	assert_output --partial "memory-backend-ram,id=mem,size=${MIB}M"
	refute_output --partial "mem-path"
	refute_output --partial "$VM_DIR/src.mq"
}

@test "checkpoint and restore without META; the checkpoint verifies" {
	source_vm src
	run -0 --separate-stderr mig-qemu checkpoint --resume --timeout 60 "$VM_DIR/src.mq" mig-checksum ckpt
	run vm_status src
	assert_output running
	run -0 mig-info ckpt
	assert_line --index 1 "layer 1: checksum (hash=xxh3)"
	assert_line --regexp "^layer 2: envelope"
	assert_line "  end: EOF marker, device description"
	run -0 --separate-stderr mig-qemu restore ckpt 'mig-checksum -d' -- $(dest dst)
	vm_attach dst
	run vm_status dst
	assert_output running
}

@test "checkpoint --send-config --sign, restore --from-stream --signer with overrides" {
	source_vm src -S
	mig-keygen -q --sign-pair src.sign
	run -0 --separate-stderr mig-qemu checkpoint --send-config --sign src.sign --timeout 60 "$VM_DIR/src.mq" mig-checksum ckpt
	run -0 mig-info --signer src.sign.pub ckpt
	assert_line --regexp '^  meta \(signed\) qemu.argv=\["qemu-system-x86_64",'
	assert_line "  meta (signed) qemu.status=prelaunch"
	assert_line --regexp '^  signature: good, signer [0-9a-f]{16} trusted \(--signer\)$'
	# the command line it would run
	run -0 bash -c 'mig-checksum -d < ckpt | mig-recv -n --from-stream --signer src.sign.pub -- -name copy'
	assert_output --partial "-name copy"
	assert_output --partial "memory-backend-ram,id=mem,size=${MIB}M"
	refute_output --partial "-S "
	run -0 --separate-stderr mig-qemu restore --from-stream --signer src.sign.pub ckpt 'mig-checksum -d' -- \
		-name copy -pidfile "$VM_DIR/dst.pid" -qmp "unix:$VM_DIR/dst.qmp,server=on,wait=off"
	vm_attach dst
	run vm_status dst
	assert_output prelaunch
	vm_pmemsave src src.mem "${MIB}M"
	vm_pmemsave dst dst.mem "${MIB}M"
	vm_same_ram src.mem dst.mem
}

@test "a checkpoint teed during a live migration restores into a third VM" {
	source_vm src
	run -0 --separate-stderr mig-qemu migrate --timeout 60 "$VM_DIR/src.mq" \
		"mig-tee $T/ckpt | mig-checksum | $SSH 'mig-checksum -d | mig-recv $(dest dst)'"
	run -0 mig-info -q ckpt
	mig-recv $(dest third) < ckpt
	vm_attach dst
	vm_attach third
	run vm_status dst
	assert_output running
	run vm_status third
	assert_output running
}

# Kill stage NAME once it has started and the migration is under way; the
# source keeps running, mig-qemu fails naming a stage, no destination is
# left running, and the teed checkpoint does not appear.
kill_stage_case() {
	local victim=$1 where=$2
	source_vm src
	mig-qemu migrate --bandwidth 12M --timeout 60 --grace 20 "$VM_DIR/src.mq" \
		"mig-tee $T/ckpt | $T/stage send mig-checksum | $T/stage ssh $SSH '$T/stage unck mig-checksum -d | $T/stage recv mig-recv $(dest dst)'" \
		> out 2> err &
	local mq=$!
	local pid
	if [ "$victim" = seal ]; then
		wait_for 20 seal_pid src > /dev/null
		pid=$(seal_pid src)
	elif [ "$victim" = sshd ]; then
		stage_pid recv > /dev/null
		pid=$(sshd_sessions | head -1)
	else
		pid=$(stage_pid "$victim")
	fi
	[ -n "$pid" ]
	# under way: the destination has started and reads
	stage_pid recv > /dev/null || true
	wait_for 20 test -s "$VM_DIR/dst.pid" || true
	kill -KILL "$pid"
	local rc=0
	wait "$mq" || rc=$?
	[ "$rc" -eq 1 ] || { cat err; fail "mig-qemu exited $rc"; }
	run cat err
	assert_output --partial "failed: exit status"
	assert_output --partial "the source VM keeps running"
	[ -z "$where" ] || assert_output --partial "$where"
	run vm_status src
	assert_output running
	assert_no_dest dst
	[ ! -e ckpt ]
}

@test "fault: the seal killed mid-migration" {
	kill_stage_case seal "stage 1 (mig-qemu seal) failed"
}

@test "fault: the sending filter killed mid-migration" {
	kill_stage_case send "stage 3 ($T/stage send mig-checksum) failed"
}

@test "fault: the transport (mig-ssh) killed mid-migration" {
	kill_stage_case ssh "stage 4"
}

@test "fault: the remote decoder killed mid-migration" {
	kill_stage_case unck "stage 4"
}

@test "fault: mig-recv killed mid-migration takes its half-loaded emulator with it" {
	kill_stage_case recv "stage 4"
}

@test "fault: the connection cut (sshd session killed)" {
	kill_stage_case sshd "exit status 255"
}

@test "fault: a destination with a mismatching configuration: QEMU's error reaches the user" {
	source_vm src
	local bad
	bad=$(dest dst | sed 's/id=mem,/id=other,/; s/memory-backend=mem/memory-backend=other/')
	run -1 --separate-stderr mig-qemu migrate --timeout 60 "$VM_DIR/src.mq" \
		"mig-checksum | $SSH 'mig-checksum -d | mig-recv $bad'"
	output=$stderr assert_output --partial 'Unknown ramblock "mem", cannot accept migration'
	output=$stderr assert_output --partial "the source VM keeps running"
	run vm_status src
	assert_output running
	assert_no_dest dst
}

@test "seal: END only for a complete QEMU stream" {
	mig-qemu seal --meta vm=x < "$STREAM" > sealed
	run -0 mig-info sealed
	assert_line "  meta (not authenticated) vm=x"
	head -c 3000000 "$STREAM" > cut
	run -1 --separate-stderr bash -c 'mig-qemu seal < cut > sealed-cut'
	output=$stderr assert_output --regexp "^mig-qemu: seal: QEMU stream: truncated: .*; no END written"
	run -1 mig-info -q sealed-cut
	run -1 --separate-stderr bash -c 'mig-tee -o t < sealed-cut'
	[ ! -e t ]
}

@test "seal: refuses to write the stream to a terminal (exit 2)" {
	run -2 on_tty 'mig-qemu seal < "$STREAM"'
	assert_output "mig-qemu: seal: refusing to write a stream to a terminal"
}

@test "mig-recv: a raw libvirt save image: libvirt's header skipped, the destination loads the QEMU stream" {
	load lib/libvirt
	libvirt_image LibvirtQemudSave 0 "$STREAM" >img
	run -0 --separate-stderr mig-recv $(dest dst) < img
	vm_attach dst
	run vm_status dst
	assert_output prelaunch # the test stream's VM never ran (-S)
	vm_pmemsave dst dst.mem "${MIB}M"
	# RAM as the stream carried it (below 640 KiB and above 1 MiB: the
	# physical addresses between show the firmware's ROMs)
	cmp -n 655360 dst.mem "$RAM"
	cmp -i 1048576 dst.mem "$RAM"
}

@test "mig-recv: a log it cannot make: exit 3, no emulator started" {
	touch plain
	run -3 --separate-stderr mig-recv --log plain/log $(dest d1) < "$STREAM"
	output=$stderr assert_output "mig-recv: plain/log: Not a directory"
	# without --log, an unnamed file in TMPDIR
	run -3 --separate-stderr env -u XDG_RUNTIME_DIR TMPDIR=plain mig-recv $(dest d2) < "$STREAM"
	output=$stderr assert_output "mig-recv: cannot make a log file: Not a directory"
	[ ! -e d1.pid ] && [ ! -e d2.pid ]
}

@test "mig-recv: an emulator that cannot start: exit 4 with its words, none left" {
	run -4 --separate-stderr mig-recv /nonexistent/qemu -incoming - < "$STREAM"
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-recv: qemu: cannot run /nonexistent/qemu: No such file or directory"
	assert_line --index 1 "mig-recv: qemu exited with status 127 at start-up"
	# its QMP socket in XDG_RUNTIME_DIR, here a path under a regular file
	touch plain
	run -4 --separate-stderr env XDG_RUNTIME_DIR="$T/plain" mig-recv \
		qemu-system-x86_64 -machine q35 -accel "$(qemu_accel)" -nodefaults \
		-display none -m 64M -pidfile "$VM_DIR/d1.pid" -incoming - < "$STREAM"
	# QEMU fails to listen there, or is stopped on the failed connection
	output=$stderr assert_output --regexp "cannot connect to the QMP socket $T/plain/mig-recv\.[0-9]+\.qmp: Not a directory|qemu-system-x86_64 exited with status 1 at start-up"
	assert_no_dest d1
}

@test "mig-recv: a truncated or damaged stream leaves no emulator and exits 1" {
	mig-qemu seal < "$STREAM" > sealed
	# the QEMU stream complete, the envelope's END missing
	head -c $(($(stat -c %s sealed) - 10)) sealed > cut
	run -1 --separate-stderr mig-recv $(dest d1) < cut
	output=$stderr assert_output --partial "truncated"
	output=$stderr assert_output --partial "stopped"
	assert_no_dest d1
	# the raw stream cut in its middle
	head -c 20000000 "$STREAM" > rawcut
	run -1 --separate-stderr mig-recv $(dest d2) < rawcut
	output=$stderr assert_output --partial "QEMU stream: truncated"
	assert_no_dest d2
	# a layer that must be peeled first, and an empty stream: no emulator
	run -1 --separate-stderr bash -c 'mig-checksum < "$STREAM" 2>/dev/null | mig-recv qemu-system-x86_64 -incoming -'
	output=$stderr assert_output "mig-recv: stdin: input is a checksum layer, not a QEMU stream: peel it first (mig-checksum -d | mig-recv ...)"
	run -1 --separate-stderr mig-recv qemu-system-x86_64 -incoming - < /dev/null
	output=$stderr assert_output "mig-recv: stdin: the stream is empty"
}

@test "mig-recv: a forged end in the device state, 17 MiB before the real one, never reaches the emulator" {
	# QEMU completes a load at the first QEMU_VM_EOF and description it
	# meets after the RAM; migkit does not parse device state, so none of
	# it may reach the emulator before the end is verified
	local eof dev
	# the description's JSON follows 00 06 be32(length)
	eof=$(($(LC_ALL=C grep -obUaF '{"page_size":' "$STREAM" | tail -1 | cut -d: -f1) - 6))
	dev=$((eof - $(mig-info --json "$STREAM" | jq .qemu.device_bytes)))
	{ head -c "$eof" "$STREAM"; tail -c +$((eof + 1)) "$STREAM"
	  head -c $((17 << 20)) /dev/zero; tail -c +$((eof + 1)) "$STREAM"; } > forged
	run -1 --separate-stderr mig-recv $(dest d1) < forged
	output=$stderr assert_output --partial "mig-recv: stdin: QEMU stream: the device state from offset $dev is longer than 16 MiB: refused (all of it is held back from the emulator until the end is verified)"
	output=$stderr assert_output --partial "not given its end, stopped"
	assert_no_dest d1
}

@test "mig-recv: usage" {
	run -2 --separate-stderr mig-recv
	run -2 --separate-stderr mig-recv qemu-system-x86_64 -m 64M
	output=$stderr assert_output --partial "need '-incoming -'"
	run -0 mig-recv --version
	assert_output "mig-recv (migkit) 0.1.0"
	# usage errors: one message each, in one write, with the way to help
	run -2 --separate-stderr mig-recv --bogus qemu-system-x86_64 -incoming -
	output=$stderr assert_output "mig-recv: unknown option '--bogus'
Try 'mig-recv --help'."
	run -2 --separate-stderr mig-recv -x qemu-system-x86_64 -incoming -
	output=$stderr assert_output "mig-recv: unknown option '-x'
Try 'mig-recv --help'."
	run -2 --separate-stderr mig-recv --qmp
	output=$stderr assert_output "mig-recv: --qmp needs a value
Try 'mig-recv --help'."
	run -2 --separate-stderr mig-recv --timeout 0 qemu-system-x86_64 -incoming -
	output=$stderr assert_output "mig-recv: --timeout '0': not a number of seconds
Try 'mig-recv --help'."
	run -2 --separate-stderr mig-qemu
	output=$stderr assert_output "mig-qemu: no command given (migrate, checkpoint, restore, seal)
Try 'mig-qemu --help'."
	run -2 --separate-stderr mig-qemu bogus
	output=$stderr assert_output "mig-qemu: unknown command 'bogus' (migrate, checkpoint, restore, seal)
Try 'mig-qemu --help'."
	run -2 --separate-stderr mig-qemu seal --bogus
	output=$stderr assert_output "mig-qemu: seal: unknown option '--bogus'
Try 'mig-qemu --help'."
	run -2 --separate-stderr mig-qemu migrate --bandwidth lots q 'cat'
	output=$stderr assert_output "mig-qemu: --bandwidth 'lots': not a size
Try 'mig-qemu --help'."
	run -0 mig-qemu --version
	assert_output "mig-qemu (migkit) 0.1.0"
}

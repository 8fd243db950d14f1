#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-recv --from-stream and mig-qemu restore --from-stream: the stream
# describes the guest, the destination decides what runs on its host.
# Streams forged with META qemu.argv around a real QEMU stream, signed by
# the source the destination trusts (a compromised source host): their
# argv[0] and their host-resource options would each create a marker file;
# none may appear. Real QEMU loads what is left. Unsigned streams and other
# signers are refused before this point (tests/sign.bats).
# shellcheck disable=SC2016,SC2154

MIB=64

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/migrate
	migrate_test_setup
	ACCEL=$(qemu_accel)
	# the tests choose the emulator's origin themselves
	unset MIG_EMULATOR
	export MIG_RECV_CONF=$T/no-such.conf
	# a program that must never run: it leaves $T/ran behind
	printf '#!/bin/sh\ntouch "%s/ran"\n' "$T" > evil
	chmod +x evil
	# what the stream's source ran: a machine like the test stream's
	SRC=(-machine q35 -accel "$ACCEL" -nodefaults -no-user-config -m 64M
		-object "memory-backend-file,id=mem,size=64M,mem-path=$RAM,share=off"
		-machine memory-backend=mem)
	# and what the destination makes of it, before its own options
	KEPT="-machine q35 -accel $ACCEL -nodefaults -no-user-config -m 64M -object memory-backend-ram,id=mem,size=64M -machine memory-backend=mem"
	QMP_END="-qmp unix:$T/q.sock,server=on,wait=off -incoming fd:3"
	NOAUDIO="-audiodev none,id=mig-recv-none"
	# the source's signing pair: the destination trusts src.sign.pub
	mig-keygen -q --sign-pair "$T/src.sign"
}

teardown() {
	vm_cleanup_all
}

# forge OUT ARGV...: the test stream in an envelope whose META qemu.argv
# is ARGV (one argument a line), as a lying source would send it, signed
# with the source's key.
forge() {
	local out=$1
	shift
	mig-envelope --sign "$T/src.sign" --meta "qemu.argv=$(printf '%s\n' "$@" | jq -R . | jq -cs .)" \
		< "$STREAM" > "$out"
}

# assert_line on the standard error of the last `run --separate-stderr`.
err_line() {
	local output=$stderr
	local -a lines=("${stderr_lines[@]}")
	assert_line "$@"
}

# The options of the destination that let the test attach to it.
dst_opts() { echo "-pidfile $VM_DIR/dst.pid -qmp unix:$VM_DIR/dst.qmp,server=on,wait=off"; }

# No marker of the test was created ($T/ran, $T/marker-*).
assert_no_markers() {
	local m
	for m in "$T"/ran "$T"/marker-*; do
		[ ! -e "$m" ] || fail "$m was created"
	done
}

# The destination VM runs the emulator EXE and has loaded the stream.
assert_dst_runs() { # EXE
	vm_attach dst
	run vm_status dst
	assert_output prelaunch
	[ "$(readlink "/proc/$(cat "$VM_DIR/dst.pid")/exe")" = "$(readlink -f "$(command -v "$1")")" ]
}

@test "the evil program works: run by hand, it leaves its marker" {
	./evil
	[ -e ran ]
}

@test "argv[0] of the stream never runs: mig-recv --from-stream starts the destination's emulator" {
	forge forged "$T/evil" "${SRC[@]}"
	run -0 --separate-stderr mig-recv --from-stream --signer "$T/src.sign.pub" -- $(dst_opts) < forged
	assert_no_markers
	assert_dst_runs qemu-system-x86_64
	output=$stderr assert_output --regexp "^mig-recv: qemu-system-x86_64 loaded the stream and is prelaunch"
	# shown, never run: -v and --dry-run say what the source ran
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "qemu-system-x86_64 $KEPT -display none $NOAUDIO $QMP_END"
	output=$stderr assert_output "mig-recv: stdin: the source ran $T/evil; this host runs qemu-system-x86_64 (the default on x86_64)"
	assert_no_markers
}

@test "argv[0] of the stream never runs: mig-qemu restore --from-stream, --emulator passed on" {
	forge forged "$T/evil" "${SRC[@]}"
	printf '#!/bin/sh\ntouch "%s/wrapper-ran"\nexec qemu-system-x86_64 "$@"\n' "$T" > myqemu
	chmod +x myqemu
	run -0 --separate-stderr mig-qemu restore --from-stream --signer "$T/src.sign.pub" --emulator "$T/myqemu" forged -- $(dst_opts)
	assert_no_markers
	[ -e wrapper-ran ]
	assert_dst_runs qemu-system-x86_64
	vm_stop dst
	rm wrapper-ran
	# without --emulator: the default
	run -0 --separate-stderr mig-qemu restore --from-stream --signer "$T/src.sign.pub" forged -- $(dst_opts)
	assert_no_markers
	[ ! -e wrapper-ran ]
	assert_dst_runs qemu-system-x86_64
}

@test "every class of host-resource option is dropped, named with its reason, and creates nothing" {
	forge forged "$T/evil" "${SRC[@]}" \
		-netdev "tap,id=n0,script=$T/evil,downscript=no" \
		-chardev "file,id=c0,path=$T/marker-chardev" \
		-serial "file:$T/marker-serial" \
		-device "usb-kbd,id=k0,pcap=$T/marker-pcap" \
		-object "rng-random,id=r0,filename=$T/marker-rng" \
		-object "filter-dump,id=f0,netdev=n0,file=$T/marker-dump" \
		-drive "file=$T/marker-drive,format=raw,if=none,id=d0" \
		-plugin "file=$T/marker-plugin.so" \
		-readconfig "$T/marker-config" \
		-add-fd fd=3,set=2 \
		-bogus "$T/marker-bogus" \
		-device vfio-pci,host=01:00.0 \
		-global "virtio-net-pci.romfile=$T/marker-rom" \
		-global "driver=usb-kbd,property=pcap,value=$T/marker-pcap2" \
		-device '{"driver":"usb-kbd","pcap":"x"}' \
		-sandbox on -display gtk -vnc :1 \
		"$T/marker-disk.img" -name "$(printf 'a\033]0;b\007c')" -bogus2 "$(printf '\033[31mred')"
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "qemu-system-x86_64 $KEPT -name \$'a\\x1b]0;b\\x07c' -display none $NOAUDIO $QMP_END"
	local d="mig-recv: stdin: dropped from the stream:"
	output=$stderr assert_output "mig-recv: stdin: the source ran $T/evil; this host runs qemu-system-x86_64 (the default on x86_64)
$d -netdev tap,id=n0,script=$T/evil,downscript=no: names a host resource (give -netdev id=n0 yourself, or --allow netdev)
$d -chardev file,id=c0,path=$T/marker-chardev: names a host resource (give -chardev id=c0 yourself, or --allow chardev)
$d -serial file:$T/marker-serial: names a host resource (give -serial yourself, or --allow serial)
$d -device usb-kbd,id=k0,pcap=$T/marker-pcap: property pcap names a host resource (give -device id=k0 yourself, or --allow pcap)
$d -object rng-random,id=r0,filename=$T/marker-rng: property filename names a host resource (give -object id=r0 yourself, or --allow filename)
$d -object filter-dump,id=f0,netdev=n0,file=$T/marker-dump: object type filter-dump is not on the allow-list (give -object id=f0 yourself, or --allow filter-dump)
$d -drive file=$T/marker-drive,format=raw,if=none,id=d0: names a host resource (give -drive id=d0 yourself, or --allow drive)
$d -plugin file=$T/marker-plugin.so: runs or loads a program on this host (give -plugin yourself, or --allow plugin)
$d -readconfig $T/marker-config: names a host resource (give -readconfig yourself, or --allow readconfig)
$d -add-fd fd=3,set=2: names a host resource (give -add-fd yourself, or --allow add-fd)
$d -bogus $T/marker-bogus: is not on the allow-list (give -bogus yourself, or --allow bogus)
$d -device vfio-pci,host=01:00.0: vfio-pci is a host passthrough device (--allow vfio-pci)
$d -global virtio-net-pci.romfile=$T/marker-rom: property romfile names a host resource (give -global yourself, or --allow romfile)
$d -global driver=usb-kbd,property=pcap,value=$T/marker-pcap2: property pcap names a host resource (give -global yourself, or --allow pcap)
$d -device {\"driver\":\"usb-kbd\",\"pcap\":\"x\"}: is in JSON form, which mig-recv does not check (--allow device)
$d -sandbox on: sets how the emulator runs on this host (give -sandbox yourself, or --allow sandbox)
$d -display gtk: opens a display on this host (give -display yourself, or --allow display)
$d -vnc :1: opens a display on this host (give -vnc yourself, or --allow vnc)
$d $T/marker-disk.img: is not an option (QEMU would open it as a disk image)
$d -bogus2 \\x1b[31mred: is not on the allow-list (give -bogus2 yourself, or --allow bogus2)"
	# the real thing: QEMU loads the stream, nothing of the above exists
	run -0 --separate-stderr mig-recv --from-stream --signer "$T/src.sign.pub" -- $(dst_opts) < forged
	assert_no_markers
	assert_dst_runs qemu-system-x86_64
	err_line --index 0 "mig-recv: stdin: 20 options from the stream dropped (-v or --dry-run names them and why)"
	[ "$(grep -c "dropped from the stream:" <<< "$stderr")" = 0 ]
	vm_stop dst
	# -v names each one, on stderr, like --dry-run
	run -0 --separate-stderr mig-recv -v --from-stream --signer "$T/src.sign.pub" -- $(dst_opts) < forged
	[ "$(grep -c "^$d " <<< "$stderr")" = 20 ]
	err_line "$d -add-fd fd=3,set=2: names a host resource (give -add-fd yourself, or --allow add-fd)"
	output=$stderr refute_output --partial "$(printf '\033')"
	assert_no_markers
}

@test "properties that refer to the destination's own ids pass; a dropped option they need is the destination's to give" {
	forge forged "$T/evil" "${SRC[@]}" -netdev "tap,id=n0,script=$T/evil" \
		-device virtio-net-pci,netdev=n0,id=nic0,bus=pcie.0 \
		-object iothread,id=io0 -object rng-builtin,id=rb0 \
		-device virtio-rng-pci,rng=rb0 -serial "file:$T/marker-serial" \
		-rtc base=utc -boot "order=c,splash=$T/marker-splash" -global kvm-pit.lost_tick_policy=delay
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" -- \
		-netdev user,id=n0 -serial null < forged
	assert_output "qemu-system-x86_64 $KEPT -device virtio-net-pci,netdev=n0,id=nic0,bus=pcie.0 -object iothread,id=io0 -object rng-builtin,id=rb0 -device virtio-rng-pci,rng=rb0 -rtc base=utc -global kvm-pit.lost_tick_policy=delay -display none $NOAUDIO -netdev user,id=n0 -serial null $QMP_END"
	# the netdev and the serial port given by the destination: not dropped
	err_line --index 1 "mig-recv: stdin: dropped from the stream: -boot order=c,splash=$T/marker-splash: property splash names a host resource (give -boot yourself, or --allow splash)"
	[ "${#stderr_lines[@]}" = 2 ]
}

@test "--allow NAME keeps the option, property or driver it names, as the stream gave it" {
	forge forged "$T/evil" "${SRC[@]}" -chardev "file,id=c0,path=$T/marker-chardev" \
		-device "usb-kbd,id=k0,pcap=$T/marker-pcap" -device vfio-pci,host=01:00.0
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" \
		--allow pcap --allow chardev --allow vfio-pci < forged
	assert_output "qemu-system-x86_64 $KEPT -chardev file,id=c0,path=$T/marker-chardev -device usb-kbd,id=k0,pcap=$T/marker-pcap -display none $NOAUDIO $QMP_END"
	# one reason lifted, the next one is named
	err_line --index 1 "mig-recv: stdin: dropped from the stream: -device vfio-pci,host=01:00.0: property host names a host resource (--allow host)"
	# for real: the allowed chardev is opened by QEMU (the marker does
	# appear when allowed, so its absence above means something)
	forge forged2 "$T/evil" "${SRC[@]}" -chardev "file,id=c0,path=$T/allowed-chardev"
	run -0 --separate-stderr mig-recv --from-stream --signer "$T/src.sign.pub" --allow chardev -- $(dst_opts) < forged2
	assert_dst_runs qemu-system-x86_64
	[ -e allowed-chardev ]
	assert_no_markers
}

@test "the emulator: the overrides' first word, else --emulator, else MIG_EMULATOR, else the conf file, else qemu-system-ARCH" {
	forge forged "$T/evil" "${SRC[@]}"
	printf '# the destination'"'"'s emulator\n  emulator = /opt/old-qemu  \nother=x\nemulator=/opt/conf-qemu\n' > recv.conf
	local tail="$KEPT -display none $NOAUDIO $QMP_END"
	run -0 --separate-stderr env MIG_RECV_CONF="$T/recv.conf" MIG_EMULATOR=/opt/env-qemu \
		mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" --emulator /opt/opt-qemu /opt/word-qemu < forged
	assert_output "/opt/word-qemu $tail"
	output=$stderr assert_output "mig-recv: stdin: the source ran $T/evil; this host runs /opt/word-qemu (the command line)"
	run -0 --separate-stderr env MIG_RECV_CONF="$T/recv.conf" MIG_EMULATOR=/opt/env-qemu \
		mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" --emulator /opt/opt-qemu < forged
	assert_output "/opt/opt-qemu $tail"
	output=$stderr assert_output "mig-recv: stdin: the source ran $T/evil; this host runs /opt/opt-qemu (--emulator)"
	run -0 --separate-stderr env MIG_RECV_CONF="$T/recv.conf" MIG_EMULATOR=/opt/env-qemu \
		mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "/opt/env-qemu $tail"
	output=$stderr assert_output "mig-recv: stdin: the source ran $T/evil; this host runs /opt/env-qemu (MIG_EMULATOR)"
	run -0 --separate-stderr env MIG_RECV_CONF="$T/recv.conf" \
		mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "/opt/conf-qemu $tail"
	output=$stderr assert_output "mig-recv: stdin: the source ran $T/evil; this host runs /opt/conf-qemu ($T/recv.conf)"
	# an empty MIG_EMULATOR is no setting; no conf file: the default
	run -0 --separate-stderr env MIG_EMULATOR= mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "qemu-system-$(uname -m) $tail"
	# the stream's argv[0] is never used, even where it exists
	[ ! -e ran ]
	# through mig-qemu restore: --emulator and MIG_EMULATOR reach mig-recv
	printf '#!/bin/sh\ntouch "%s/wrapper-ran"\nexec qemu-system-x86_64 "$@"\n' "$T" > myqemu
	chmod +x myqemu
	run -0 --separate-stderr env MIG_EMULATOR="$T/myqemu" mig-qemu restore --from-stream --signer "$T/src.sign.pub" forged -- $(dst_opts)
	[ -e wrapper-ran ]
	assert_dst_runs qemu-system-x86_64
	assert_no_markers
}

@test "a conf file that cannot be read: exit 3, nothing started" {
	forge forged "$T/evil" "${SRC[@]}"
	mkdir conf-dir
	run -3 --separate-stderr env MIG_RECV_CONF="$T/conf-dir" mig-recv --from-stream --signer "$T/src.sign.pub" -- $(dst_opts) < forged
	output=$stderr assert_output "mig-recv: $T/conf-dir: Is a directory"
	[ ! -e dst.pid ]
	assert_no_markers
}

@test "-display none is added only when no display is given" {
	forge forged "$T/evil" "${SRC[@]}"
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" -- -vnc :5 < forged
	assert_output "qemu-system-x86_64 $KEPT $NOAUDIO -vnc :5 $QMP_END"
	forge forged2 "$T/evil" "${SRC[@]}" -display none
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged2
	assert_output "qemu-system-x86_64 $KEPT -display none $NOAUDIO $QMP_END"
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" --allow vnc -- -display none < forged
	assert_output "qemu-system-x86_64 $KEPT $NOAUDIO -display none $QMP_END"
}

@test "what QEMU would take from the host by default is added when not given: no NIC, no sound system" {
	# without -nodefaults QEMU adds an e1000 on user-mode networking,
	# which reaches the host's network and its 127.0.0.1 (10.0.2.2)
	local bare=(-machine q35 -accel "$ACCEL" -no-user-config -m 64M)
	forge forged "$T/evil" "${bare[@]}" -nic "user,hostfwd=tcp::2222-:22"
	run -0 --separate-stderr mig-recv -n -v --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "qemu-system-x86_64 -machine q35 -accel $ACCEL -no-user-config -m 64M -display none -nic none $NOAUDIO $QMP_END"
	err_line --partial "dropped from the stream: -nic user,hostfwd=tcp::2222-:22: "
	# the destination's own network, or sound, replaces the default
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" -- -nic user -audiodev alsa,id=snd0 < forged
	assert_output "qemu-system-x86_64 -machine q35 -accel $ACCEL -no-user-config -m 64M -display none -nic user -audiodev alsa,id=snd0 $QMP_END"
	# a sound device from the stream gets the silent backend
	forge forged2 "$T/evil" "${SRC[@]}" -device intel-hda -device hda-duplex
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged2
	assert_output "qemu-system-x86_64 $KEPT -device intel-hda -device hda-duplex -display none $NOAUDIO $QMP_END"
}

@test "an option never passes as another's argument, --allow or not" {
	# -async-teardown takes no argument: -s (a gdb server on tcp::1234)
	# must be judged on its own, not taken as its argument
	forge forged "$T/evil" "${SRC[@]}" -async-teardown -s -D -m
	run -0 --separate-stderr mig-recv -n -v --from-stream --allow async-teardown --allow D --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "qemu-system-x86_64 $KEPT -async-teardown -display none $NOAUDIO $QMP_END"
	err_line --partial "dropped from the stream: -s: "
	err_line --partial "dropped from the stream: -D -m: is followed by an option, -m, where its argument should be"
}

@test "memory backends in every form become anonymous RAM of the same id and size" {
	forge forged "$T/evil" "${SRC[@]}" \
		-object qom-type=memory-backend-memfd,id=m0,size=64M,hugetlb=on,host-nodes=0,policy=bind,prealloc=on \
		-object id=m1,qom-type=memory-backend-file,mem-path=/dev/hugepages,size=2M \
		-object '{"qom-type":"memory-backend-file","id":"m2","size":1048576,"mem-path":"/x"}'
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "qemu-system-x86_64 $KEPT -object memory-backend-ram,id=m0,size=64M -object memory-backend-ram,id=m1,size=2M -object '{\"qom-type\":\"memory-backend-ram\",\"id\":\"m2\",\"size\":1048576}' -display none $NOAUDIO $QMP_END"
}

@test "an honest --send-config checkpoint: nothing dropped, the source's emulator shown" {
	source_vm src -S -name honest
	run -0 --separate-stderr mig-qemu checkpoint --send-config --sign "$T/src.sign" --timeout 60 "$VM_DIR/src.mq" ckpt
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < ckpt
	assert_output "qemu-system-x86_64 -machine q35 -accel $ACCEL -nodefaults -display none -no-user-config -name src -m 64M -object memory-backend-ram,id=mem,size=64M -machine memory-backend=mem -name honest $NOAUDIO $QMP_END"
	output=$stderr assert_output "mig-recv: stdin: the source ran $QEMU; this host runs qemu-system-x86_64 (the default on x86_64)"
}

@test "META printed with -v has its control characters escaped" {
	mig-envelope --sign "$T/src.sign" --meta "note=$(printf 'x\033[2Jy')" --meta 'qemu.argv=["qemu"]' < "$STREAM" > odd
	run -0 --separate-stderr mig-recv -v -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < odd
	err_line --index 0 'mig-recv: META note=x\x1b[2Jy'
	output=$stderr refute_output --partial "$(printf '\033')"
}

@test "usage: --emulator and --allow are for --from-stream" {
	run -2 --separate-stderr mig-recv --emulator /bin/true qemu-system-x86_64 -incoming - < "$STREAM"
	err_line --index 0 "mig-recv: --emulator and --allow are for --from-stream"
	run -2 --separate-stderr mig-recv --allow netdev qemu-system-x86_64 -incoming - < "$STREAM"
	err_line --index 0 "mig-recv: --emulator and --allow are for --from-stream"
	run -2 --separate-stderr mig-qemu restore --allow netdev "$STREAM" -- qemu-system-x86_64
	err_line --index 0 "mig-qemu: restore: --emulator and --allow are for --from-stream"
	run -2 --separate-stderr mig-qemu restore --from-stream --signer "$T/src.sign.pub" --emulator
	err_line --index 0 "mig-qemu: restore: --emulator needs a value"
}

@test "QEMU's syntax read as QEMU reads it: escaped commas, dotted keys, explicit driver=, --options, flags" {
	forge forged "$T/evil" "${SRC[@]}" \
		-device 'virtio-rng-pci,id=a,,romfile=/x' \
		-device 'usb-kbd,id=k1,pcap=a,,b' \
		-object 'iothread,id=io1,x.file=/y' \
		-device 'driver=vfio-pci,id=v1' \
		-object 'qom-type=filter-dump,id=f1' \
		-rtc 'file' \
		--netdev user,id=n1 \
		-cpu host -s \
		-object 'memory-backend-file,id=m2,,prealloc=on,size=1M,mem-path=/x' \
		-name
	run -0 --separate-stderr mig-recv -n --from-stream --signer "$T/src.sign.pub" --qmp "$T/q.sock" < forged
	assert_output "qemu-system-x86_64 $KEPT -device virtio-rng-pci,id=a,,romfile=/x -cpu host -object memory-backend-ram,id=m2,,prealloc=on,size=1M -display none $NOAUDIO $QMP_END"
	local d="mig-recv: stdin: dropped from the stream:"
	err_line --index 1 "$d -device usb-kbd,id=k1,pcap=a,,b: property pcap names a host resource (give -device id=k1 yourself, or --allow pcap)"
	err_line --index 2 "$d -object iothread,id=io1,x.file=/y: property file names a host resource (give -object id=io1 yourself, or --allow file)"
	err_line --index 3 "$d -device driver=vfio-pci,id=v1: vfio-pci is a host passthrough device (give -device id=v1 yourself, or --allow vfio-pci)"
	err_line --index 4 "$d -object qom-type=filter-dump,id=f1: object type filter-dump is not on the allow-list (give -object id=f1 yourself, or --allow filter-dump)"
	err_line --index 5 "$d -rtc file: property file names a host resource (give -rtc yourself, or --allow file)"
	err_line --index 6 "$d --netdev user,id=n1: names a host resource (give -netdev id=n1 yourself, or --allow netdev)"
	err_line --index 7 "$d -s: names a host resource (give -s yourself, or --allow s)"
	err_line --index 8 "$d -name: has no argument"
	[ "${#stderr_lines[@]}" = 9 ]
}

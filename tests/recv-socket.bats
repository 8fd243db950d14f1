#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-recv's own QMP socket (TMPDIR/mig-recv.PID.qmp when the emulator's
# arguments name none) does not outlive an emulator that does not live on:
# removed after a failure and when a signal ends mig-recv (issue 13; the
# emulator, killed, could not remove it itself). Real QEMU, a real stream.
# shellcheck disable=SC2016,SC2154

MIB=64

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/migrate
	migrate_test_setup
	mkdir "$T/tmp"
}

teardown() {
	[ -z "${RECV:-}" ] || kill -KILL "$RECV" 2>/dev/null || true
	exec 7>&- 2>/dev/null || true
	vm_cleanup_all
}

# QEMU arguments without a monitor of their own: mig-recv adds its socket.
bare_dest() {
	echo "qemu-system-x86_64 -machine q35 -accel $(qemu_accel) -nodefaults -display none" \
		"-no-user-config -m ${MIB}M -object memory-backend-ram,id=mem,size=${MIB}M" \
		"-machine memory-backend=mem -pidfile $T/emu.pid -incoming -"
}

sockets() { find "$T/tmp" -name 'mig-recv.*.qmp'; }
socket_there() { [ -n "$(sockets)" ]; }

@test "a stream the emulator refuses: exit 1, no emulator, no socket left" {
	head -c 20000000 "$STREAM" > rawcut
	run -1 --separate-stderr env -u XDG_RUNTIME_DIR TMPDIR="$T/tmp" \
		mig-recv $(bare_dest) < rawcut
	output=$stderr assert_output --partial "QEMU stream: truncated"
	[ -s emu.pid ] # it was started, and so was its socket
	wait_for 10 gone "$(cat emu.pid)" || fail "emulator left running"
	[ -z "$(sockets)" ] || fail "left behind: $(sockets)"
	# a socket named in the arguments is the caller's: here QEMU's own,
	# removed by nobody but QEMU (it was killed, so it stays)
}

@test "SIGTERM while loading: the emulator and the socket are gone" {
	mkfifo feed
	# the stream's first part only, the pipe kept open: mig-recv waits
	env -u XDG_RUNTIME_DIR TMPDIR="$T/tmp" mig-recv $(bare_dest) < feed 2> err &
	RECV=$!
	exec 7> feed
	head -c 8000000 "$STREAM" >&7
	wait_for 30 socket_there || fail "no socket appeared"
	wait_for 30 test -s emu.pid || fail "no emulator started"
	kill -TERM "$RECV"
	local st=0
	wait "$RECV" || st=$?
	RECV=
	[ "$st" = 143 ] || fail "mig-recv exited $st, not by SIGTERM (143): $(cat err)"
	[ -z "$(sockets)" ] || fail "left behind: $(sockets)"
	wait_for 10 gone "$(cat emu.pid)" || fail "emulator left running"
}

@test "SIGHUP and SIGUSR1 too; a successful load keeps the socket, the VM's monitor" {
	local sig
	for sig in HUP USR1; do
		rm -f emu.pid
		mkfifo "feed.$sig"
		# mig-recv keeps a signal ignored that it was given ignored
		# (nohup, a background job): the signal's own default here
		env --default-signal="$sig" -u XDG_RUNTIME_DIR TMPDIR="$T/tmp" \
			mig-recv $(bare_dest) < "feed.$sig" 2> err &
		RECV=$!
		exec 7> "feed.$sig"
		head -c 1000000 "$STREAM" >&7
		wait_for 30 socket_there || fail "$sig: no socket appeared"
		wait_for 30 test -s emu.pid || fail "$sig: no emulator started"
		kill "-$sig" "$RECV"
		wait "$RECV" || true
		RECV=
		exec 7>&-
		[ -z "$(sockets)" ] || fail "$sig: left behind: $(sockets)"
		wait_for 10 gone "$(cat emu.pid)" || fail "$sig: emulator left running"
	done
	run -0 --separate-stderr env -u XDG_RUNTIME_DIR TMPDIR="$T/tmp" \
		mig-recv $(bare_dest) < "$STREAM"
	socket_there || fail "the running VM's monitor was removed"
	kill -KILL "$(cat emu.pid)"
	wait_for 10 gone "$(cat emu.pid)"
	rm -f "$T"/tmp/mig-recv.*.qmp
}

# The emulator's start-up (seconds under TCG) overlaps the stream's
# arrival, as QEMU's own "-incoming tcp:" does: mig-recv starts it before
# reading a byte when its command line is given.
# recv_fed_late FIFO FILE: mig-recv reads FIFO; once its emulator is up
# (its pid file written, not a byte sent), FILE goes in and the FIFO is
# closed. RECV_ST: mig-recv's exit status; err: what it said.
recv_fed_late() {
	rm -f emu.pid
	mkfifo "$1"
	env -u XDG_RUNTIME_DIR TMPDIR="$T/tmp" mig-recv $(bare_dest) < "$1" 2> err &
	RECV=$!
	exec 7> "$1" # held open, nothing written
	wait_for 30 test -s emu.pid ||
		fail "$2: the emulator was not started before the stream: $(cat err)"
	wait_for 10 socket_there || fail "$2: no monitor socket"
	# mig-recv stops reading a stream it refuses: the exit status says
	cat "$2" >&7 2>/dev/null || true
	exec 7>&-
	RECV_ST=0
	wait "$RECV" || RECV_ST=$?
	RECV=
}

@test "the emulator starts before the stream's first byte, and loads the stream once it comes" {
	recv_fed_late feed "$STREAM"
	[ "$RECV_ST" = 0 ] || fail "mig-recv exited $RECV_ST: $(cat err)"
	run cat err
	# the test stream is of a VM that never ran
	assert_output --regexp "^mig-recv: qemu-system-x86_64 loaded the stream and is prelaunch \(pid $(cat emu.pid), QMP "
	kill -KILL "$(cat emu.pid)"
	wait_for 10 gone "$(cat emu.pid)"
	rm -f "$T"/tmp/mig-recv.*.qmp
}

# QEMU 7.2 spins on an incoming pipe closed before its first byte: the
# emulator is up first here, so this tests that it is stopped instead.
@test "a stream refused before its first byte reaches the emulator: it is stopped, exit 1, the stream's fault alone said" {
	local input
	"$MIG_BIN/mig-compress" < "$STREAM" > layer
	: > empty
	for input in empty layer; do
		recv_fed_late "feed.$input" "$input"
		[ "$RECV_ST" = 1 ] || fail "$input: mig-recv exited $RECV_ST: $(cat err)"
		run cat err
		case $input in
		empty) assert_output "mig-recv: stdin: the stream is empty" ;;
		layer) assert_output "mig-recv: stdin: input is a compress layer, not a QEMU stream: peel it first (mig-decompress | mig-recv ...)" ;;
		esac
		wait_for 10 gone "$(cat emu.pid)" || fail "$input: emulator left running"
		[ -z "$(sockets)" ] || fail "$input: left behind: $(sockets)"
	done
}

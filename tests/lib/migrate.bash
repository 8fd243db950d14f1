# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# tests/lib/migrate.bash - what the migration tests (glue, faults, load)
# share: source and destination VMs for mig-qemu / mig-recv, a stage
# wrapper that leaves its pid behind so a test can kill it, and the checks
# that nothing was left running.  A test file's setup() loads it and calls
# migrate_test_setup; the file sets MIB (the VMs' RAM in MiB), and its
# setup_file() makes the test stream (test_stream_setup) and starts the
# sshd (sshd_start).
# shellcheck disable=SC2016,SC2154

# What every migration test starts with: the libraries, the test's own
# directory as the current one, as VM_DIR (the VMs' pid files and
# sockets) and as T, RAM the test stream's RAM image (the source VM's), the
# stage wrapper, and SSH the transport to the file's sshd.
migrate_test_setup() {
	load lib/common
	load lib/qemu
	load lib/sshd
	cd "$BATS_TEST_TMPDIR" || exit 1
	export VM_DIR=$BATS_TEST_TMPDIR
	RAM=$STREAM.ram
	T=$BATS_TEST_TMPDIR
	stage_wrapper_setup
	# shellcheck disable=SC2034 # used by the tests' pipelines
	SSH="mig-ssh -F $SSH_CFG sshd-test"
}

# $T/stage NAME CMD...: run CMD (exec, same pid) after writing its pid to
# $T/NAME.stage.
stage_wrapper_setup() {
	printf '#!/bin/sh\nn=$1; shift; echo $$ > "%s/$n.stage"; exec "$@"\n' "$T" > "$T/stage"
	chmod +x "$T/stage"
}

# The destination's QEMU arguments for mig-recv (pid file and QMP socket
# in $VM_DIR under NAME, for vm_attach).
dest() { # NAME [MIB] [extra QEMU args]
	local name=$1 mib=${2:-$MIB}
	shift 2 2>/dev/null || shift
	echo "qemu-system-x86_64 -machine q35 -accel $(qemu_accel) -nodefaults -display none" \
		"-no-user-config -name $name -m ${mib}M -object memory-backend-ram,id=mem,size=${mib}M" \
		"-machine memory-backend=mem -pidfile $VM_DIR/$name.pid" \
		"-qmp unix:$VM_DIR/$name.qmp,server=on,wait=off $* -incoming -"
}

# A source VM with a second monitor for mig-qemu (QEMU serves one client
# per monitor): $VM_DIR/NAME.mq
source_vm() { # NAME [more QEMU args]
	local name=$1
	shift
	vm_start_source "$name" "$RAM" "$MIB" -qmp "unix:$VM_DIR/$name.mq,server=on,wait=off" "$@"
}

# Wait (bounded) until the stage NAME has started; print its pid.
stage_pid() {
	wait_for 20 test -s "$T/$1.stage" || return 1
	cat "$T/$1.stage"
}

# The seal of the migration QEMU NAME runs (child of QEMU's exec shell).
seal_pid() { # NAME
	local sh
	sh=$(pgrep -P "$(cat "$VM_DIR/$1.pid")" | head -1)
	[ -n "$sh" ] && pgrep -f "mig-qemu seal" -P "$sh"
}

gone() { ! _vm_pid_alive "$1"; }

# No destination left running: its QEMU (pid file) is gone.
assert_no_dest() {
	local pid
	[ -s "$VM_DIR/$1.pid" ] || return 0
	pid=$(cat "$VM_DIR/$1.pid")
	wait_for 10 gone "$pid" || fail "destination $1 (pid $pid) still running"
}

# PIDs of processes whose command line mentions DIR, or whose environment
# has TMPDIR in DIR (how a test marks the stages it starts, whatever their
# arguments: run them with TMPDIR=DIR/...), but the VMs of this shell that
# are still tracked (QEMU and its socat), the pids in KEEP_PIDS (a server of
# the test) and pgrep itself.
procs_in() { # DIR
	local keep=" ${KEEP_PIDS:-} " f p
	for f in "$VM_DIR"/*.pid; do
		[ -s "$f" ] || continue
		case $f in *.feed.pid) continue ;; esac
		p=$(cat "$f")
		# a VM this shell started or attached (it has a QMP session)
		[ -e "${f%.pid}.socat.pid" ] || [ -e "${f%.socat.pid}.qmp" ] || continue
		keep="$keep$p "
	done
	{
		pgrep -f -- "$1"
		grep -lsaF -e "TMPDIR=$1/" /proc/[0-9]*/environ | cut -d/ -f3
	} | sort -u | while read -r p; do
		case $keep in *" $p "*) ;; *) echo "$p" ;; esac
	done
}

_no_procs_in() { [ -z "$(procs_in "$1")" ]; }

# Nothing of the test is left running in DIR (bounded wait).
assert_no_procs_in() { # DIR
	wait_for "${2:-15}" _no_procs_in "$1" && return 0
	local p
	for p in $(procs_in "$1"); do
		echo "stray: $p $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)" >&2
	done
	fail "processes of the test still running"
}

# Print ram.transferred of the outgoing migration of NAME (0 before it).
transferred() {
	qmp "$1" '{"execute":"query-migrate"}' | jq -r '.ram.transferred // 0'
}

# Wait (bounded) until NAME's migration has moved at least BYTES; fails if
# it ended first.
wait_transferred() { # NAME BYTES [TIMEOUT]
	local deadline=$((SECONDS + ${3:-30})) j st n
	while [ "$SECONDS" -lt "$deadline" ]; do
		j=$(qmp "$1" '{"execute":"query-migrate"}') || return 1
		st=$(jq -r '.status // "none"' <<< "$j")
		n=$(jq -r '.ram.transferred // 0' <<< "$j")
		case $st in
		completed | failed | cancelled)
			echo "wait_transferred: migration $st before $2 bytes ($n)" >&2
			return 1 ;;
		esac
		[ "$n" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "wait_transferred: not $2 bytes after ${3:-30} s" >&2
	return 1
}

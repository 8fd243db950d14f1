# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# tests/lib/guest.bash - a real Linux guest for tests and benchmarks.
#
# The firmware-only VMs of tests/lib/qemu.bash barely touch their memory
# while they run.  This guest is Debian's cloud kernel (linux-image-cloud-
# amd64) booted with an initramfs made at test time by scripts/make-guest:
# a static busybox and scripts/guest-init as /init, which fills page cache
# (a tmpfs) with a mix of random data, text, binaries and zeros, then
# rewrites part of it with fresh random data at a given rate and beats once
# a second on the serial console (see scripts/guest-init for its lines and
# parameters: mig.fill=MB mig.dirty=MBPS mig.pattern= mig.region= mig.time=).
# A migrated guest that beats on at the destination, counting on from where
# it was, really runs there.
#
# Load lib/qemu first (these functions use its vm_* helpers: the guest is a
# VM of $VM_DIR like any other, stopped by vm_stop and vm_cleanup_all).
# Files in $VM_DIR per guest: NAME.serial (its console; the destination
# writes its own), NAME.mq (a second QMP monitor for mig-qemu), NAME.times
# (host milliseconds: launch, UP seen, READY seen), plus qemu.bash's files.
#
# Accelerator: KVM where the kernel boots under it, else TCG.  The first
# guest_start (or guest_probe_accel) tries KVM when /dev/kvm works and waits
# (bounded: GUEST_KVM_TIMEOUT) for the guest's UP line; on this kind of
# machine (nested KVM) the kernel hangs early in boot, so it falls back to
# TCG.  The verdict is GUEST_ACCEL (exported; set it to skip the probe) and
# GUEST_ACCEL_WHY; every guest and destination of the shell uses it.
#
# Functions (every wait bounded; a timeout fails with a message on stderr):
#   guest_build [DIR]           make the initrd (scripts/make-guest) in DIR
#                               (default $VM_DIR/guest, once per shell);
#                               sets and exports GUEST_KERNEL, GUEST_INITRD
#   guest_probe_accel           decide GUEST_ACCEL once (for setup_file: a
#                               guest with no fill tried under KVM, if any)
#   guest_append [ARGS...]      print the kernel command line with ARGS
#   guest_start NAME MIB [ARGS...] [-- QEMU ARGS...]
#                               boot a guest of MIB MiB with kernel ARGS
#                               (e.g. mig.fill=64 mig.dirty=4), wait until
#                               its /init runs (not for the fill)
#   guest_wait_ready NAME [TIMEOUT]
#                               wait for READY, print its MB
#   guest_wait_line NAME REGEX TIMEOUT
#                               wait for a console line matching REGEX (ERE),
#                               print it; fails at once on an ERROR line, if
#                               QEMU exits or the guest stops dead
#   guest_beat NAME             print the last complete beat number (0: none)
#   guest_wait_beat NAME N [TIMEOUT]
#                               wait until the beat reaches N, print it
#   guest_beats FILE...         print the beat numbers of the console files,
#                               read as one (a line cut by a migration joins)
#   guest_dest NAME MIB [ARGS...]
#                               print, quoted for sh, the QEMU command line
#                               of a destination for mig-recv (same kernel,
#                               initrd, command line, memory; its own serial,
#                               pid file and QMP socket in $VM_DIR, for
#                               vm_attach)
#   guest_dest_argv NAME MIB [ARGS...]
#                               the same as the array GUEST_DEST_ARGV
#   guest_times NAME            print "boot S fill S" (host seconds)
#
# Tunables: GUEST_ACCEL, GUEST_KERNEL, GUEST_KVM_TIMEOUT (s, default 10),
# GUEST_UP_TIMEOUT (s, 60), GUEST_READY_TIMEOUT (s, 300), GUEST_CPU.
#
# Measured here (2 vCPUs, nested KVM, so TCG): boot to UP 3-6.5 s, a 64 MB
# fill about 3 s, 600 MB (1 GiB guest) 17 s; see README.md (Tests) for the
# migration figures.

_GUEST_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck disable=SC2120 # DIR is for scripts; the library passes none
guest_build() {
	local dir=${1:-} out
	if [[ -z $dir ]]; then
		[[ -n ${GUEST_INITRD:-} && -s $GUEST_INITRD ]] && return 0
		_vm_dir_init || return 1
		dir=$VM_DIR/guest
	fi
	out=$("$_GUEST_LIB_DIR/../../scripts/make-guest" "$dir") || return 1
	GUEST_KERNEL=$(sed -n 1p <<<"$out")
	GUEST_INITRD=$(sed -n 2p <<<"$out")
	export GUEST_KERNEL GUEST_INITRD
}

guest_append() {
	# panic=-1 and QEMU's -no-reboot: a guest that panics ends its QEMU
	# instead of hanging a test.
	printf '%s\n' "console=ttyS0 quiet panic=-1${*:+ $*}"
}

# _guest_qemu_args NAME MIB ARGS...: into the array _GUEST_ARGS, what
# a guest's QEMU needs besides qemu.bash's own (machine, QMP).
_guest_qemu_args() {
	local name=$1 mib=$2; shift 2
	local d=$VM_DIR
	_GUEST_ARGS=(-m "${mib}M" -object "memory-backend-ram,id=mem,size=${mib}M"
		-machine memory-backend=mem -no-reboot
		-kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD"
		-append "$(guest_append "$@")" -serial "file:$d/$name.serial")
	[[ -z ${GUEST_CPU:-} ]] || _GUEST_ARGS+=(-cpu "$GUEST_CPU")
}

# _guest_launch NAME MIB ACCEL KERNEL-ARGS -- QEMU-ARGS: start QEMU with
# ACCEL, a second monitor NAME.mq for mig-qemu; record the launch time.
_guest_launch() {
	local name=$1 mib=$2 accel=$3; shift 3
	local -a kargs=() qargs=()
	while (($#)) && [[ $1 != -- ]]; do kargs+=("$1"); shift; done
	(($#)) && shift
	qargs=("$@")
	rm -f "$VM_DIR/$name.serial" "$VM_DIR/$name.mq"
	_guest_qemu_args "$name" "$mib" "${kargs[@]}"
	_vm_now_ms >"$VM_DIR/$name.times"
	# vm_start takes the accelerator from QEMU_ACCEL and exports it: put
	# back what the other VMs of the shell use.
	local saved=${QEMU_ACCEL-} was_set=${QEMU_ACCEL+1} rc=0
	QEMU_ACCEL=$accel
	vm_start "$name" "${_GUEST_ARGS[@]}" \
		-qmp "unix:$VM_DIR/$name.mq,server=on,wait=off" "${qargs[@]}" || rc=$?
	if [[ -n $was_set ]]; then QEMU_ACCEL=$saved; else unset QEMU_ACCEL; fi
	return "$rc"
}

# _guest_dead NAME: true (and why on stdout) if the guest can no longer
# print: QEMU gone, or stopped by an error, a panic or a shutdown.
_guest_dead() {
	local name=$1 st
	vm_alive "$name" || { echo "QEMU exited"; return 0; }
	st=$(QMP_TIMEOUT=5 vm_status "$name" 2>/dev/null) || { echo "no QMP answer"; return 0; }
	case $st in
	internal-error | guest-panicked | shutdown | io-error)
		echo "QEMU reports $st"; return 0 ;;
	esac
	return 1
}

# The console's complete lines so far, without their "\r" (the tty's
# ONLCR): a line QEMU is still writing is not one yet (CI once read
# "MIGGUEST ERROR mig.region=1" of "... mig.region=16 is larger ...").
_guest_console() {
	local c
	c=$(tr -d '\r\0' <"$1" 2>/dev/null; echo x)
	c=${c%x}
	printf '%s' "${c%"${c##*$'\n'}"}"
}

guest_wait_line() {
	local name=$1 re=$2 tmo=$3 deadline line why next_check=0 now
	local f=$VM_DIR/$name.serial
	deadline=$(($(_vm_now_ms) + $(_vm_ms "$tmo")))
	while :; do
		line=$(_guest_console "$f" | grep -a -E -m 1 -- "$re") || true
		[[ -n $line ]] && { printf '%s\n' "$line"; return 0; }
		line=$(_guest_console "$f" | grep -a -m 1 '^MIGGUEST ERROR') || true
		if [[ -n $line ]]; then
			_vm_err "guest '$name': $line"
			return 1
		fi
		now=$(_vm_now_ms)
		# A dead guest says nothing more: ask QEMU about once a second.
		if ((now >= next_check)); then
			if why=$(_guest_dead "$name"); then
				_vm_err "guest '$name' ($GUEST_ACCEL): $why before a line /$re/; console:"
				tail -n 5 "$f" 2>/dev/null | sed "s/^/  [$name serial] /" >&2
				vm_log_tail "$name" 5 >&2
				return 1
			fi
			next_check=$((now + 1000))
		fi
		if ((now > deadline)); then
			_vm_err "guest '$name' ($GUEST_ACCEL): no line /$re/ within ${tmo}s; console:"
			tail -n 5 "$f" 2>/dev/null | sed "s/^/  [$name serial] /" >&2
			return 1
		fi
		# The console is a plain file QEMU appends to: poll it.
		_vm_tick 0.05
	done
}

# _guest_try NAME MIB ACCEL TIMEOUT ARGS...: launch and wait for UP.
_guest_try() {
	local name=$1 mib=$2 accel=$3 tmo=$4; shift 4
	local GUEST_ACCEL=$accel
	_guest_launch "$name" "$mib" "$accel" "$@" || return 1
	guest_wait_line "$name" '^MIGGUEST UP' "$tmo" >/dev/null || return 1
	_vm_now_ms >>"$VM_DIR/$name.times"
}

# _guest_decide NAME MIB ARGS...: boot NAME under KVM if /dev/kvm works;
# set GUEST_ACCEL (kvm if the kernel came up, else tcg) and GUEST_ACCEL_WHY.
# Returns 0 only with NAME running under KVM.
_guest_decide() {
	local name=$1 mib=$2; shift 2
	local tmo=${GUEST_KVM_TIMEOUT:-10} err=$VM_DIR/$name.kvm-try
	GUEST_ACCEL=tcg GUEST_ACCEL_WHY="no usable /dev/kvm"
	export GUEST_ACCEL GUEST_ACCEL_WHY
	[[ $(qemu_accel) == kvm ]] || return 1
	# Not in $(...): the VM and its QMP session belong to this shell.
	if _guest_try "$name" "$mib" kvm "$tmo" "$@" 2>"$err"; then
		GUEST_ACCEL=kvm GUEST_ACCEL_WHY="the kernel boots under KVM"
		return 0
	fi
	vm_stop "$name" 2>/dev/null || true
	GUEST_ACCEL_WHY="KVM did not boot the kernel: $(head -n 1 "$err" | sed 's/; console:$//')"
	_vm_err "guest: using TCG ($GUEST_ACCEL_WHY)"
	return 1
}

guest_start() {
	local name=$1 mib=$2; shift 2
	[[ $mib =~ ^[1-9][0-9]*$ ]] || { _vm_err "guest_start: bad size '$mib' (MiB)"; return 1; }
	_vm_check_name "$name" || return 1
	_vm_dir_init || return 1
	guest_build || return 1
	if [[ -z ${GUEST_ACCEL:-} ]]; then
		_guest_decide "$name" "$mib" "$@" && return 0
	fi
	_guest_try "$name" "$mib" "$GUEST_ACCEL" "${GUEST_UP_TIMEOUT:-60}" "$@"
}

guest_probe_accel() {
	[[ -n ${GUEST_ACCEL:-} ]] && return 0
	_vm_dir_init || return 1
	guest_build || return 1
	if _guest_decide probe 128 mig.time=60; then vm_stop probe; fi
	return 0
}

guest_wait_ready() {
	local name=$1 tmo=${2:-${GUEST_READY_TIMEOUT:-300}} line
	line=$(guest_wait_line "$name" '^MIGGUEST READY [0-9]+ MB$' "$tmo") || return 1
	_vm_now_ms >>"$VM_DIR/$name.times"
	line=${line#MIGGUEST READY }
	printf '%s\n' "${line% MB}"
}

guest_beats() {
	local f
	for f in "$@"; do _guest_console "$f"; done |
		sed -n -E 's/^MIGGUEST BEAT ([0-9]+) [0-9]+$/\1/p'
}

guest_beat() {
	local n
	n=$(guest_beats "$VM_DIR/$1.serial" | tail -n 1)
	printf '%s\n' "${n:-0}"
}

guest_wait_beat() {
	local name=$1 want=$2 tmo=${3:-30} n why now next_check=0 deadline
	deadline=$(($(_vm_now_ms) + $(_vm_ms "$tmo")))
	while :; do
		n=$(guest_beat "$name")
		((n >= want)) && { echo "$n"; return 0; }
		now=$(_vm_now_ms)
		if ((now >= next_check)); then
			if why=$(_guest_dead "$name"); then
				_vm_err "guest '$name' ($GUEST_ACCEL): $why at beat $n, waiting for $want"
				return 1
			fi
			next_check=$((now + 1000))
		fi
		if ((now > deadline)); then
			_vm_err "guest '$name': beat $n, not $want, after ${tmo}s"
			tail -n 3 "$VM_DIR/$name.serial" 2>/dev/null | sed "s/^/  [$name serial] /" >&2
			return 1
		fi
		# The console is a plain file QEMU appends to: poll it.
		_vm_tick 0.1
	done
}

guest_dest_argv() {
	local name=$1 mib=$2; shift 2
	guest_build || return 1
	[[ -n ${GUEST_ACCEL:-} ]] || { _vm_err "guest_dest: no GUEST_ACCEL (start the source first)"; return 1; }
	_guest_qemu_args "$name" "$mib" "$@"
	rm -f "$VM_DIR/$name.serial"
	GUEST_DEST_ARGV=("$QEMU" -machine q35 -accel "$GUEST_ACCEL" -nodefaults
		-display none -no-user-config -name "$name" "${_GUEST_ARGS[@]}"
		-pidfile "$VM_DIR/$name.pid" -qmp "unix:$VM_DIR/$name.qmp,server=on,wait=off"
		-incoming -)
}

guest_dest() {
	local w out=""
	guest_dest_argv "$@" || return 1
	for w in "${GUEST_DEST_ARGV[@]}"; do out+="$(_vm_shq "$w") "; done
	printf '%s\n' "${out% }"
}

guest_times() {
	local -a t
	mapfile -t t <"$VM_DIR/$1.times" || return 1
	local boot=$((t[1] - t[0])) fill=$((${t[2]:-${t[1]}} - t[1]))
	printf 'boot %d.%02d fill %d.%02d\n' $((boot / 1000)) $((boot % 1000 / 10)) \
		$((fill / 1000)) $((fill % 1000 / 10))
}

# guest_incoming NAME MIB FILE [KERNEL-ARGS...]: a destination of the guest
# (its devices, kernel and memory) loading the stream in FILE, paused
# once loaded.
guest_incoming() {
	local name=$1 mib=$2 file=$3
	shift 3
	_guest_qemu_args "$name" "$mib" "$@"
	QEMU_ACCEL=$GUEST_ACCEL vm_start_incoming "$name" "cat $(vm_shq "$file")" \
		"${_GUEST_ARGS[@]}" -global migration.x-events=on -S
}

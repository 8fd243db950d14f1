# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# tests/lib/libvirt.bash - a private libvirtd (Debian's libvirt-daemon-system,
# no systemd) for tests/libvirt.bats.
#
# virtlogd and libvirtd run in a mount namespace of their own, where
# /etc/libvirt is a copy with the test's qemu.conf and /run/libvirt a test
# directory: the host's configuration is untouched, and the sockets are
# reached from outside through the test directory. libvirtd's PATH starts
# with the directory where migkit's hook is called lzop (mig-libvirt(7)),
# and MIGKIT_LIBVIRT_CONF points the hook at the test's configuration.

# lv_start DIR HOOKDIR HOOKCONF: start them; LV_URI is how virsh reaches them.
# LV_SAVE_FORMAT: libvirt's save_image_format (default lzop: the hook).
lv_start() {
	local d=$1 i
	LV_DIR=$d
	mkdir -p "$d/etc" "$d/run" /run/libvirt
	cp -a /etc/libvirt/. "$d/etc/"
	# the hook's name; no security driver (AppArmor/SELinux are not set
	# up in this container); QEMU as root, so it can write the images
	printf '%s\n' "save_image_format = \"${LV_SAVE_FORMAT:-lzop}\"" \
		"snapshot_image_format = \"${LV_SAVE_FORMAT:-lzop}\"" \
		'security_driver = "none"' 'user = "root"' 'group = "root"' \
		>"$d/etc/qemu.conf"
	LV_URI="qemu:///system?socket=$d/run/libvirt-sock"
	export LV_DIR LV_URI
	# shellcheck disable=SC2016 # the inner script has its own $1 $2 $3
	unshare -m --propagation private sh -c '
		mount --bind "$1/etc" /etc/libvirt &&
		mount --bind "$1/run" /run/libvirt &&
		virtlogd -d -p "$1/virtlogd.pid" &&
		PATH="$2:$PATH" MIGKIT_LIBVIRT_CONF="$3" \
			libvirtd -d -p "$1/libvirtd.pid"' sh "$d" "$2" "$3" ||
		return 1
	for ((i = 0; i < 100; i++)); do # 10 s at most
		virsh -c "$LV_URI" -q version >/dev/null 2>&1 && return 0
		read -r -t 0.1 <> <(:) || true
	done
	echo "libvirtd did not answer on $d/run/libvirt-sock" >&2
	return 1
}

# Is pid $1 alive (not gone, not a zombie nobody reaps)?
_lv_alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# Stop a daemon of ours by its pid file, waiting (bounded) for its exit.
_lv_stop_pidfile() {
	local f=$1 pid i
	[ -s "$f" ] || return 0
	pid=$(cat "$f")
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		_lv_alive "$pid" || return 0
		read -r -t 0.1 <> <(:) || true
	done
	kill -9 "$pid" 2>/dev/null || true
}

lv_stop() {
	[ -n "${LV_DIR:-}" ] || return 0
	_lv_stop_pidfile "$LV_DIR/libvirtd.pid"
	_lv_stop_pidfile "$LV_DIR/virtlogd.pid"
}

lv() { timeout "${LV_TIMEOUT:-120}" virsh -c "$LV_URI" -q "$@"; }

# The state virsh gives for domain $1 ("running", "shut off", ...).
lv_state() { lv domstate "$1" 2>/dev/null | head -n1; }

# A tiny domain: q35, 256 MiB, no disks, the firmware only (KVM when
# /dev/kvm is usable, TCG otherwise).
lv_define() { # NAME
	local type=qemu
	[ -w /dev/kvm ] && type=kvm
	cat >"$LV_DIR/$1.xml" <<EOF
<domain type='$type'>
  <name>$1</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
	lv define "$LV_DIR/$1.xml" >/dev/null
}

# Where the QEMU stream (or the hook's output) starts in image $1: the
# 92-byte header plus data_len (little endian at offset 20).
lv_payload_offset() {
	local n
	n=$(od -An -tu4 -j20 -N4 "$1" | tr -d ' ')
	echo $((92 + n))
}

# The pid of the hook's mig-compress with exactly these arguments,
# started under our libvirtd (its parent is the hook script).
lv_hook_stage_pid() { # ARGS...
	local want p parent
	want=$(printf '%s\0' "$MIG_BIN/mig-compress" "$@" | od -An -tx1 | tr -d ' \n')
	for p in /proc/[0-9]*; do
		[ "$(od -An -tx1 "$p/cmdline" 2>/dev/null | tr -d ' \n')" = "$want" ] || continue
		parent=$(awk '{print $4}' "$p/stat" 2>/dev/null) || continue
		grep -qF "$HOOKDIR/lzop" "/proc/$parent/cmdline" 2>/dev/null || continue
		echo "${p#/proc/}"
		return 0
	done
	return 1
}

# libvirt_image MAGIC FORMAT PAYLOAD: a libvirt save image around PAYLOAD:
# libvirt's 92-byte header (MAGIC, version 2, data_len, running 1, FORMAT,
# cookie offset), the XML, a cookie, 64 bytes of padding, then PAYLOAD
# (mig-libvirt(7)). Made by hand, for the tests that need no libvirtd.
libvirt_image() { # MAGIC FORMAT PAYLOAD
	local xml="<domain type='kvm'><name>vm1</name></domain>"$'\n'
	local cookie='<cookie/>' le
	le() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x00\\x00"; }
	printf '%s' "$1"
	le 2; le $((${#xml} + 1 + ${#cookie} + 1 + 64)); le 1; le "$2"; le $((${#xml} + 1))
	head -c 56 /dev/zero
	printf '%s\0%s\0' "$xml" "$cookie"
	head -c 64 /dev/zero
	cat "$3"
}

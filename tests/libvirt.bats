#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# libvirt through migkit (mig-libvirt(7)): a real libvirtd and virtlogd
# (Debian's packages, no systemd, in a mount namespace of their own) save
# and restore a tiny domain with migkit's hook as its save image
# compressor; mig-info, mig-compact and mig-recv read the images.
#
# Needs root (libvirtd, mount namespaces), libvirt-daemon-system,
# libvirt-clients and qemu-system-x86 (scripts/install-deps).
# shellcheck disable=SC2016,SC2154  # bash -c scripts use their own $vars; bats sets $stderr

load lib/common
load lib/libvirt

DOM=migkit-test

setup_file() {
	MIG_BIN=$(realpath -m "${MIG_BIN:-$BATS_TEST_DIRNAME/../build/bin}")
	HOOKDIR=$(realpath -m "$MIG_BIN/../libexec/migkit/libvirt")
	export MIG_BIN HOOKDIR
	export MIGKIT_LIBVIRT_CONF=$BATS_FILE_TMPDIR/libvirt.conf # the hook run here
	if [[ ! -x $HOOKDIR/lzop ]]; then
		echo "no $HOOKDIR/lzop: build first (make)" >&2
		return 1
	fi
	CONF=$BATS_FILE_TMPDIR/libvirt.conf
	KEY=$BATS_FILE_TMPDIR/key
	"$MIG_BIN/mig-keygen" -o "$KEY"
	export CONF KEY
	lv_start "$BATS_FILE_TMPDIR/lv" "$HOOKDIR" "$CONF"
	lv_define "$DOM"
}

teardown_file() {
	lv destroy "$DOM" >/dev/null 2>&1 || true
	lv managedsave-remove "$DOM" >/dev/null 2>&1 || true
	lv undefine --nvram --snapshots-metadata "$DOM" >/dev/null 2>&1 ||
		lv undefine --snapshots-metadata "$DOM" >/dev/null 2>&1 || true
	lv_stop
}

setup() {
	printf 'bindir = %s\n' "$MIG_BIN" >"$CONF"
}

teardown() {
	lv destroy "$DOM" >/dev/null 2>&1 || true
	lv managedsave-remove "$DOM" >/dev/null 2>&1 || true
}

# The domain running, from a fresh start.
start_dom() {
	lv start "$DOM" >/dev/null
	[ "$(lv_state "$DOM")" = running ]
}

@test "virsh save through migkit (compressed), mig-info shows libvirt's header, the XML and the stream; virsh restore runs it" {
	local img=$BATS_TEST_TMPDIR/dom.save
	start_dom
	run lv save "$DOM" "$img"
	assert_success
	[ "$(lv_state "$DOM")" = "shut off" ]
	run "$MIG_BIN/mig-info" "$img"
	assert_success
	assert_line "libvirt save image: LibvirtQemudSave (complete), version 2"
	assert_line --regexp "^  running yes, format lzop \(4\), XML [0-9]+ bytes, cookie [0-9]+ bytes, stream at offset $(lv_payload_offset "$img")\$"
	assert_line --partial "  xml=<domain type="
	assert_line --partial "<name>$DOM</name>"
	# the hook's default: independent zstd frames (mig-libvirt(7))
	assert_line --regexp '^layer 1: compress \(codec=zstd level=1 frame-size=1M\)$'
	assert_line "QEMU migration stream, version 3"
	assert_line --partial "machine pc-q35-"
	run lv restore "$img"
	assert_success
	[ "$(lv_state "$DOM")" = running ]
}

@test "virsh save through migkit (compressed and encrypted): mig-info shows the XML and cannot verify without the key (5); decrypted, complete; restore runs it" {
	local img=$BATS_TEST_TMPDIR/dom.save off
	printf 'key = %s\n' "$KEY" >>"$CONF"
	start_dom
	run lv save "$DOM" "$img"
	assert_success
	run "$MIG_BIN/mig-info" "$img"
	assert_failure 5
	assert_line --partial "<name>$DOM</name>"
	assert_line --regexp '^layer 1: encrypt.*cannot be opened here'
	off=$(lv_payload_offset "$img")
	run bash -c 'tail -c +$(('"$off"' + 1)) "$1" | "$MIG_BIN/mig-decrypt" -k "$KEY" | "$MIG_BIN/mig-info" -q' _ "$img"
	assert_success
	run lv restore "$img"
	assert_success
	[ "$(lv_state "$DOM")" = running ]
}

@test "managedsave through migkit, then start resumes the domain; the managed image is complete" {
	local img=/var/lib/libvirt/qemu/save/$DOM.save
	printf 'key = %s\n' "$KEY" >>"$CONF"
	start_dom
	run lv managedsave "$DOM"
	assert_success
	[ "$(lv_state "$DOM")" = "shut off" ]
	run "$MIG_BIN/mig-info" --json "$img"
	assert_failure 5 # encrypted: not verified without the key
	[ "$(jq -r .libvirt.magic <<<"$output")" = LibvirtQemudSave ]
	[ "$(jq -r .libvirt.complete <<<"$output")" = true ]
	[ "$(jq -r .libvirt.running <<<"$output")" = true ]
	[ "$(jq -r .libvirt.format <<<"$output")" = lzop ]
	jq -r .libvirt.xml <<<"$output" | grep -q "<name>$DOM</name>"
	run lv start "$DOM"
	assert_success
	[ "$(lv_state "$DOM")" = running ]
	[ ! -e "$img" ]
}

@test "an external live memory snapshot through migkit: its memory file is a complete image, virsh restore runs it" {
	local mem=$BATS_TEST_TMPDIR/snap.mem
	printf 'key = %s\n' "$KEY" >>"$CONF"
	start_dom
	run lv snapshot-create-as "$DOM" snap1 --memspec "file=$mem,snapshot=external" --live
	assert_success
	[ "$(lv_state "$DOM")" = running ]
	run "$MIG_BIN/mig-info" "$mem"
	assert_failure 5 # encrypted: not verified without the key
	assert_line "libvirt save image: LibvirtQemudSave (complete), version 2"
	assert_line --partial "<name>$DOM</name>"
	run bash -c 'tail -c +$(('"$(lv_payload_offset "$mem")"' + 1)) "$1" | "$MIG_BIN/mig-decrypt" -k "$KEY" | "$MIG_BIN/mig-info" -q' _ "$mem"
	assert_success
	lv destroy "$DOM" >/dev/null
	run lv restore "$mem"
	assert_success
	[ "$(lv_state "$DOM")" = running ]
	lv snapshot-delete "$DOM" snap1 --metadata >/dev/null
}

@test "a raw image made from a migkit one: mig-info 0; mig-compact keeps libvirt's header byte for byte; libvirt restores the compacted image" {
	local img=$BATS_TEST_TMPDIR/dom.save raw=$BATS_TEST_TMPDIR/raw.save
	local cmp=$BATS_TEST_TMPDIR/compact.save off
	start_dom
	lv save "$DOM" "$img"
	off=$(lv_payload_offset "$img")
	# libvirt's header with format 0 (raw), then the QEMU stream itself
	{ head -c 28 "$img"; printf '\0'; tail -c +30 "$img" | head -c $((off - 29))
	  tail -c +$((off + 1)) "$img" | "$MIG_BIN/mig-decompress"; } >"$raw"
	run "$MIG_BIN/mig-info" "$raw"
	assert_success
	assert_line --regexp "^  running yes, format raw \(0\), "
	run bash -c '"$MIG_BIN/mig-compact" "$1" >"$2"' _ "$raw" "$cmp"
	assert_success
	cmp -n "$off" "$raw" "$cmp"
	run "$MIG_BIN/mig-info" -q "$cmp"
	assert_success
	run lv restore "$cmp"
	assert_success
	[ "$(lv_state "$DOM")" = running ]
}

@test "an image libvirt did not finish (LibvirtQemudPart): mig-info, mig-compact and mig-recv say it is incomplete" {
	local img=$BATS_TEST_TMPDIR/dom.save raw=$BATS_TEST_TMPDIR/raw.save off
	start_dom
	lv save "$DOM" "$img"
	off=$(lv_payload_offset "$img")
	{ printf LibvirtQemudPart; tail -c +17 "$img" | head -c $((off - 16 - 64)); } >"$raw.head"
	{ head -c 28 "$raw.head"; printf '\0'; tail -c +30 "$raw.head"
	  head -c 64 /dev/zero
	  tail -c +$((off + 1)) "$img" | "$MIG_BIN/mig-decompress"; } >"$raw"
	[ "$(stat -c %s "$raw.head")" -eq $((off - 64)) ]
	run "$MIG_BIN/mig-info" "$raw"
	assert_failure 1
	assert_line "libvirt save image: LibvirtQemudPart (not finished by libvirt), version 2"
	assert_line --partial "mig-info: $raw: incomplete: the libvirt header says LibvirtQemudPart"
	run "$MIG_BIN/mig-compact" "$raw"
	assert_failure 1
	assert_output --partial "incomplete: the libvirt header says LibvirtQemudPart"
	run bash -c '"$MIG_BIN/mig-recv" -q true -incoming - <"$1"' _ "$raw"
	assert_failure 1
	assert_output --partial "stdin: incomplete: a libvirt save image whose header says LibvirtQemudPart"
	# the finished, migkit-compressed image: mig-recv names its format
	run bash -c '"$MIG_BIN/mig-recv" -q true -incoming - <"$1"' _ "$img"
	assert_failure 1
	assert_output --partial "a libvirt save image of format lzop"
}

@test "the hook's compressor killed mid-save: virsh save fails, libvirt answers within seconds, the domain runs on (or resumes), the image is not complete" {
	local img=$BATS_TEST_TMPDIR/dom.save pid="" i t0
	printf 'compress = --rate 10K\n' >>"$CONF"
	start_dom
	lv save "$DOM" "$img" >"$BATS_TEST_TMPDIR/save.out" 2>&1 &
	local save=$!
	for ((i = 0; i < 200; i++)); do # 20 s at most
		pid=$(lv_hook_stage_pid --rate 10K) && break
		read -r -t 0.1 <> <(:) || true
	done
	[ -n "$pid" ]
	kill "$pid"
	run wait "$save"
	assert_failure
	t0=$SECONDS
	run timeout 10 virsh -c "$LV_URI" -q list --all
	assert_success
	assert_output --partial "$DOM"
	[ $((SECONDS - t0)) -le 5 ]
	# libvirt resumes the domain after a failed save; a domain it left
	# paused must at least resume (the issue's bound: a state libvirt can
	# resume or restart). CI saw it not running once: the state is shown.
	local st
	st=$(lv domstate --reason "$DOM") || fail "no state: $(cat "$BATS_TEST_TMPDIR/save.out")"
	case $st in
	"running "*) ;;
	"paused "*)
		echo "# after the failed save: $st; resumed" >&3
		lv resume "$DOM" >/dev/null || fail "$st, and it does not resume"
		[ "$(lv_state "$DOM")" = running ] ;;
	*) fail "after the failed save the domain is $st: $(cat "$BATS_TEST_TMPDIR/save.out")" ;;
	esac
	# libvirt 9.0 removes the image of a failed save; one it left would
	# still say LibvirtQemudPart (tested above)
	[ ! -e "$img" ]
	run lv save "$DOM" "$img" # and the next save works
	assert_success
}

@test "a damaged image: virsh restore fails within seconds (the hook stops QEMU), and libvirt answers" {
	local img=$BATS_TEST_TMPDIR/dom.save off t0
	start_dom
	lv save "$DOM" "$img"
	off=$(lv_payload_offset "$img")
	flip_byte "$img" $((off + 4096))
	t0=$SECONDS
	run lv restore "$img"
	assert_failure
	[ $((SECONDS - t0)) -le 30 ]
	# the hook made QEMU refuse the load instead of waiting on an empty
	# stream (its own message is in libvirt's debug log only)
	assert_output --partial "qemu-system-x86_64: Not a migration stream"
	run timeout 10 virsh -c "$LV_URI" -q list --all
	assert_success
	[ "$(lv_state "$DOM")" = "shut off" ]
}

@test "a hook configuration error fails the save at once with a clear message; the domain runs on" {
	printf 'key = %s\n' /nonexistent/key >>"$CONF"
	start_dom
	run lv save "$DOM" "$BATS_TEST_TMPDIR/dom.save"
	assert_failure
	[ "$(lv_state "$DOM")" = running ]
	run "$HOOKDIR/lzop" -c </dev/null
	assert_failure 4
	assert_output "mig-libvirt-hook: key /nonexistent/key: cannot be read"
	# a restore refused before any byte: QEMU gets a non-stream, not EOF
	run bash -c '"$1/lzop" -dc --ignore-warn </dev/null 2>/dev/null | od -c | head -n1' _ "$HOOKDIR"
	assert_output --partial "M   I   G   K   I   T   -   R   E   S   T   O   R   E"
	run "$HOOKDIR/lzop" -x
	assert_failure 2
	assert_output --partial "usage: mig-libvirt-hook -c | -dc"
	printf 'bindir = %s\nencrypt = yes\n' "$MIG_BIN" >"$CONF"
	run "$HOOKDIR/lzop" -c </dev/null
	assert_failure 2
	assert_output "mig-libvirt-hook: $CONF:2: unknown setting 'encrypt'"
}

@test "the hook alone: recipient and identity, and a tee checkpoint, round-trip a stream; a restore setting missing gives QEMU a non-stream line" {
	local id=$BATS_TEST_TMPDIR/id tee=$BATS_TEST_TMPDIR/tee s=$BATS_TEST_TMPDIR/s
	mkdir "$tee"
	"$MIG_BIN/mig-keygen" --pair "$id" >/dev/null
	# any bytes: the filters carry them (libvirt gives the QEMU stream)
	printf 'bindir = %s\nrecipient = %s\ntee = %s\ncompress = -l 3\n' \
		"$MIG_BIN" "$id.pub" "$tee" >"$CONF"
	head -c 300000 /dev/urandom >"$s.in"
	run bash -c '"$1/lzop" -c <"$2" >"$3"' _ "$HOOKDIR" "$s.in" "$s.mig"
	assert_success
	run "$MIG_BIN/mig-info" "$s.mig"
	assert_failure 5 # encrypted to a recipient
	assert_line --regexp '^layer 1: encrypt'
	run bash -c 'ls "$1" | wc -l' _ "$tee"
	assert_output 1
	cmp "$s.mig" "$tee"/save-*.mig
	# restoring needs the identity
	run bash -c '"$1/lzop" -dc --ignore-warn <"$2" 2>&1 >"$3"' _ "$HOOKDIR" "$s.mig" "$s.out"
	assert_failure 2
	assert_line "mig-libvirt-hook: $CONF: restoring an image encrypted to a recipient needs identity"
	assert_line "mig-libvirt-hook: restore failed; QEMU was told to stop"
	[ "$(cat "$s.out")" = MIGKIT-RESTORE-FAILED ]
	printf 'identity = %s\n' "$id" >>"$CONF"
	run bash -c '"$1/lzop" -dc --ignore-warn <"$2" >"$3"' _ "$HOOKDIR" "$s.mig" "$s.out"
	assert_success
	cmp "$s.in" "$s.out"
}

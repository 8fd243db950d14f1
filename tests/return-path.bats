#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# QEMU's return path through migkit: what live migration of a libvirt
# domain over `virsh migrate --migrateuri unix://PATH` needs (mig(7),
# "libvirt live migration"). libvirt turns on the return-path capability;
# the destination then answers on the same socket, and the source does not
# complete until it has. Here QEMU is driven directly (libvirt will not
# migrate a domain to its own host): the source connects to a unix socket
# a socat listens on, which runs the pipeline
#   mig-compress | mig-encrypt | mig-ssh far 'mig-decrypt | mig-decompress
#     | socat - UNIX-CONNECT:DST'
# the destination's replies coming back on mig-ssh's standard output. The
# last piece of the stream gets out because the encoders flush an idle
# input (--flush-idle): QEMU keeps the socket open while it waits.
# shellcheck disable=SC2016,SC2154

MIB=64

setup_file() {
	load lib/common
	load lib/sshd
	test_stream_setup
	sshd_start "$BATS_FILE_TMPDIR/sshd" >&3
	mig-keygen -q -o "$BATS_FILE_TMPDIR/key"
}

teardown_file() {
	load lib/sshd
	sshd_stop "$BATS_FILE_TMPDIR/sshd"
}

setup() {
	load lib/migrate
	migrate_test_setup
	K=$BATS_FILE_TMPDIR/key
	ADAPTER_PID=
}

teardown() {
	vm_cleanup_all
	if [ -n "$ADAPTER_PID" ]; then
		kill "$ADAPTER_PID" 2>/dev/null || true
		wait "$ADAPTER_PID" 2>/dev/null || true
	fi
}

caps() { # VM: return-path and events on
	qmp "$1" '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"return-path","state":true},{"capability":"events","state":true}]}}' >/dev/null
}

# The source host's adapter: socat listening on T/src.sock runs
# T/forward (ENCODERS | mig-ssh far 'DECODERS | socat - UNIX-CONNECT:T/dst.sock'),
# whose exit status lands in T/forward.rc.
adapter() { # ENCODERS DECODERS
	cat > forward <<EOF
#!/bin/bash
set -o pipefail
$1 | $SSH 'set -o pipefail; $2 | socat - UNIX-CONNECT:$T/dst.sock'
echo \$? > $T/forward.rc
EOF
	chmod +x forward
	socat "UNIX-LISTEN:$T/src.sock" "EXEC:$T/forward" 2> socat.err &
	ADAPTER_PID=$!
	wait_for 10 test -S "$T/src.sock"
}

# source and destination (listening on T/dst.sock), return path on both;
# the source told to migrate through the adapter; MARK: the source's
# events before it
start_migration() {
	vm_start_source src "$RAM" "$MIB" -S >/dev/null
	vm_start dst -m "${MIB}M" -object "memory-backend-ram,id=mem,size=${MIB}M" \
		-machine memory-backend=mem -global migration.x-events=on \
		-incoming "unix:$T/dst.sock" >/dev/null
	caps src && caps dst
	MARK=$(qmp_event_mark src)
	qmp src "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$T/src.sock\"}}" >/dev/null
}

# the source's verdict within TIMEOUT seconds, on stdout
verdict() { # TIMEOUT
	QMP_EVENTS_SINCE=$MARK qmp_wait_event src MIGRATION \
		'.data.status == "completed" or .data.status == "failed"' "$1"
}

@test "return path on: compress | encrypt | mig-ssh and back completes, the destination has the source's RAM, every stage exits 0" {
	adapter "mig-compress | mig-encrypt -k $K" "mig-decrypt -k $K | mig-decompress"
	start_migration
	run -0 verdict 60
	assert_output --partial '"status":"completed"'
	run vm_wait_incoming dst 30
	assert_success
	wait "$ADAPTER_PID"
	ADAPTER_PID=
	run cat forward.rc
	assert_output 0
	qmp dst '{"execute":"stop"}' >/dev/null
	vm_pmemsave dst dst.ram "${MIB}M"
	vm_same_ram dst.ram "$RAM"
}

@test "return path on, the encoders never flushing an idle input (--flush-idle 0): the stream's end stays in the pipeline and the source does not complete" {
	adapter "mig-compress --flush-idle 0 | mig-encrypt --flush-idle 0 -k $K" \
		"mig-decrypt -k $K | mig-decompress"
	# the source waits for the destination's answer, the destination for
	# the end of the stream, held in a partial frame
	start_migration
	# the source has sent all of its RAM and the device state ...
	all_sent() {
		qmp src '{"execute":"query-migrate"}' |
			jq -e '.status == "active" and .ram.remaining == 0 and .ram.transferred > 40000000' >/dev/null
	}
	wait_for 30 all_sent
	# ... and 5 s later (the first test completes within 2 s of it)
	# neither end has finished
	run -1 verdict 5
	run vm_status dst
	assert_output inmigrate
}

#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# Load (issue 8): several VMs migrated at once, each through its own full
# pipeline over the same sshd:
#   mig-qemu migrate SRC "mig-compress | mig-encrypt -k K |
#     mig-ssh HOST 'mig-decrypt -k K | mig-decompress | mig-recv QEMU ... -incoming -'"
# All must complete, every destination run, and the paused ones hold
# exactly their source's RAM (pmemsave).  The last line counts them:
# "# load: N migrations at once, N completed, N RAM-identical".
# shellcheck disable=SC2016,SC2154,SC2034,SC2046

MIB=64
VMS=${LOAD_VMS:-8}

setup_file() {
	load lib/common
	load lib/sshd
	test_stream_setup
	sshd_start "$BATS_FILE_TMPDIR/sshd" >&3
	mig-keygen -q -o "$BATS_FILE_TMPDIR/k"
}

teardown_file() {
	load lib/sshd
	sshd_stop "$BATS_FILE_TMPDIR/sshd"
}

setup() {
	load lib/migrate
	migrate_test_setup
	K=$BATS_FILE_TMPDIR/k
}

teardown() {
	vm_cleanup_all
	local p
	for p in $(procs_in "$T"); do kill -KILL "$p" 2>/dev/null || true; done
}

pipeline() { # DEST-NAME
	echo "mig-compress | mig-encrypt -k $K | $SSH 'mig-decrypt -k $K |" \
		"mig-decompress | mig-recv $(dest "$1")'"
}

@test "$VMS VMs migrated at once, each through its own pipeline over one sshd: all complete and correct" {
	local i n_ok=0 n_same=0 t0 rc
	local -a pids
	# half of them paused (-S: the guest never ran, its RAM is the image,
	# so source and destination can be compared byte for byte), half running
	for ((i = 0; i < VMS; i++)); do
		if ((i % 2 == 0)); then source_vm "s$i" -S; else source_vm "s$i"; fi
	done
	t0=$SECONDS
	for ((i = 0; i < VMS; i++)); do
		mig-qemu migrate --json --timeout 90 "$VM_DIR/s$i.mq" "$(pipeline "d$i")" \
			> "out$i" 2> "err$i" &
		pids[i]=$!
	done
	# every migration under way at the same time, not one after another
	for ((i = 0; i < VMS; i++)); do
		wait_for 30 test -s "$VM_DIR/d$i.pid" || fail "destination d$i never started"
	done
	for ((i = 0; i < VMS; i++)); do
		rc=0
		wait "${pids[i]}" || rc=$?
		[ "$rc" -eq 0 ] || { cat "err$i"; fail "migration $i: mig-qemu exited $rc"; }
		run jq -r 'select(.event == "result") | "\(.result) \(.qemu_completed) \([.stages[].status] | join(","))"' "out$i"
		assert_output "completed true 0,0,0,0"
		n_ok=$((n_ok + 1))
	done
	echo "# load: $VMS migrations at once in $((SECONDS - t0)) s" >&3
	for ((i = 0; i < VMS; i++)); do
		vm_attach "d$i"
		run vm_status "d$i"
		if ((i % 2 == 0)); then
			assert_output prelaunch
			run vm_status "s$i"
			assert_output postmigrate
			vm_pmemsave "s$i" "s$i.mem" "${MIB}M"
			vm_pmemsave "d$i" "d$i.mem" "${MIB}M"
			vm_same_ram "s$i.mem" "d$i.mem"
			rm -f "s$i.mem" "d$i.mem"
			n_same=$((n_same + 1))
		else
			assert_output running
			run vm_status "s$i"
			assert_output postmigrate
		fi
	done
	# the destinations each run once, in their own QEMU
	for ((i = 0; i < VMS; i++)); do
		run pgrep -c -f -- "^qemu-system-x86_64 .*-name d$i "
		assert_output 1
	done
	echo "# load: $VMS migrations at once, $n_ok completed, $n_same paused ones RAM-identical" >&3
}

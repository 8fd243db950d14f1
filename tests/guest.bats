#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# The real Linux guest (tests/lib/guest.bash): it boots, fills its page
# cache and beats; migrated live through migkit while it dirties memory,
# it beats on at the destination from where it was; a checkpoint of it
# paused restores to identical RAM and runs on.  Under TCG where KVM does
# not boot the kernel (the accelerator is printed).
# shellcheck disable=SC2154,SC2086 # $WORK: kernel arguments, split on purpose

MIB=256
FILL=64
DIRTY=4

setup_file() {
	load lib/common
	load lib/qemu
	load lib/guest
	export VM_DIR=$BATS_FILE_TMPDIR
	guest_build "$BATS_FILE_TMPDIR/guest"
	guest_probe_accel 2>/dev/null
	echo "# guest: Linux $(basename "$(readlink "$GUEST_KERNEL")"), accel $GUEST_ACCEL ($GUEST_ACCEL_WHY)" >&3
	vm_cleanup_all
}

setup() {
	load lib/common
	load lib/qemu
	load lib/guest
	cd "$BATS_TEST_TMPDIR" || exit 1
	export VM_DIR=$BATS_TEST_TMPDIR
	WORK="mig.fill=$FILL mig.dirty=$DIRTY"
}

teardown() {
	vm_cleanup_all
}

# Boot NAME with the file's workload, wait until it is filled and beats.
busy_guest() { # NAME
	guest_start "$1" "$MIB" $WORK
	run -0 guest_wait_ready "$1" 120
	assert_output "$FILL"
	guest_wait_beat "$1" 2 20 > /dev/null
	echo "# $1 ($GUEST_ACCEL): $(guest_times "$1") s" >&3
}

# The beats of the console files, read as one, are 1, 2, ... N with no
# gap and no repeat, and N > AFTER.
assert_beats_go_on() { # AFTER FILE...
	local after=$1 n
	shift
	run -0 guest_beats "$@"
	n=${#lines[@]}
	[ "$n" -gt "$after" ] || fail "only $n beats, not more than $after"
	[ "$output" = "$(seq 1 "$n")" ] || fail "beats not 1..$n: $(tr '\n' ' ' <<< "$output")"
}

# How many 4 KiB pages of FILE are not all zeros.
nonzero_pages() { # FILE
	perl -e 'open(my $f, "<:raw", $ARGV[0]) or die "$ARGV[0]: $!\n";
		my ($n, $p) = (0, "");
		while (read($f, $p, 4096)) { $n++ if $p =~ /[^\0]/; }
		print "$n\n";' "$1"
}

@test "make-guest: the initrd holds busybox, /init and the sparse writer; a missing part is named (exit 1), usage (exit 2)" {
	run -0 "$REPO/scripts/make-guest" g
	assert_line --index 0 "$PWD/g/vmlinuz"
	assert_line --index 1 "$PWD/g/initrd.gz"
	run -0 bash -c 'zcat g/initrd.gz | cpio -it --quiet | sort'
	assert_output "$(printf '%s\n' . bin bin/busybox bin/guest-dirty dev init proc sys)"
	# the same inputs, the same bytes
	cp g/initrd.gz first.gz
	"$REPO/scripts/make-guest" g > /dev/null
	cmp first.gz g/initrd.gz
	run -1 env GUEST_KERNEL=/nonexistent/vmlinuz "$REPO/scripts/make-guest" g
	assert_output "make-guest: /nonexistent/vmlinuz: cannot read the kernel"
	run -1 env GUEST_BUSYBOX=/bin/ls "$REPO/scripts/make-guest" g
	assert_output "make-guest: /bin/ls: not a static busybox: install busybox-static (scripts/install-deps)"
	run -1 env CC=false "$REPO/scripts/make-guest" g
	assert_output "make-guest: $REPO/scripts/guest-dirty.c: cannot build it statically (a C compiler and libc6-dev: scripts/install-deps)"
	run -2 "$REPO/scripts/make-guest"
	assert_output "usage: make-guest DIR"
}

@test "the guest boots, fills its page cache, then beats once a second" {
	busy_guest g
	run -0 bash -c "tr -d '\r' < g.serial | head -n 3"
	assert_line --index 0 "MIGGUEST UP"
	assert_line --index 1 "MIGGUEST READY $FILL MB"
	assert_line --index 2 "MIGGUEST BEAT 1 $DIRTY"
	# 8 beats of the guest's clock take about 8 s of ours
	local t0=$SECONDS b
	b=$(guest_beat g)
	guest_wait_beat g $((b + 8)) 30
	(( SECONDS - t0 >= 6 )) || fail "8 beats in $((SECONDS - t0)) s"
	run vm_status g
	assert_output running
}

@test "bad workload parameters: the guest says why on its console and powers off" {
	run -1 guest_start bad 128 mig.fill=lots
	assert_output --partial "guest 'bad': MIGGUEST ERROR mig.fill: not a whole number: 'lots'"
	wait_for_gone() { ! vm_alive bad; }
	local deadline=$((SECONDS + 60))
	until wait_for_gone; do
		[ "$SECONDS" -lt "$deadline" ] || fail "QEMU still running after poweroff"
		sleep 0.1
	done
	run -1 guest_start bad2 128 mig.fill=8 mig.region=16
	assert_output --partial "MIGGUEST ERROR mig.region=16 is larger than mig.fill=8"
	run -1 guest_start bad3 128 mig.fill=8 mig.dirty=1 mig.dirtypattern=text
	assert_output --partial "MIGGUEST ERROR mig.dirtypattern: unknown pattern 'text' (random, mixed, sparse)"
	run -1 guest_start bad4 128 mig.fill=8 mig.dirty=1 mig.dirtypattern=sparse mig.dirtybytes=4096
	assert_output --partial "MIGGUEST ERROR mig.dirtybytes=4096: 1 to 4095 bytes of a page"
}

# What the guest rewrites (mig.dirtypattern): fresh random data by default,
# which nothing compresses; or, mixed, random, text and binary in turn, as
# real guests' dirtied pages are; or, sparse, 64 bytes of each page. Two
# checkpoints 3 beats apart: the pages that differ (mig-delta), and how
# well they compress.
@test "the guest's dirtying: random pages do not compress, mixed ones do, sparse ones go as XBZRLE records; all change what they rewrite" {
	local p n carried xbzrle raw z
	for p in random mixed sparse; do
		guest_start "$p" 256 mig.fill=64 mig.dirty=4 mig.dirtypattern=$p
		run -0 guest_wait_ready "$p" 120
		guest_wait_beat "$p" 2 20 > /dev/null
		run -0 vm_migrate "$p" "cat > $p.1"
		assert_output completed
		qmp "$p" '{"execute":"cont"}' > /dev/null
		n=$(guest_beat "$p")
		guest_wait_beat "$p" $((n + 3)) 30 > /dev/null
		run -0 vm_migrate "$p" "cat > $p.2"
		assert_output completed
		vm_stop "$p"
		run -0 --separate-stderr bash -c "mig-delta -v --base $p.1 < $p.2 > $p.d"
		[[ ${stderr_lines[1]} =~ ^mig-delta:\ [0-9]+\ pages\ in\ the\ input,\ ([0-9]+)\ differ\ .*\ ([0-9]+)\ of\ them\ as\ XBZRLE ]]
		carried=${BASH_REMATCH[1]} xbzrle=${BASH_REMATCH[2]}
		# 3 s at 4 MB/s: at least 2000 pages rewritten to something new
		[ "$carried" -gt 2000 ] || fail "$p: only $carried pages changed"
		raw=$(stat -c %s "$p.d") z=$(mig-compress < "$p.d" | wc -c)
		echo "# $p: $carried pages changed, delta $raw bytes, compressed $z" >&3
		case $p in
		random) [ $((z * 4)) -gt $((raw * 3)) ] || fail "random pages compressed to $z of $raw" ;;
		mixed) [ $((z * 2)) -lt "$raw" ] || fail "mixed pages compressed only to $z of $raw" ;;
		# the data MiBs of the fill (two thirds) go as XBZRLE records
		# of about 80 bytes; the zero ones, now data, whole
		sparse) [ $((xbzrle * 2)) -gt "$carried" ] && [ "$raw" -lt $((carried * 2048)) ] ||
			fail "sparse: $xbzrle of $carried pages as XBZRLE, a delta of $raw bytes" ;;
		esac
	done
}

@test "live migration through migkit while the guest dirties memory: it beats on at the destination" {
	busy_guest src
	local t0 dest
	dest=$(guest_dest dst "$MIB" $WORK)
	t0=$(_vm_now_ms)
	run -0 --separate-stderr mig-qemu migrate --timeout 120 "$VM_DIR/src.mq" \
		"mig-compress | mig-checksum | mig-checksum -d | mig-decompress | mig-recv $dest"
	local ms=$(($(_vm_now_ms) - t0))
	output=$stderr assert_output --partial "every stage exited 0"
	output=$stderr assert_output --partial "loaded the stream and is running"
	vm_attach dst
	run vm_status dst
	assert_output running
	run vm_status src
	assert_output postmigrate
	local mig last
	mig=$(qmp src '{"execute":"query-migrate"}')
	echo "# live migration ($GUEST_ACCEL, dirtying $DIRTY MB/s): ${ms} ms by the host clock," \
		"QEMU: $(jq -r '"\(.["total-time"]) ms, \(.ram.transferred) bytes, downtime \(.downtime) ms, \(.ram["dirty-sync-count"]) dirty syncs"' <<< "$mig")" >&3
	# the RAM the guest filled went over: more than its non-zero part
	(( $(jq -r .ram.transferred <<< "$mig") > FILL * 1048576 * 6 / 10 ))
	last=$(guest_beat src)
	guest_wait_beat dst $((last + 3)) 30
	assert_beats_go_on $((last + 2)) src.serial dst.serial
	# the source beats no more
	run guest_beat src
	assert_output "$last"
}

@test "checkpoint of the paused guest: restored RAM is identical, and it runs on" {
	busy_guest src
	qmp src '{"execute":"stop"}' > /dev/null
	local last t0
	last=$(guest_beat src)
	t0=$(_vm_now_ms)
	run -0 --separate-stderr mig-qemu checkpoint --timeout 120 "$VM_DIR/src.mq" \
		mig-compress mig-checksum ckpt
	echo "# checkpoint ($GUEST_ACCEL, paused): $(($(_vm_now_ms) - t0)) ms, $(stat -c %s ckpt) bytes compressed" >&3
	run -0 mig-info -q ckpt
	guest_dest_argv dst "$MIB" $WORK
	run -0 --separate-stderr mig-qemu restore ckpt 'mig-checksum -d' mig-decompress -- \
		"${GUEST_DEST_ARGV[@]}"
	vm_attach dst
	run vm_status dst
	assert_output paused
	vm_pmemsave src src.mem "${MIB}M"
	vm_pmemsave dst dst.mem "${MIB}M"
	vm_same_ram src.mem dst.mem
	# not a blank RAM: the non-zero part of the fill (65 %) is in it
	local used
	used=$(nonzero_pages src.mem)
	(( used > FILL * 256 * 65 / 100 )) || fail "only $used non-zero pages"
	echo "# RAM: $used of $((MIB * 256)) pages non-zero" >&3
	qmp dst '{"execute":"cont"}' > /dev/null
	guest_wait_beat dst $((last + 2)) 30
	assert_beats_go_on $((last + 1)) src.serial dst.serial
}

#!/usr/bin/env bats
# mig-tee: checkpoints that are never silently incomplete.

setup_file() {
	load lib/common
	test_stream_setup
	# open(O_TMPFILE) made to fail, as on a filesystem without it
	NO_TMPFILE_SO=$BATS_FILE_TMPDIR/no-tmpfile.so
	cc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$NO_TMPFILE_SO" \
		"$REPO/tests/shim/no-tmpfile.c" -ldl
	export NO_TMPFILE_SO
}

setup() {
	load lib/common
	load lib/qemu
	cd "$BATS_TEST_TMPDIR" || exit 1
}

teardown() {
	vm_cleanup_all
	if mountpoint -q "$BATS_TEST_TMPDIR/small" 2>/dev/null; then
		umount "$BATS_TEST_TMPDIR/small"
	fi
}

# SIGTERM to mig-tee ($pid) while its input (descriptor $w) is open: it
# dies of the signal and leaves no ckpt and no temporary.
sigterm_leaves_nothing() {
	local st=0
	kill -TERM "$pid"
	exec {w}>&-
	wait "$pid" || st=$?
	[ "$st" -eq 143 ]
	[ ! -e ckpt ]
	assert_no_temporaries .
}

# No file of ours may be left in DIR but the ones named.
assert_no_temporaries() {
	run -0 find "$1" -name '.mig-tee.*'
	assert_output ""
}

has_temporary() { [ -n "$(find "$1" -maxdepth 1 -name '.mig-tee.*')" ]; }

# mig-tee ARGS... where O_TMPFILE fails (tests/shim/no-tmpfile.c), in the
# background ($pid, output to out and err), reading the fifo "in", fed
# the stream's first 3000000 bytes on fd $w; returns once its named
# temporary is there. (In a make check SANITIZE=1 build, AddressSanitizer
# would refuse to run behind a library preloaded before its own.)
tee_without_tmpfile() {
	local i
	mkfifo in
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		LD_PRELOAD=$NO_TMPFILE_SO mig-tee "$@" < in > out 2> err &
	pid=$!
	exec {w}> in
	head -c 3000000 "$STREAM" >&$w
	for ((i = 0; i < 500; i++)); do
		has_temporary . && return 0
		sleep 0.02
	done
	fail "no named temporary: O_TMPFILE was not refused"
}

@test "forwards a raw QEMU stream unchanged and keeps an identical checkpoint" {
	mig-tee ckpt < "$STREAM" > out
	cmp out "$STREAM"
	cmp ckpt "$STREAM"
	[ "$(stat -c %a ckpt)" = 600 ]
}

@test "a mig stream: the checkpoint is the layer, byte for byte" {
	mig-checksum < "$STREAM" | mig-tee ckpt | mig-checksum -d > out
	cmp out "$STREAM"
	mig-checksum -d < ckpt | cmp - "$STREAM"
}

@test "--meta wraps the checkpoint in an envelope; decoders peel it; mig-info shows it" {
	mig-checksum < "$STREAM" | mig-tee --meta vm=web-1 --meta "cmdline=qemu -m 64M" ckpt > out
	mig-checksum -d < out | cmp - "$STREAM"
	mig-checksum -d < ckpt | cmp - "$STREAM"
	run -0 mig-info ckpt
	assert_line --index 1 "layer 1: envelope (hash=xxh3)"
	assert_line --index 2 "  meta (not authenticated) vm=web-1"
	assert_line --index 3 "  meta (not authenticated) cmdline=qemu -m 64M"
	assert_line --index 5 "layer 2: checksum (hash=xxh3)"
}

@test "-o writes the checkpoint only; -v says what it was" {
	run -0 --separate-stderr bash -c 'mig-tee -o -v ckpt < "$STREAM"'
	[ -z "$output" ]
	output=$stderr assert_output --regexp "^mig-tee: ckpt: complete checkpoint of a raw QEMU stream \([0-9.]+ MiB\)$"
	cmp ckpt "$STREAM"
}

@test "a truncated mig stream leaves no FILE and no temporary: exit 1" {
	mig-checksum < "$STREAM" | head -c 5000000 > cut
	run -1 --separate-stderr bash -c 'mig-tee ckpt < cut > out'
	output=$stderr assert_output "mig-tee: ckpt: not written: truncated: the stream ends inside frame 4 (offset 4194389)"
	cmp out cut
	[ ! -e ckpt ]
	assert_no_temporaries .
}

@test "a truncated raw QEMU stream leaves no FILE" {
	head -c 3000000 "$STREAM" > cut
	run -1 --separate-stderr bash -c 'mig-tee ckpt < cut > /dev/null'
	output=$stderr assert_output --regexp "^mig-tee: ckpt: not written: QEMU stream: truncated: "
	[ ! -e ckpt ]
}

@test "empty, unknown and trailing input leave no FILE" {
	run -1 --separate-stderr bash -c 'mig-tee ckpt < /dev/null > /dev/null'
	output=$stderr assert_output "mig-tee: ckpt: not written: the stream is empty"
	run -1 --separate-stderr bash -c 'printf hello | mig-tee ckpt > /dev/null'
	output=$stderr assert_output "mig-tee: ckpt: not written: input is not a mig stream (it starts 68 65 6c 6c 6f): cannot tell whether it is complete"
	{ mig-checksum < "$STREAM"; printf X; } > extra
	run -1 --separate-stderr bash -c 'mig-tee ckpt < extra > /dev/null'
	output=$stderr assert_output --regexp "data after the END frame at offset [0-9]+$"
	[ ! -e ckpt ]
}

@test "an existing FILE is replaced only by a complete checkpoint" {
	echo old > ckpt
	head -c 3000000 "$STREAM" | mig-tee ckpt > /dev/null || true
	[ "$(cat ckpt)" = old ]
	mig-tee ckpt < "$STREAM" > /dev/null
	cmp ckpt "$STREAM"
}

@test "a full disk: warns, keeps forwarding, leaves no FILE (exit 0)" {
	mkdir small && mount -t tmpfs -o size=4m tmpfs small
	run -0 --separate-stderr bash -c 'mig-tee small/ckpt < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: small/ckpt: write to output: No space left on device; checkpoint abandoned, the stream went on"
	cmp out "$STREAM"
	[ ! -e small/ckpt ]
	assert_no_temporaries small
	[ "$(df --output=used -B1 small | tail -1)" -lt 100000 ]
}

@test "a full disk with --required fails the pipeline: exit 3" {
	mkdir small && mount -t tmpfs -o size=4m tmpfs small
	run -3 --separate-stderr bash -c 'mig-tee --required small/ckpt < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: small/ckpt: write to output: No space left on device; checkpoint abandoned"
	[ "$(stat -c %s out)" -lt "$(stat -c %s "$STREAM")" ]
	[ ! -e small/ckpt ]
}

@test "a read-only target is reported before anything flows" {
	mkdir small && mount -t tmpfs -o size=4m,ro tmpfs small
	run -3 --separate-stderr bash -c 'mig-tee small/ckpt < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: small/ckpt: Read-only file system"
	[ ! -s out ]
}

@test "a killed pipeline leaves no FILE and no temporary" {
	mkfifo in
	mig-tee ckpt < in > /dev/null &
	pid=$!
	exec {w}> in
	head -c 3000000 "$STREAM" >&$w
	kill -KILL "$pid"
	exec {w}>&-
	wait "$pid" || true
	[ ! -e ckpt ]
	assert_no_temporaries .
}

@test "SIGTERM mid-stream leaves no FILE" {
	mkfifo in
	mig-tee ckpt < in > /dev/null &
	pid=$!
	exec {w}> in
	head -c 3000000 "$STREAM" >&$w
	sigterm_leaves_nothing
}

@test "without O_TMPFILE: a named temporary, FILE complete and exact, no temporary left" {
	tee_without_tmpfile ckpt
	[ ! -e ckpt ]
	tail -c +3000001 "$STREAM" >&$w
	exec {w}>&-
	wait "$pid"
	cmp out "$STREAM"
	cmp ckpt "$STREAM"
	[ "$(stat -c %a ckpt)" = 600 ]
	assert_no_temporaries .
}

@test "without O_TMPFILE: a truncated stream leaves no FILE and no temporary" {
	tee_without_tmpfile ckpt
	exec {w}>&-
	st=0
	wait "$pid" || st=$?
	[ "$st" -eq 1 ]
	run cat err
	assert_output --regexp "^mig-tee: ckpt: not written: QEMU stream: truncated: "
	[ ! -e ckpt ]
	assert_no_temporaries .
}

@test "without O_TMPFILE: SIGTERM mid-stream removes the temporary" {
	tee_without_tmpfile ckpt
	sigterm_leaves_nothing
}

@test "refuses to write the stream to a terminal (exit 2), but -o writes none" {
	run -2 on_tty 'mig-tee ckpt < "$STREAM"'
	assert_output "mig-tee: refusing to write a stream to a terminal; redirect standard output or use -o"
	[ ! -e ckpt ]
	run -0 on_tty 'mig-tee -o ckpt < "$STREAM"'
	assert_output ""
	cmp ckpt "$STREAM"
}

@test "a closed output ends mig-tee at once with exit 3 and no FILE" {
	run -3 --separate-stderr bash -c 'mig-tee ckpt < "$STREAM" | head -c 10 > /dev/null; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-tee: write to stdout: Broken pipe"
	[ ! -e ckpt ]
}

@test "between two pipes (forwarded with tee(2)): output and checkpoint byte-exact" {
	cat "$STREAM" | mig-tee ckpt | cat > out
	cmp out "$STREAM"
	cmp ckpt "$STREAM"
}

@test "between two non-blocking pipes, as a spawner may hand them out" {
	# O_NONBLOCK belongs to the open pipe, so it outlives the exec
	cat "$STREAM" | perl -MFcntl -e '
		for my $fh (\*STDIN, \*STDOUT) {
			my $fl = fcntl($fh, F_GETFL, 0) or die "F_GETFL: $!";
			fcntl($fh, F_SETFL, $fl | O_NONBLOCK) or die "F_SETFL: $!";
		}
		exec @ARGV or die "exec: $!"' mig-tee ckpt | cat > out
	cmp out "$STREAM"
	cmp ckpt "$STREAM"
}

@test "a closed output pipe ends mig-tee at once with exit 3 and no FILE" {
	run -3 --separate-stderr bash -c 'cat "$STREAM" | mig-tee ckpt | head -c 10 > /dev/null; exit ${PIPESTATUS[1]}'
	output=$stderr assert_output "mig-tee: write to stdout: Broken pipe"
	[ ! -e ckpt ]
}

@test "--fsync still writes the same checkpoint" {
	mig-tee --fsync ckpt < "$STREAM" > /dev/null
	cmp ckpt "$STREAM"
}

@test "usage errors" {
	run -2 --separate-stderr mig-tee
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-tee: missing the checkpoint FILE"
	run -2 --separate-stderr mig-tee a b
	run -2 --separate-stderr mig-tee --meta "bad key=1" f
	output=$stderr assert_output --partial "mig-tee: --meta 'bad key=1': META key has a character outside"
	run -0 mig-tee --version
	assert_output "mig-tee (migkit) 0.1.0"
}

@test "a live migration teed to a checkpoint: the migrated VM and the restored one both run" {
	vm_make_ram ram 64
	vm_start_source src ram 64
	mkfifo link
	vm_start_dest dst 64 "mig-checksum -d < link"
	run vm_migrate src "mig-checksum | mig-tee --meta vm=src ckpt > link"
	assert_output completed
	run vm_wait_incoming dst 60
	assert_output completed
	run vm_status dst
	assert_output running
	run mig-info -q ckpt
	vm_start_dest restored 64 "mig-checksum -d < ckpt"
	run vm_wait_incoming restored 60
	assert_output completed
	run vm_status restored
	assert_output running
	run vm_status src
	assert_output postmigrate
}

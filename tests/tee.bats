#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
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

# Signal SIG (default TERM) to mig-tee ($pid) while its input (descriptor
# $w) is open: it dies of the signal and leaves no ckpt and no temporary.
signal_leaves_nothing() {
	local sig=${1:-TERM} st=0
	kill -s "$sig" "$pid"
	exec {w}>&-
	wait "$pid" || st=$?
	[ "$st" -eq $((128 + $(kill -l "$sig"))) ] || fail "SIG$sig: exit status $st"
	[ ! -e ckpt ]
	assert_no_temporaries .
}
sigterm_leaves_nothing() { signal_leaves_nothing TERM; }

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
	mkfifo in
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		LD_PRELOAD=$NO_TMPFILE_SO env --default-signal \
		mig-tee "$@" < in > out 2> err &
	pid=$!
	exec {w}> in
	head -c 3000000 "$STREAM" >&$w
	wait_for_temporary
}

# The named temporary appears as mig-tee starts: a file to wait for.
wait_for_temporary() {
	local i
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

@test "a raw libvirt save image: kept byte for byte only if libvirt finished it; --compact keeps its header" {
	load lib/libvirt
	libvirt_image LibvirtQemudSave 0 "$STREAM" >img
	mig-tee ckpt <img >out
	cmp out img
	cmp ckpt img
	mig-tee --compact -o compact <img
	cmp -n 212 compact img
	run -0 mig-info -q compact
	libvirt_image LibvirtQemudPart 0 "$STREAM" >part
	run -1 --separate-stderr bash -c 'mig-tee ckpt2 <part >out2'
	output=$stderr assert_output "mig-tee: ckpt2: not written: QEMU stream: incomplete: the libvirt header says LibvirtQemudPart: libvirt had not finished this image (it writes LibvirtQemudSave last, after the QEMU stream)"
	cmp out2 part
	[ ! -e ckpt2 ]
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

@test "a read-only file system: warns, keeps forwarding, exit 0; --required stops before anything flows" {
	mkdir small && mount -t tmpfs -o size=4m,ro tmpfs small
	run -0 --separate-stderr bash -c 'mig-tee small/ckpt < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: small/ckpt: Read-only file system; no checkpoint, the stream goes on"
	cmp out "$STREAM"
	run -3 --separate-stderr bash -c 'mig-tee --required small/ckpt < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: small/ckpt: Read-only file system"
	[ ! -s out ]
	run -0 --separate-stderr bash -c 'mig-tee -q small/ckpt < "$STREAM" > out'
	[ -z "$stderr" ]
	cmp out "$STREAM"
}

@test "a missing directory or no permission: warns, keeps forwarding, exit 0; --required: exit 3" {
	run -0 --separate-stderr bash -c 'mig-tee nodir/ckpt < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: nodir/ckpt: No such file or directory; no checkpoint, the stream goes on"
	cmp out "$STREAM"
	run -3 --separate-stderr bash -c 'mig-tee --required nodir/ckpt < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: nodir/ckpt: No such file or directory"
	[ ! -s out ]
	[ ! -e nodir ]
	# a directory mig-tee may not write in (as another user when root),
	# in a directory of its own that user can reach (bats's are 0700)
	local pub
	pub=$(mktemp -d /tmp/mig-tee-perm.XXXXXX)
	chmod 755 "$pub"
	cp "$STREAM" "$pub/stream" && chmod 644 "$pub/stream"
	mkdir "$pub/locked" && chmod 555 "$pub/locked"
	asuser=()
	[ "$(id -u)" -ne 0 ] || asuser=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	cd "$pub"
	run -0 --separate-stderr "${asuser[@]}" bash -c '"$MIG_BIN/mig-tee" locked/ckpt < stream | cat > /dev/null; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-tee: locked/ckpt: Permission denied; no checkpoint, the stream goes on"
	"${asuser[@]}" "$MIG_BIN/mig-tee" -q locked/ckpt < stream | cmp - stream
	run -3 --separate-stderr "${asuser[@]}" bash -c '"$MIG_BIN/mig-tee" --required locked/ckpt < stream | wc -c; exit ${PIPESTATUS[0]}'
	assert_output 0
	output=$stderr assert_output "mig-tee: locked/ckpt: Permission denied"
	[ -z "$(ls -A locked)" ]
	cd "$BATS_TEST_TMPDIR"
	rm -rf "$pub"
}

@test "the file size limit (ulimit -f): warns, keeps forwarding, exit 0, nothing left; --required: exit 3" {
	run -0 --separate-stderr bash -c '(ulimit -f 2048; exec mig-tee ckpt < "$STREAM") | cat > out; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-tee: ckpt: write to output: File too large; checkpoint abandoned, the stream went on"
	cmp out "$STREAM"
	[ ! -e ckpt ]
	assert_no_temporaries .
	run -3 --separate-stderr bash -c '(ulimit -f 2048; exec mig-tee --required ckpt < "$STREAM") | cat > out; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-tee: ckpt: write to output: File too large; checkpoint abandoned"
	[ ! -e ckpt ]
	# the same without O_TMPFILE: the named temporary goes too
	run -0 --separate-stderr bash -c '(ulimit -f 2048; ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD=$NO_TMPFILE_SO exec mig-tee ckpt < "$STREAM") | cat > out; exit ${PIPESTATUS[0]}'
	cmp out "$STREAM"
	[ ! -e ckpt ]
	assert_no_temporaries .
}

@test "FILE that is not a regular file is refused at start (exit 2) and left as it was" {
	mkfifo fifo
	mkdir dir
	python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")'
	ln -s fifo link-to-fifo
	ln -s missing dangling
	# a device node of our own when root (were it replaced, nothing is
	# lost); /dev/null otherwise, which only root could replace
	local chr=/dev/null
	if [ "$(id -u)" -eq 0 ]; then chr=chr; mknod chr c 1 3; fi
	local -A kind=([fifo]="a FIFO" [$chr]="a character device" [dir]="a directory"
		[sock]="a socket" [link-to-fifo]="a FIFO")
	for f in "${!kind[@]}"; do
		hint="to copy the stream into it, put tee(1) in the pipeline"
		[ "$f" != dir ] || hint="name a file in it"
		run -2 --separate-stderr bash -c 'mig-tee "$1" < "$STREAM" > out' _ "$f"
		output=$stderr assert_output "mig-tee: $f: is ${kind[$f]}: a checkpoint is kept only in a regular file (it is written aside, then renamed over FILE); $hint"
		[ ! -s out ]
	done
	[ -p fifo ] && [ -d dir ] && [ -S sock ] && [ -c "$chr" ] && [ -L link-to-fifo ]
	run -2 --separate-stderr bash -c 'mig-tee dangling < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: dangling: a symbolic link to a missing file (No such file or directory); name the checkpoint itself"
	[ -L dangling ] && [ ! -e missing ]
	run -2 --separate-stderr bash -c 'mig-tee ckpt/ < "$STREAM" > out'
	output=$stderr assert_output "mig-tee: ckpt/: names a directory; give the checkpoint's file name"
	assert_no_temporaries .
}

@test "a name taken meanwhile by something not a regular file is left as it is: the checkpoint is not kept" {
	local w was pid
	for was in absent file; do
		rm -rf ckpt in out
		[ $was = absent ] || echo old > ckpt
		mkfifo in
		mig-tee ckpt < in > out 2> err &
		pid=$!
		exec {w}> in
		head -c 3000000 "$STREAM" >&$w
		# the name becomes a FIFO while mig-tee writes
		rm -f ckpt
		mkfifo ckpt
		tail -c +3000001 "$STREAM" >&$w
		exec {w}>&-
		wait "$pid"
		cmp out "$STREAM"
		run cat err
		assert_output "mig-tee: ckpt: is now a FIFO, which is not replaced; checkpoint abandoned"
		[ -p ckpt ] || fail "($was) ckpt is no longer the FIFO"
		assert_no_temporaries .
	done
}

@test "a symbolic link to a regular file: the file is replaced, the link stays" {
	mkdir store
	echo old > store/real
	ln -s store/real link
	mig-tee link < "$STREAM" > /dev/null
	[ -L link ] && [ "$(readlink link)" = store/real ]
	cmp store/real "$STREAM"
	assert_no_temporaries .
}

@test "names it did not create are never removed: a .mig-tee.<pid> that exists stays" {
	# the shell execs mig-tee: $$ is mig-tee's pid
	run -0 bash -c 'echo mine > .mig-tee.$$; echo $$ > pid; exec mig-tee ckpt < "$STREAM" > /dev/null'
	[ "$(cat ".mig-tee.$(cat pid)")" = mine ]
	cmp ckpt "$STREAM"
	run -0 bash -c 'echo mine > .mig-tee.$$; echo $$ > pid; ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD=$NO_TMPFILE_SO exec mig-tee ckpt < "$STREAM" > /dev/null'
	[ "$(cat ".mig-tee.$(cat pid)")" = mine ]
	cmp ckpt "$STREAM"
	[ "$(find . -name '.mig-tee.*' | wc -l)" -eq 2 ]
}

@test "incomplete raw streams and a cut encrypted layer leave no FILE; a whole encrypted layer is kept" {
	for c in no-ram no-pages early-eof-after-config early-eof-after-part early-eof-after-end no-ram-end cut-in-end; do
		tail -c +2 "$REPO/tests/fuzz/corpus/qemu-stream/raw-end-$c" > raw
		run -1 --separate-stderr bash -c 'mig-tee ckpt < raw > out'
		output=$stderr assert_output --regexp "^mig-tee: ckpt: not written: QEMU stream: (incomplete|truncated): "
		cmp out raw
		[ ! -e ckpt ]
	done
	tail -c +2 "$REPO/tests/fuzz/corpus/qemu-stream/raw-end-complete" > raw
	mig-tee ckpt < raw > /dev/null
	cmp ckpt raw
	rm ckpt
	mig-keygen -o k
	mig-encrypt -k k < "$STREAM" > e
	head -c 50 e > e50
	run -1 --separate-stderr bash -c 'mig-tee ckpt < e50 > /dev/null'
	output=$stderr assert_output "mig-tee: ckpt: not written: truncated: the stream ends inside the layer header"
	[ ! -e ckpt ]
	mig-tee ckpt < e > /dev/null
	cmp ckpt e
	assert_no_temporaries .
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

@test "without O_TMPFILE: every catchable signal that ends mig-tee removes the temporary" {
	local faults="BUS FPE SEGV"
	# a sanitizer build keeps AddressSanitizer's handlers for these (it
	# reports and exits 1), which mig-tee leaves in place
	! ldd "$MIG_BIN/mig-tee" | grep -q libasan || faults=
	for sig in HUP INT QUIT ILL TRAP ABRT $faults USR1 USR2 ALRM TERM STKFLT \
		XCPU VTALRM PROF IO PWR SYS RTMIN RTMIN+5 RTMAX; do
		tee_without_tmpfile ckpt
		signal_leaves_nothing "$sig"
		rm -f in out err
	done
}

@test "without O_TMPFILE: SIGPIPE and SIGXFSZ are ignored, an ignored SIGHUP stays ignored" {
	for sig in PIPE XFSZ; do
		tee_without_tmpfile ckpt
		kill -s "$sig" "$pid"
		tail -c +3000001 "$STREAM" >&$w
		exec {w}>&-
		wait "$pid"
		cmp ckpt "$STREAM"
		assert_no_temporaries .
		rm -f in out err ckpt
	done
	mkfifo in
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		LD_PRELOAD=$NO_TMPFILE_SO env --ignore-signal=HUP mig-tee ckpt < in > out 2> err &
	pid=$!
	exec {w}> in
	head -c 3000000 "$STREAM" >&$w
	wait_for_temporary
	kill -s HUP "$pid"
	tail -c +3000001 "$STREAM" >&$w
	exec {w}>&-
	wait "$pid"
	cmp ckpt "$STREAM"
	assert_no_temporaries .
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
	run -2 --separate-stderr mig-tee ''
	output=$stderr assert_output "mig-tee: the checkpoint FILE is an empty name
Try 'mig-tee --help'."
	run -2 --separate-stderr mig-tee --meta "bad key=1" f
	output=$stderr assert_output --partial "mig-tee: --meta 'bad key=1': META key has a character outside"
	# an unknown option in every command's words, in one message
	run -2 --separate-stderr mig-tee --bogus f
	output=$stderr assert_output "mig-tee: unknown or incomplete option '--bogus'
Try 'mig-tee --help'."
	run -2 --separate-stderr mig-tee --meta
	output=$stderr assert_output "mig-tee: unknown or incomplete option '--meta'
Try 'mig-tee --help'."
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

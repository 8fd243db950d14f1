#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# Closed standard descriptors, every command but mig-ssh (tests/ssh.bats)
# x descriptors 0, 1 and 2. Every command opens /dev/null on a closed one
# before it opens anything (channel/stdfds.c), so:
#   closed stdin  = an empty input: the same status, output and messages
#                   as with stdin on /dev/null;
#   closed stdout = exit 3, "PROG: stdout: closed", nothing read or made;
#   closed stderr = the messages are lost, nothing else: the same status
#                   and output as with stderr on /dev/null, and no file
#                   (checkpoint, key) holds a foreign byte.
# Before, mig-tee with stdout closed opened its checkpoint as descriptor 1
# and forwarded the stream into it (exit 0, a corrupt checkpoint), and
# with stderr closed wrote its -v and --progress text into it.
# shellcheck disable=SC2016,SC2034,SC2154

setup() {
	load lib/common
	# a directory of its own: bats keeps its files in BATS_TEST_TMPDIR
	mkdir "$BATS_TEST_TMPDIR/w" && cd "$BATS_TEST_TMPDIR/w" || exit 1
	head -c 3000000 /dev/urandom > data
	mig-checksum < data > data.ck
	mig-compress < data > data.mz
	mig-envelope --meta a=b < data > data.env
	mig-keygen -q -o key
	mig-encrypt -k key < data > data.enc
	printf 'QEVM\0\0\0\3' > qevm # a raw QEMU stream cut after its header
}

# The command lines (bash) of each case: CMD reads its stream from
# standard input, IN is the stream it is given when stdin is open; $N is
# "closed" or "null" (the run with the descriptor closed, or on
# /dev/null), for names of files the command makes. NORM turns its stdout
# into what is compared (a random salt or key id aside). PROG is the name
# its messages start with.
declare -gA CMD IN NORM PROG
CMD[checksum]='mig-checksum -v --progress'
IN[checksum]=data
CMD[checksum-d]='mig-checksum -d -v --progress'
IN[checksum-d]=data.ck
CMD[envelope]='mig-envelope --meta a=b -v --progress'
IN[envelope]=data
CMD[envelope-d]='mig-envelope -d -v --progress'
IN[envelope-d]=data.env
CMD[compress]='mig-compress -v --progress'
IN[compress]=data
CMD[decompress]='mig-decompress -v --progress'
IN[decompress]=data.mz
CMD[encrypt]='mig-encrypt -k key -v --progress'
IN[encrypt]=data
NORM[encrypt]='mig-decrypt -k key'
CMD[decrypt]='mig-decrypt -k key -v --progress'
IN[decrypt]=data.enc
CMD[tee]='mig-tee -v --progress ckpt.$N'
IN[tee]=data.ck
CMD[info]='mig-info'
IN[info]=data.ck
CMD[keygen]='mig-keygen -o key.$N'
IN[keygen]=/dev/null
NORM[keygen]='sed "s/key\.[a-z]*:/KEY:/; s/key id [0-9a-f]*/key id ID/"'
CMD[recv]='mig-recv -n --qmp mon.sock qemu-system-x86_64 -m 64M -incoming -'
IN[recv]=qevm
CMD[qemu-seal]='mig-qemu seal'
IN[qemu-seal]=qevm
for c in "${!CMD[@]}"; do
	p=${CMD[$c]%% *}
	PROG[$c]=$p
	NORM[$c]=${NORM[$c]:-cat}
done

# Run case C with its stdin from WHERE (a redirection) and more
# redirections, N=$1; stdout into out.$N; sets status and stderr.
run_case() { # N C REDIRECTIONS
	local n=$1 c=$2
	run --separate-stderr env N="$n" bash -c "${CMD[$c]} > out.$n $3"
}

# Its normalized stdout.
normalized() { # C FILE
	bash -c "${NORM[$1]}" < "$2"
}

# The same status, messages (with the run's name made N) and output with
# descriptor FD closed as with it on /dev/null.
assert_as_devnull() { # C FD CLOSE DEVNULL
	local c=$1 st msg now
	run_case null "$c" "$4"
	# times (--progress) differ from run to run: not what is compared
	st=$status msg=$(sed -E 's/[0-9]+\.[0-9]+ s\b/T s/g' <<<"${stderr//null/N}")
	run_case closed "$c" "$3"
	now=$(sed -E 's/[0-9]+\.[0-9]+ s\b/T s/g' <<<"${stderr//closed/N}")
	[ "$status" = "$st" ] || fail "$c, descriptor $2 closed: exit $status, on /dev/null $st"
	[ "$now" = "$msg" ] || fail "$c, descriptor $2 closed: says '$stderr', on /dev/null '$msg'"
	cmp <(normalized "$c" out.closed) <(normalized "$c" out.null) ||
		fail "$c, descriptor $2 closed: other output than on /dev/null"
}

# Closed stdin: an empty input.
check_stdin() { # C
	assert_as_devnull "$1" 0 '<&-' '< /dev/null'
}

# Closed stdout: exit 3 at once, saying so; no file made.
check_stdout() { # C
	local c=$1 before after
	before=$(ls)
	run --separate-stderr env N=closed bash -c "${CMD[$c]} < ${IN[$c]} >&-"
	[ "$status" = 3 ] || fail "$c, stdout closed: exit $status, not 3 ($stderr)"
	[ "$stderr" = "${PROG[$c]}: stdout: closed" ] ||
		fail "$c, stdout closed: says '$stderr'"
	after=$(ls)
	[ "$before" = "$after" ] || fail "$c, stdout closed: files made: $(comm -13 <(echo "$before") <(echo "$after"))"
}

# Closed stderr: messages lost, nothing else changes.
check_stderr() { # C
	assert_as_devnull "$1" 2 "< ${IN[$1]} 2>&-" "< ${IN[$1]} 2>/dev/null"
	[ -z "$stderr" ] || fail "$1, stderr closed: '$stderr' came out"
}

# Each case starts with none of the files an earlier one made.
fresh() { rm -f -- *.closed *.null; }

check_all() { # C
	fresh
	check_stdin "$1"
	fresh
	check_stdout "$1"
	fresh
	check_stderr "$1"
}

@test "mig-checksum and -d" {
	check_all checksum
	cmp out.closed data.ck
	check_all checksum-d
	cmp out.closed data
}

@test "mig-envelope and -d" {
	check_all envelope
	cmp out.closed data.env
	check_all envelope-d
	cmp out.closed data
}

@test "mig-compress and mig-decompress" {
	check_all compress
	cmp out.closed data.mz
	check_all decompress
	cmp out.closed data
	# the alias is no special case
	run --separate-stderr bash -c 'mig-compress -d < data.mz >&-'
	[ "$status" = 3 ] && [ "$stderr" = "mig-compress: stdout: closed" ]
}

@test "mig-encrypt and mig-decrypt" {
	check_all encrypt
	mig-decrypt -k key < out.closed | cmp - data
	check_all decrypt
	cmp out.closed data
}

@test "mig-tee: the checkpoint never takes a standard descriptor's place" {
	check_all tee
	# stderr closed: -v and --progress text went nowhere, the checkpoint
	# and the forwarded stream are the input byte for byte
	cmp ckpt.closed data.ck
	cmp out.closed data.ck
	# stdout closed: no checkpoint (check_stdout: no file made); -o has
	# nothing for stdout, so it goes on
	run --separate-stderr bash -c 'mig-tee -o only.ck < data.ck >&-'
	[ "$status" = 0 ] && [ -z "$stderr" ] || fail "-o: exit $status ($stderr)"
	cmp only.ck data.ck
}

@test "mig-info: a description that cannot be written is exit 3, -q has none" {
	check_all info
	run -0 --separate-stderr bash -c 'mig-info -q data.ck >&-'
	[ -z "$stderr" ]
	# and when writing it fails
	run -3 --separate-stderr bash -c 'mig-info data.ck > /dev/full'
	[ "$stderr" = "mig-info: stdout: No space left on device" ]
	# a bad stream's own status wins over the lost description
	head -c 1000 data.ck > cut.ck
	run -1 --separate-stderr bash -c 'mig-info cut.ck > /dev/full'
}

@test "mig-keygen: no key whose report was lost; -q needs no stdout" {
	check_all keygen
	# stderr closed: the key file is whole and works
	[ "$(stat -c %s key.closed)" = "$(stat -c %s key.null)" ]
	mig-encrypt -k key.closed < data | mig-decrypt -k key.closed | cmp - data
	run -3 --separate-stderr bash -c 'mig-keygen --pair id >&-'
	[ "$stderr" = "mig-keygen: stdout: closed" ]
	[ ! -e id ] && [ ! -e id.pub ]
	run -3 --separate-stderr bash -c 'mig-keygen -q --pair id && mig-keygen -y id >&-'
	[ "$stderr" = "mig-keygen: stdout: closed" ]
	run -0 --separate-stderr bash -c 'mig-keygen -q -o quiet.key >&-'
	[ -z "$stderr" ] && [ -s quiet.key ]
}

@test "mig-recv" {
	check_all recv
	[ "$(cat out.closed)" = "qemu-system-x86_64 -m 64M -qmp unix:mon.sock,server=on,wait=off -incoming fd:3" ]
	# without -n nothing is written to stdout: a closed one is no error
	# (here: the same refusal of an empty stream as with it open)
	run -1 --separate-stderr bash -c 'mig-recv qemu-system-x86_64 -incoming - < /dev/null >&-'
	[ "$stderr" = "mig-recv: stdin: the stream is empty" ]
}

@test "mig-qemu seal and --json" {
	check_all qemu-seal
	run -3 --separate-stderr bash -c 'mig-qemu migrate --json no.sock "cat" >&-'
	[ "$stderr" = "mig-qemu: --json: stdout: closed" ]
}

@test "-h and -V with stdout closed: exit 3" {
	local c
	for c in mig-checksum mig-compress mig-decompress mig-decrypt mig-envelope \
		mig-tee mig-info mig-compact mig-delta mig-keygen mig-recv mig-qemu; do
		run --separate-stderr bash -c "$c -h >&-"
		[ "$status" = 3 ] && [ "$stderr" = "$c: stdout: closed" ] ||
			fail "$c -h: exit $status, '$stderr'"
		run --separate-stderr bash -c "$c -V >&-"
		[ "$status" = 3 ] && [ "$stderr" = "$c: stdout: closed" ] ||
			fail "$c -V: exit $status, '$stderr'"
		run -0 --separate-stderr "$c" -V
		[ "$output" = "$c (migkit) 0.1.0" ] || fail "$c -V says '$output'"
	done
}

# A stage whose reader went fails at once, while its own input is idle:
# not at its next write, which a compressor may make only megabytes later.
# So EPIPE climbs a dead pipeline to QEMU while it still sends, and the
# migration fails with the source running (tests/faults.bats).
@test "every filter fails at once (exit 3) when its reader goes while its input is idle" {
	local c
	# The input stalls for 3 s (a sleep whose pid is in sp); once the
	# filter has exited, the sleep is ended, so the test need not wait.
	local stall='sleep 3 & echo $! > sp; wait'
	local end_stall='for ((i = 0; i < 500; i++)); do [ -s sp ] && break; sleep 0.01; done; kill $(cat sp) 2>/dev/null'
	for c in mig-checksum mig-compress mig-envelope; do
		# after 100 bytes; the reader takes 1 byte
		rm -f sp
		run -0 --separate-stderr bash -c "{ head -c 100 /dev/urandom; $stall; } |
			{ s=\$EPOCHREALTIME; $c; echo \$? > rc; echo \"\$EPOCHREALTIME - \$s\" | bc > took; $end_stall; } |
			head -c 1 > /dev/null"
		[ "$(cat rc)" = 3 ] || fail "$c exited $(cat rc)"
		output=$stderr assert_output "$c: stdin: write to stdout: Broken pipe"
		# before its input ended: the old way took the whole 3 s
		[ "$(echo "$(cat took) < 1.5" | bc)" = 1 ] || fail "$c took $(cat took) s"
		# with --progress, which waits for the first byte to say when it
		# came: a reader gone before any input is seen at once too
		rm -f sp
		run -0 --separate-stderr bash -c "{ $stall; } |
			{ s=\$EPOCHREALTIME; $c --progress; echo \$? > rc; echo \"\$EPOCHREALTIME - \$s\" | bc > took; $end_stall; } |
			true"
		[ "$(cat rc)" = 3 ] || fail "$c --progress exited $(cat rc)"
		output=$stderr assert_output --partial "$c: stdin: write to stdout: Broken pipe"
		[ "$(echo "$(cat took) < 1.5" | bc)" = 1 ] || fail "$c --progress took $(cat took) s"
	done
}

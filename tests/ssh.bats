#!/usr/bin/env bats
# mig-ssh against a real OpenSSH server started for this file on 127.0.0.1
# (tests/lib/sshd.bash): data, exit statuses, host keys, identities,
# configuration, and failures mid-stream.

setup_file() {
	load lib/common
	load lib/sshd
	test_stream_setup
	sshd_start "$BATS_FILE_TMPDIR/sshd" >&3
	# a key the server does not know, and one with a passphrase
	ssh-keygen -q -t ed25519 -N '' -f "$BATS_FILE_TMPDIR/stranger"
	ssh-keygen -q -t ed25519 -N 'secret' -f "$BATS_FILE_TMPDIR/locked"
	cat "$BATS_FILE_TMPDIR/locked.pub" >> "$SSHD_DIR/authorized_keys"
}

teardown_file() {
	load lib/sshd
	sshd_stop "$BATS_FILE_TMPDIR/sshd"
}

setup() {
	load lib/common
	load lib/sshd
	cd "$BATS_TEST_TMPDIR" || exit 1
	unset SSH_AUTH_SOCK SSH_AGENT_PID
	H="[127.0.0.1]:$SSHD_PORT"
	# everything explicit, nothing from ~/.ssh
	NOCFG=(-F /dev/null -o GlobalKnownHostsFile=/dev/null)
}

@test "--help and --version" {
	run -0 mig-ssh --help
	assert_line --index 0 "usage: mig-ssh [-p PORT] [-l USER] [-i IDENTITY] [-F CONFIG] [-o Option=value]..."
	run -0 mig-ssh -V
	assert_output "mig-ssh (migkit) 0.1.0"
}

@test "usage errors exit 255, as mig-ssh's own failures" {
	run -255 --separate-stderr mig-ssh
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-ssh: no host given"
	run -255 --separate-stderr mig-ssh host
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-ssh: no command given (mig-ssh opens no login shell)"
	run -255 --separate-stderr mig-ssh -p 0 host true
	output=$stderr assert_output "mig-ssh: -p '0': not a port from 1 to 65535"
	run -255 --separate-stderr mig-ssh -o Bogus=1 host true
	output=$stderr assert_output "mig-ssh: -o 'Bogus=1': unsupported option"
	run -255 --separate-stderr mig-ssh -o BatchMode=no host true
	output=$stderr assert_output "mig-ssh: -o 'BatchMode=no': mig-ssh only runs in batch mode"
}

@test "a real QEMU stream round-trips byte for byte through mig-ssh ... cat" {
	mig-ssh -F "$SSH_CFG" sshd-test cat < "$STREAM" > back
	cmp back "$STREAM"
	# and one way, into a file on the far side
	mig-ssh -F "$SSH_CFG" sshd-test "cat > '$BATS_TEST_TMPDIR/far'" < "$STREAM"
	cmp far "$STREAM"
}

@test "the end of stdin reaches the remote command as EOF" {
	run -0 bash -c 'printf abc | mig-ssh -F "$SSH_CFG" sshd-test "cat; echo END"'
	assert_output "abcEND"
	run -0 mig-ssh -F "$SSH_CFG" sshd-test "wc -c" < /dev/null
	assert_output "0"
}

@test "remote stdout and stderr stay apart" {
	run -0 --separate-stderr mig-ssh -F "$SSH_CFG" sshd-test 'echo out; echo err >&2; echo out2'
	assert_output $'out\nout2'
	output=$stderr assert_output "err"
}

@test "the remote exit status is mig-ssh's" {
	run -7 mig-ssh -F "$SSH_CFG" sshd-test 'exit 7' < /dev/null
	run -0 mig-ssh -F "$SSH_CFG" sshd-test true < /dev/null
	run -1 mig-ssh -F "$SSH_CFG" sshd-test false < /dev/null
	# the words are joined as ssh(1) does, for the remote shell
	run -0 mig-ssh -F "$SSH_CFG" sshd-test echo a '"b c"' < /dev/null
	assert_output "a b c"
}

@test "a remote command that cannot start: 127 from the remote shell" {
	run -127 --separate-stderr mig-ssh -F "$SSH_CFG" sshd-test no-such-command-here < /dev/null
	output=$stderr assert_output --partial "no-such-command-here: command not found"
}

@test "a remote command killed by a signal is a failure (255)" {
	run -255 --separate-stderr mig-ssh -F "$SSH_CFG" sshd-test 'kill -9 $$' < /dev/null
	output=$stderr assert_output "mig-ssh: sshd-test: the remote command was killed by signal KILL"
}

@test "-p, -l, -i and -o UserKnownHostsFile without a configuration" {
	run -0 mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$SSH_KNOWN" \
		-p "$SSHD_PORT" -l "$SSHD_USER" -i "$SSH_ID" 127.0.0.1 echo ok < /dev/null
	assert_output "ok"
	run -0 mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$SSH_KNOWN" \
		-o Port="$SSHD_PORT" -i "$SSH_ID" "$SSHD_USER@127.0.0.1" echo ok < /dev/null
	assert_output "ok"
}

@test "the configuration is honoured: Host, HostName, Port, User, IdentityFile, Ciphers" {
	cat > cfg <<-EOF
	Host far
	    HostName 127.0.0.1
	    Port $SSHD_PORT
	    User $SSHD_USER
	    IdentityFile $SSH_ID
	    UserKnownHostsFile $SSH_KNOWN
	    Ciphers aes256-ctr
	Host *
	    Port 1
	EOF
	run -0 --separate-stderr mig-ssh -v -F cfg far 'echo $USER' < /dev/null
	assert_output "$SSHD_USER"
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-ssh: far: connected to 127.0.0.1 port $SSHD_PORT as $SSHD_USER, cipher aes256-ctr"
	# -o overrides the file
	run -0 --separate-stderr mig-ssh -v -F cfg -o Ciphers=aes128-ctr far true < /dev/null
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 --partial "cipher aes128-ctr"
	# without Ciphers, AES-GCM is preferred
	run -0 --separate-stderr mig-ssh -v -F "$SSH_CFG" sshd-test true < /dev/null
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 --partial "cipher aes128-gcm@openssh.com"
}

@test "-F with a missing file is refused" {
	run -255 --separate-stderr mig-ssh -F nonexistent sshd-test true
	output=$stderr assert_output "mig-ssh: sshd-test: cannot read the configuration nonexistent: No such file or directory"
}

@test "an unknown host key is refused" {
	: > known
	run -255 --separate-stderr mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$PWD/known" \
		-p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 'touch '"$PWD"'/ran' < /dev/null
	output=$stderr assert_output --regexp "^mig-ssh: 127\.0\.0\.1: host key verification failed: no host key is known for \[127\.0\.0\.1\]:$SSHD_PORT and StrictHostKeyChecking is yes \(ED25519 key SHA256:[A-Za-z0-9+/]{43}\)$"
	[ ! -e ran ]
	[ ! -s known ]
	# StrictHostKeyChecking in the configuration too
	printf 'Host *\n  StrictHostKeyChecking yes\n' > cfg
	run -255 mig-ssh -F cfg -o UserKnownHostsFile="$PWD/known" -p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 true < /dev/null
}

@test "StrictHostKeyChecking=accept-new accepts and records an unknown host key" {
	run -0 --separate-stderr mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$PWD/known" \
		-o StrictHostKeyChecking=accept-new -p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 echo ok < /dev/null
	assert_output "ok"
	output=$stderr assert_output --regexp "^mig-ssh: 127\.0\.0\.1: warning: permanently added \[127\.0\.0\.1\]:$SSHD_PORT \(ED25519 key SHA256:.*\) to $PWD/known$"
	run -0 cat known
	assert_output "$H $(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")"
	# recorded: the next connection is strict and quiet
	run -0 --separate-stderr mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$PWD/known" \
		-p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 echo ok < /dev/null
	[ -z "$stderr" ]
	# from the configuration file as well, and -q silences the warning
	printf 'Host 127.0.0.1\n  StrictHostKeyChecking accept-new\n' > cfg
	run -0 --separate-stderr mig-ssh -q -F cfg -o UserKnownHostsFile="$PWD/known2" \
		-p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 echo ok < /dev/null
	[ -z "$stderr" ]
	[ -s known2 ]
}

@test "a changed host key is refused loudly, even with accept-new" {
	ssh-keygen -q -t ed25519 -N '' -f other
	echo "$H $(cut -d' ' -f1,2 other.pub)" > known
	run -255 --separate-stderr mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$PWD/known" \
		-o StrictHostKeyChecking=accept-new -p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 'touch '"$PWD"'/ran' < /dev/null
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 1 "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @"
	assert_line "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!"
	assert_line "Add correct host key in $PWD/known to get rid of this message."
	assert_line --index -1 --regexp "^mig-ssh: 127\.0\.0\.1: host key verification failed: the host key of \[127\.0\.0\.1\]:$SSHD_PORT has changed \(ED25519 key SHA256:.*\), refusing to connect$"
	[ ! -e ran ]
	run -0 cat known
	assert_output "$H $(cut -d' ' -f1,2 other.pub)"
}

@test "a key the server does not accept is refused" {
	run -255 --separate-stderr mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$SSH_KNOWN" \
		-p "$SSHD_PORT" -i "$BATS_FILE_TMPDIR/stranger" 127.0.0.1 true < /dev/null
	output=$stderr assert_output "mig-ssh: 127.0.0.1: authentication as $SSHD_USER failed: permission denied (publickey): no key from the agent, -i or the default identities was accepted"
}

@test "a missing identity file is named, then authentication fails" {
	run -255 --separate-stderr mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$SSH_KNOWN" \
		-p "$SSHD_PORT" -i nonexistent 127.0.0.1 true < /dev/null
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-ssh: 127.0.0.1: warning: identity file nonexistent not accessible: No such file or directory"
	assert_line --index 1 --partial "mig-ssh: 127.0.0.1: authentication as $SSHD_USER failed: permission denied"
}

@test "no passphrase prompt: stdin (the stream) is never read for one" {
	printf 'secret\nsecret\n' > input
	run -255 --separate-stderr bash -c 'mig-ssh -F /dev/null -o GlobalKnownHostsFile=/dev/null \
		-o UserKnownHostsFile="$SSH_KNOWN" -p "$SSHD_PORT" \
		-i "$BATS_FILE_TMPDIR/locked" 127.0.0.1 true < input; rc=$?; cat < input > /dev/null; exit $rc'
	output=$stderr assert_output --partial "authentication as $SSHD_USER failed"
	# and the stream is still all there for whoever reads it next
	run -0 bash -c '{ mig-ssh -F /dev/null -o UserKnownHostsFile=/dev/null -p "$SSHD_PORT" 127.0.0.1 true 2>/dev/null; cat; } < input'
	assert_output $'secret\nsecret'
}

@test "the ssh agent is used" {
	eval "$(ssh-agent -s)" > /dev/null
	ssh-add -q "$SSH_ID" 2>/dev/null
	run -0 mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$SSH_KNOWN" -p "$SSHD_PORT" 127.0.0.1 echo agent < /dev/null
	kill "$SSH_AGENT_PID"
	assert_output "agent"
}

@test "connection refused" {
	port=$(free_port)
	run -255 --separate-stderr mig-ssh "${NOCFG[@]}" -p "$port" 127.0.0.1 true < /dev/null
	output=$stderr assert_output "mig-ssh: 127.0.0.1: cannot connect to 127.0.0.1 port $port: Connection refused"
}

@test "a server killed mid-stream: non-zero, never success" {
	mkfifo in
	mig-ssh -F "$SSH_CFG" sshd-test "cat > /dev/null" < in > out 2> err &
	pid=$!
	exec 5> in
	head -c 8M "$STREAM" >&5
	wait_for 10 eval '[ -n "$(sshd_sessions)" ]'
	for p in $(sshd_sessions); do kill -KILL "$p"; done
	# stdin stays open: only the cut can end it
	head -c 8M "$STREAM" >&5 2>/dev/null || true
	rc=0
	wait "$pid" || rc=$?
	exec 5>&-
	[ "$rc" -eq 255 ] || fail "exit status $rc"
	run cat err
	assert_output --regexp "^mig-ssh: sshd-test: (connection lost (while sending|while receiving|): .+|connection closed without an exit status from the remote command .*)$"
}

@test "a cut after the stream's end still lacks an exit status: 255" {
	# the session dies after reading everything, before its exit status
	run -255 --separate-stderr mig-ssh -F "$SSH_CFG" sshd-test 'cat > /dev/null; kill -9 $PPID' < "$STREAM"
	output=$stderr assert_output --regexp "^mig-ssh: sshd-test: (connection lost.*|connection closed without an exit status from the remote command .*)$"
}

@test "a closed stdout is an error, not a success" {
	run -255 --separate-stderr bash -c 'mig-ssh -F "$SSH_CFG" sshd-test cat < "$STREAM" | head -c 1 > /dev/null; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-ssh: sshd-test: write to stdout: Broken pipe"
}

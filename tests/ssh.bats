#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-ssh against a real OpenSSH server started for this file on 127.0.0.1
# (tests/lib/sshd.bash): data, exit statuses, host keys (revoked ones too),
# identities, configuration, closed standard descriptors, failures
# mid-stream and stalled servers.

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
	HOSTKEY=$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")
	LOG_MARK=$(sshd_log_mark)
}

# Processes a test stopped (SIGSTOP): resumed and ended whatever happened.
teardown() {
	local p
	[ -s "$BATS_TEST_TMPDIR/stopped" ] || return 0
	for p in $(cat "$BATS_TEST_TMPDIR/stopped"); do
		kill -CONT "$p" 2>/dev/null || true
		[ "$p" = "$(cat "$SSHD_PIDFILE")" ] || kill "$p" 2>/dev/null || true
	done
}

# Nothing mig-ssh wrote reached the server as garbage.
assert_no_bad_packets() {
	run sshd_log_since "$LOG_MARK"
	refute_output --partial "Bad packet length"
	refute_output --partial "Corrupted MAC"
	refute_output --partial "Connection corrupted"
}

# mig-ssh with known_hosts file $PWD/known and StrictHostKeyChecking $1;
# the remote command leaves a file "ran".
ssh_known() {
	mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$PWD/known" \
		-o StrictHostKeyChecking="$1" -p "$SSHD_PORT" -i "$SSH_ID" \
		127.0.0.1 "touch '$PWD/ran'; echo ok" < /dev/null
}

POLICIES=(yes ask accept-new no off)

# ssh(1)'s warning for a revoked key, then mig-ssh's refusal.
assert_revoked_refusal() { # KNOWN_FILE
	output=$stderr lines=("${stderr_lines[@]}")
	assert_equal "${#lines[@]}" 7
	assert_line --index 0 "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@"
	assert_line --index 1 "@       WARNING: REVOKED HOST KEY DETECTED!               @"
	assert_line --index 3 "The ED25519 host key for $H is marked as revoked."
	assert_line --index 4 "This could mean that a stolen key is being used to"
	assert_line --index 5 "impersonate this host."
	assert_line --index 6 --regexp "^mig-ssh: 127\.0\.0\.1: host key verification failed: the ED25519 host key for \[127\.0\.0\.1\]:$SSHD_PORT was revoked \(@revoked in ${1//./\\.}; ED25519 key SHA256:[A-Za-z0-9+/]{43}\), refusing to connect$"
}

@test "--help and --version" {
	run -0 mig-ssh --help
	assert_line --index 0 "usage: mig-ssh [-p PORT] [-l USER] [-i IDENTITY] [-F CONFIG] [-o Option=value]..."
	run -0 mig-ssh -V
	assert_output "mig-ssh (migkit) 0.1.0"
	# text that cannot be written is a failure of mig-ssh's own (255)
	run -255 --separate-stderr bash -c 'mig-ssh -V >&-'
	[ "$stderr" = "mig-ssh: stdout: closed" ]
	run -255 --separate-stderr bash -c 'mig-ssh --help > /dev/full'
	[ "$stderr" = "mig-ssh: stdout: No space left on device" ]
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
	# an unknown option in every command's words, in one message
	run -255 --separate-stderr mig-ssh --bogus host true
	output=$stderr assert_output "mig-ssh: unknown or incomplete option '--bogus'
Try 'mig-ssh --help'."
	run -255 --separate-stderr mig-ssh -p
	output=$stderr assert_output "mig-ssh: unknown or incomplete option '-p'
Try 'mig-ssh --help'."
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
	mig-ssh -F "$SSH_CFG" sshd-test "echo started; cat > /dev/null" < in > out 2> err &
	pid=$!
	exec 5> in
	head -c 8M "$STREAM" >&5
	# the command runs (stdin is read ahead while connecting: the 8 MiB
	# went in before), and the stream is under way
	wait_for 10 grep -q started out
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

# ---- known_hosts markers x StrictHostKeyChecking ---------------------------
# Measured against OpenSSH 9.2's ssh(1) on the same server: it refuses a
# key marked @revoked under yes, ask and accept-new, and under no connects
# "unsafely" after the warning; mig-ssh refuses under every value, as it
# does a changed key. A @cert-authority line vouches only for host
# certificates: for a plain host key it is no entry at all, to both.

@test "known_hosts: a plain entry for the server's key is accepted under every policy" {
	for p in "${POLICIES[@]}"; do
		echo "$H $HOSTKEY" > known
		run -0 --separate-stderr ssh_known "$p"
		assert_output "ok"
		[ -z "$stderr" ] || fail "$p: $stderr"
		rm ran
		run -0 cat known
		assert_output "$H $HOSTKEY"
	done
}

@test "known_hosts: @revoked refuses the key under every policy, whatever else the file says" {
	local other
	ssh-keygen -q -t ed25519 -N '' -f other
	other=$(cut -d' ' -f1,2 other.pub)
	# the marker for this host, for any host, for a hashed name, and
	# beside a plain line that would accept the key
	echo "$H $HOSTKEY" > plain
	ssh-keygen -q -H -f plain 2> /dev/null
	hashed=$(cut -d' ' -f1 plain)
	for marker in "@revoked $H $HOSTKEY" "@revoked * $HOSTKEY" \
		"@revoked $hashed $HOSTKEY" $'@revoked\t127.0.0.1,'"$H $HOSTKEY comment" \
		"$H $HOSTKEY"$'\n'"@revoked * $HOSTKEY"; do
		for p in "${POLICIES[@]}"; do
			printf '%s\n' "$marker" > known
			cp known known.before
			run -255 --separate-stderr ssh_known "$p"
			[ -z "$output" ] || fail "$p: $output"
			assert_revoked_refusal "$PWD/known"
			[ ! -e ran ] || fail "$p, '$marker': the command ran"
			cmp known known.before
		done
	done
	# a revoked key that is not the server's changes nothing
	for p in "${POLICIES[@]}"; do
		printf '%s\n' "@revoked * $other" "$H $HOSTKEY" > known
		run -0 --separate-stderr ssh_known "$p"
		assert_output "ok"
		[ -z "$stderr" ] || fail "$p: $stderr"
	done
}

@test "known_hosts: @revoked in the global known hosts file is honoured too" {
	echo "$H $HOSTKEY" > known
	echo "@revoked * $HOSTKEY" > global
	run -255 --separate-stderr mig-ssh -F /dev/null -o GlobalKnownHostsFile="$PWD/global" \
		-o UserKnownHostsFile="$PWD/known" -p "$SSHD_PORT" -i "$SSH_ID" \
		127.0.0.1 "touch '$PWD/ran'" < /dev/null
	assert_revoked_refusal "$PWD/global"
	[ ! -e ran ]
	# and StrictHostKeyChecking from the configuration file changes nothing
	printf 'Host *\n  StrictHostKeyChecking no\n  GlobalKnownHostsFile %s\n' "$PWD/global" > cfg
	run -255 --separate-stderr mig-ssh -F cfg -o UserKnownHostsFile="$PWD/known" \
		-p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 "touch '$PWD/ran'" < /dev/null
	assert_revoked_refusal "$PWD/global"
	[ ! -e ran ]
}

@test "known_hosts: @cert-authority is no entry for a plain host key (as for ssh(1))" {
	for p in "${POLICIES[@]}"; do
		echo "@cert-authority $H $HOSTKEY" > known
		rm -f ran
		case $p in
		yes | ask)
			run -255 --separate-stderr ssh_known "$p"
			output=$stderr assert_output --regexp "^mig-ssh: 127\.0\.0\.1: host key verification failed: no host key is known for \[127\.0\.0\.1\]:$SSHD_PORT and StrictHostKeyChecking is yes \(ED25519 key SHA256:[A-Za-z0-9+/]{43}\)$"
			[ ! -e ran ]
			run -0 cat known
			assert_output "@cert-authority $H $HOSTKEY"
			;;
		*)
			run -0 --separate-stderr ssh_known "$p"
			assert_output "ok"
			output=$stderr assert_output --regexp "^mig-ssh: 127\.0\.0\.1: warning: permanently added \[127\.0\.0\.1\]:$SSHD_PORT \(ED25519 key SHA256:.*\) to $PWD/known$"
			run -0 cat known
			assert_output "@cert-authority $H $HOSTKEY"$'\n'"$H $HOSTKEY"
			;;
		esac
	done
}

# ---- RevokedHostKeys --------------------------------------------------------

@test "RevokedHostKeys with the server's key refuses it under every policy" {
	ssh-keygen -q -t ed25519 -N '' -f other
	{ echo "# revoked"; echo; cat other.pub; cat "$SSHD_DIR/host_ed25519.pub"; } > revoked
	for p in "${POLICIES[@]}"; do
		echo "$H $HOSTKEY" > known
		run -255 --separate-stderr mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$PWD/known" \
			-o StrictHostKeyChecking="$p" -o RevokedHostKeys="$PWD/revoked" \
			-p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 "touch '$PWD/ran'" < /dev/null
		output=$stderr assert_output --regexp "^mig-ssh: 127\.0\.0\.1: host key verification failed: host key ED25519 SHA256:[A-Za-z0-9+/]{43} revoked by file $PWD/revoked$"
		[ ! -e ran ]
	done
	# unknown host and accept-new: refused before anything is recorded
	: > known
	run -255 mig-ssh "${NOCFG[@]}" -o UserKnownHostsFile="$PWD/known" \
		-o StrictHostKeyChecking=accept-new -o RevokedHostKeys="$PWD/revoked" \
		-p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 true < /dev/null
	[ ! -s known ]
}

@test "RevokedHostKeys with another key lets the server in" {
	ssh-keygen -q -t ed25519 -N '' -f other
	ssh-keygen -q -t rsa -b 2048 -N '' -f other-rsa
	cat other.pub other-rsa.pub > revoked
	run -0 --separate-stderr mig-ssh -F "$SSH_CFG" -o RevokedHostKeys="$PWD/revoked" sshd-test echo ok < /dev/null
	assert_output "ok"
	[ -z "$stderr" ]
}

@test "RevokedHostKeys from the configuration file, per Host; -o wins; none" {
	cat "$SSHD_DIR/host_ed25519.pub" > revoked
	{ cat "$SSH_CFG"; printf '    RevokedHostKeys %s\n' "$PWD/revoked"; } > cfg
	run -255 --separate-stderr mig-ssh -F cfg sshd-test "touch '$PWD/ran'" < /dev/null
	output=$stderr assert_output --regexp "^mig-ssh: sshd-test: host key verification failed: host key ED25519 SHA256:.* revoked by file $PWD/revoked$"
	[ ! -e ran ]
	# -o comes first; "none" turns it off
	run -0 mig-ssh -F cfg -o RevokedHostKeys=none sshd-test echo ok < /dev/null
	assert_output "ok"
	# another Host's setting does not apply
	{ cat "$SSH_CFG"; printf 'Host elsewhere\n    RevokedHostKeys %s\n' "$PWD/revoked"; } > cfg2
	run -0 mig-ssh -F cfg2 sshd-test echo ok < /dev/null
	assert_output "ok"
}

@test "RevokedHostKeys that cannot be read, or is a KRL, refuses the connection" {
	run -255 --separate-stderr mig-ssh -F "$SSH_CFG" -o RevokedHostKeys="$PWD/missing" sshd-test "touch '$PWD/ran'" < /dev/null
	output=$stderr assert_output --regexp "^mig-ssh: sshd-test: host key verification failed: cannot check the host key ED25519 SHA256:[A-Za-z0-9+/]{43} against the revoked keys file $PWD/missing: No such file or directory$"
	# a KRL (here one that does not even list the key): not silently ignored
	ssh-keygen -q -t ed25519 -N '' -f other
	ssh-keygen -q -k -f krl other.pub
	run -255 --separate-stderr mig-ssh -F "$SSH_CFG" -o RevokedHostKeys="$PWD/krl" sshd-test "touch '$PWD/ran'" < /dev/null
	output=$stderr assert_output "mig-ssh: sshd-test: host key verification failed: the revoked keys file $PWD/krl is a key revocation list (KRL), which mig-ssh cannot read: give RevokedHostKeys a list of public keys"
	[ ! -e ran ]
}

# ---- stdin read ahead while connecting ---------------------------------------

# The server's listener stopped: a new connection waits in the key exchange
# (the kernel accepts it) until sshd_resume; teardown resumes it anyway.
sshd_pause() {
	SSHD_LISTENER=$(cat "$SSHD_PIDFILE")
	echo "$SSHD_LISTENER" >> "$BATS_TEST_TMPDIR/stopped"
	kill -STOP "$SSHD_LISTENER"
}
sshd_resume() { kill -CONT "$SSHD_LISTENER"; }

wchar() { awk '/^wchar:/ { print $2 }' "/proc/$1/io"; }

# True when fd 5 (the test's own end of the FIFO "in") holds no byte.
fifo_drained() {
	perl -e 'open(my $f, "<&=", 5) or die "fd 5: $!";
		my $n = pack("i", 0); ioctl($f, 0x541B, $n) or die "FIONREAD: $!";
		exit(unpack("i", $n) != 0)'
}

READ_AHEAD=$((4 << 20)) # PREFETCH_MAX in tools/mig-ssh.h
PIPE=65536                # a new FIFO's capacity

# With the server paused, start mig-ssh ARGS... reading the FIFO "in" and
# dd writing FILE into it 4 KiB at a time (SIGPIPE ignored, so a closed
# reader is EPIPE); wait until dd blocks on a full pipe with mig-ssh
# holding exactly READ_AHEAD bytes. Sets MPID (timeout's, around
# mig-ssh), DPID.
start_read_ahead() { # FILE ARGS...
	local file=$1 pid
	shift
	mkfifo in
	timeout 60 mig-ssh "$@" < in > out 2> err &
	MPID=$!
	bash -c 'trap "" PIPE; exec dd if="$1" of=in bs=4k status=none' dd "$file" 2> dd.err &
	DPID=$!
	wait_for 30 eval '[ "$(wchar $DPID)" -ge $((READ_AHEAD + PIPE)) ]' ||
		fail "mig-ssh read $(($(wchar $DPID) - PIPE)) bytes ahead: $(cat err)"
	# bounded: no more is taken, and the memory shows it
	[ "$(wchar $DPID)" -eq $((READ_AHEAD + PIPE)) ] || fail "wrote $(wchar $DPID)"
	local hwm
	pid=$(pgrep -P "$MPID" mig-ssh) || fail "no mig-ssh"
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	[ "$hwm" -lt $(((READ_AHEAD >> 10) + 32768)) ] || fail "mig-ssh used $hwm kB"
}

@test "stdin is read ahead while connecting, at most 4 MiB, then sent first and byte-exact" {
	cat "$STREAM" "$STREAM" "$STREAM" | head -c 100M > big
	sshd_pause
	start_read_ahead big -v -F "$SSH_CFG" sshd-test 'sha256sum'
	sshd_resume
	rc=0
	wait "$MPID" || rc=$?
	[ "$rc" -eq 0 ] || fail "exit status $rc: $(cat err)"
	wait "$DPID"
	[ ! -s dd.err ]
	run -0 cat out
	assert_output "$(sha256sum < big)"
	run -0 cat err
	assert_line --regexp "^mig-ssh: sshd-test: command started after [0-9]+\.[0-9]{2} s; $READ_AHEAD bytes of stdin read meanwhile$"
	assert_line "mig-ssh: sshd-test: $((100 << 20)) bytes sent, 68 received, exit status 0"
	assert_no_bad_packets
}

@test "a small input is read ahead whole, its end too, and arrives byte-exact" {
	sshd_pause
	mkfifo in
	exec 5<> in
	printf 'a small stream\n' >&5
	timeout 30 mig-ssh -v -F "$SSH_CFG" sshd-test 'cat; echo END' < in 5>&- > out 2> err &
	MPID=$!
	wait_for 20 fifo_drained || fail "not read ahead"
	exec 5>&-
	sshd_resume
	wait "$MPID" || fail "exit status $?: $(cat err)"
	run -0 cat out
	assert_output $'a small stream\nEND'
	run -0 cat err
	# its end is seen at once, unless the set-up is faster than a thread
	assert_line --regexp "^mig-ssh: sshd-test: command started after [0-9]+\.[0-9]{2} s; 15 bytes of stdin read meanwhile(, all of it)?$"
}

@test "an empty input read ahead is an empty stream; a file is not read ahead" {
	run -0 --separate-stderr timeout 30 bash -c ': | mig-ssh -v -F "$SSH_CFG" sshd-test "wc -c; echo END"'
	assert_output $'0\nEND'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --regexp "^mig-ssh: sshd-test: command started after [0-9]+\.[0-9]{2} s; 0 bytes of stdin read meanwhile(, all of it)?$"
	# a file makes nobody wait, and its offset is shared: left alone
	run -0 --separate-stderr mig-ssh -v -F "$SSH_CFG" sshd-test 'sha256sum' < "$STREAM"
	assert_output "$(sha256sum < "$STREAM")"
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --regexp "^mig-ssh: sshd-test: command started after [0-9]+\.[0-9]{2} s; stdin not read meanwhile \(not a pipe\)$"
}

@test "a refused host key or failed login with 4 MiB read ahead: 255, the same message, the remote never ran, the writer gets EPIPE" {
	: > known
	local -a refused=(-o UserKnownHostsFile="$PWD/known" -i "$SSH_ID")
	local -a denied=(-o UserKnownHostsFile="$SSH_KNOWN" -i "$BATS_FILE_TMPDIR/stranger")
	local msg_refused="^mig-ssh: 127\.0\.0\.1: host key verification failed: no host key is known for \[127\.0\.0\.1\]:$SSHD_PORT and StrictHostKeyChecking is yes \(ED25519 key SHA256:[A-Za-z0-9+/]{43}\)$"
	local msg_denied="^mig-ssh: 127\.0\.0\.1: authentication as $SSHD_USER failed: permission denied \(publickey\): no key from the agent, -i or the default identities was accepted$"
	for how in refused denied; do
		rm -f in out err dd.err ran
		local -n opts=$how msg=msg_$how
		sshd_pause
		# a writer that never ends: only mig-ssh's exit can stop it
		start_read_ahead /dev/zero "${NOCFG[@]}" "${opts[@]}" -p "$SSHD_PORT" \
			127.0.0.1 "touch '$PWD/ran'; cat > /dev/null"
		sshd_resume
		rc=0
		wait "$MPID" || rc=$?
		[ "$rc" -eq 255 ] || fail "$how: exit status $rc: $(cat err)"
		run -0 cat err
		assert_output --regexp "$msg"
		rc=0
		wait "$DPID" || rc=$?
		[ "$rc" -eq 1 ] || fail "$how: dd's exit status $rc"
		run -0 cat dd.err
		assert_output --partial "Broken pipe"
		[ ! -e ran ] || fail "$how: the remote command ran"
		[ ! -s out ]
	done
	[ ! -s known ]
	assert_no_bad_packets
}

# ---- closed standard descriptors ---------------------------------------------

@test "closed stdin: an empty stream, EOF sent at once" {
	run -0 --separate-stderr timeout 30 bash -c 'mig-ssh -F "$SSH_CFG" sshd-test "wc -c; echo END" <&-'
	assert_output $'0\nEND'
	[ -z "$stderr" ]
	assert_no_bad_packets
}

@test "closed stdout: remote output is an error (255), nothing written into the connection" {
	run -255 --separate-stderr timeout 30 bash -c 'mig-ssh -F "$SSH_CFG" sshd-test "echo out" >&-'
	output=$stderr assert_output "mig-ssh: sshd-test: write to stdout: Bad file descriptor"
	assert_no_bad_packets
	# a command with no output succeeds
	run -0 --separate-stderr timeout 30 bash -c 'mig-ssh -F "$SSH_CFG" sshd-test "cat > /dev/null" < "$STREAM" >&-'
	[ -z "$stderr" ]
	assert_no_bad_packets
}

@test "closed stderr: messages are lost, the connection is not" {
	# the remote's stderr and mig-ssh's own warning would have gone into
	# the socket
	run -0 timeout 30 bash -c 'mig-ssh -F "$SSH_CFG" sshd-test "echo err >&2; cat; echo out" < "$STREAM" 2>&- | cmp - <(cat "$STREAM"; echo out)'
	: > known
	run -0 timeout 30 bash -c 'mig-ssh -F /dev/null -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile="$PWD/known" -o StrictHostKeyChecking=accept-new -p "$SSHD_PORT" -i "$SSH_ID" 127.0.0.1 "echo ok" < /dev/null 2>&-'
	assert_output "ok"
	[ -s known ]
	# and a failure still says so in the exit status
	run -255 timeout 30 bash -c 'mig-ssh -F "$SSH_CFG" sshd-test "kill -9 \$\$" < /dev/null 2>&-'
	assert_output ""
	assert_no_bad_packets
}

@test "all three closed at once" {
	run -0 timeout 30 bash -c 'mig-ssh -F "$SSH_CFG" sshd-test "wc -c > '"'$PWD/count'"'" <&- >&- 2>&-'
	run -0 cat count
	assert_output "0"
	assert_no_bad_packets
}

# ---- stalled servers: keepalives -------------------------------------------

# Run mig-ssh ARGS... in the background (stdin from $IN, default
# /dev/null) once its remote command printed "started", then stop the
# sshd session process serving it: its kernel still acknowledges, nothing
# answers. Sets MPID and T0.
start_then_stop_session() {
	local before s new=
	before=" $(sshd_sessions | tr '\n' ' ') "
	rm -f out err # "started" must be this run's
	mig-ssh "$@" < "${IN:-/dev/null}" > out 2> err &
	MPID=$!
	wait_for 20 grep -q started out || fail "the remote command did not start: $(cat err)"
	for s in $(sshd_sessions); do
		[[ $before == *" $s "* ]] || new+=" $s"
	done
	[ -n "$new" ] || fail "no session process"
	echo $new >> "$BATS_TEST_TMPDIR/stopped"
	kill -STOP $new
	T0=$SECONDS
}

wait_gave_up() { # LIMIT_S
	local rc=0 i
	for ((i = 0; i < $1 * 50; i++)); do
		kill -0 "$MPID" 2>/dev/null || break
		sleep 0.02
	done
	kill -0 "$MPID" 2>/dev/null && { kill "$MPID"; fail "mig-ssh still waits after $1 s"; }
	wait "$MPID" || rc=$?
	[ "$rc" -eq 255 ] || fail "exit status $rc: $(cat err)"
}

@test "a stalled server (sshd stopped, kernel acknowledging) is given up, idle" {
	start_then_stop_session -F "$SSH_CFG" -o ServerAliveInterval=1 -o ServerAliveCountMax=2 \
		sshd-test 'echo started; sleep 60'
	wait_gave_up 15
	# 1 s x (2 + 1): not before
	(( SECONDS - T0 >= 2 )) || fail "gave up after $((SECONDS - T0)) s"
	run cat err
	assert_output "mig-ssh: sshd-test: no answer from the server for 3 s (ServerAliveInterval 1, ServerAliveCountMax 2)"
}

@test "a stalled server is given up in the middle of sending the stream" {
	mkfifo in
	# stdin never ends: only giving up can end mig-ssh
	yes "$(head -c 1000 /dev/zero | tr '\0' x)" > in &
	echo $! >> "$BATS_TEST_TMPDIR/stopped"
	IN=in start_then_stop_session -F "$SSH_CFG" -o ServerAliveInterval=1 -o ServerAliveCountMax=2 \
		sshd-test 'echo started; cat > /dev/null'
	wait_gave_up 15
	run cat err
	assert_output "mig-ssh: sshd-test: no answer from the server for 3 s (ServerAliveInterval 1, ServerAliveCountMax 2)"
}

@test "ServerAliveInterval and ServerAliveCountMax from the configuration, per Host; -o wins" {
	{ cat "$SSH_CFG"; printf '    ServerAliveInterval 1\n    ServerAliveCountMax 2\nHost *\n    ServerAliveCountMax 9\n'; } > cfg
	start_then_stop_session -F cfg sshd-test 'echo started; sleep 60'
	wait_gave_up 15
	run cat err
	assert_output "mig-ssh: sshd-test: no answer from the server for 3 s (ServerAliveInterval 1, ServerAliveCountMax 2)"
	start_then_stop_session -F cfg -o ServerAliveCountMax=1 sshd-test 'echo started; sleep 60'
	wait_gave_up 15
	run cat err
	assert_output "mig-ssh: sshd-test: no answer from the server for 2 s (ServerAliveInterval 1, ServerAliveCountMax 1)"
	# a value ssh(1) would refuse too
	printf 'Host *\n  ServerAliveInterval soon\n' > bad
	run -255 --separate-stderr mig-ssh -F bad sshd-test true < /dev/null
	output=$stderr assert_output "mig-ssh: sshd-test: configuration bad line 2: ServerAliveInterval 'soon': not a number from 0 to 86400"
	run -255 --separate-stderr mig-ssh -o ServerAliveCountMax=0 sshd-test true < /dev/null
	output=$stderr assert_output "mig-ssh: -o 'ServerAliveCountMax=0': not a number from 1 to 86400"
}

@test "a quiet but live server is kept: keepalives are answered" {
	# silent for 4 s, longer than 1 s x (1 + 1) without answers
	run -0 --separate-stderr mig-ssh -F "$SSH_CFG" -o ServerAliveInterval=1 -o ServerAliveCountMax=1 \
		sshd-test 'sleep 4; echo done' < /dev/null
	assert_output "done"
	[ -z "$stderr" ]
}

@test "keepalive defaults: 15 s, given up after 60 s; 0 turns them off" {
	run -0 --separate-stderr mig-ssh -v -F "$SSH_CFG" sshd-test true < /dev/null
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 1 "mig-ssh: sshd-test: keepalive after 15 s of silence, giving up after 60 s"
	run -0 --separate-stderr mig-ssh -v -F "$SSH_CFG" -o ServerAliveInterval=0 sshd-test true < /dev/null
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 1 "mig-ssh: sshd-test: no keepalives (ServerAliveInterval 0)"
}

@test "a stalled server while connecting is given up as well" {
	local l t0
	l=$(cat "$SSHD_PIDFILE")
	echo "$l" >> "$BATS_TEST_TMPDIR/stopped"
	kill -STOP "$l"
	t0=$SECONDS
	run -255 --separate-stderr timeout 20 mig-ssh -F "$SSH_CFG" -o ServerAliveInterval=1 \
		-o ServerAliveCountMax=2 sshd-test true < /dev/null
	kill -CONT "$l"
	# 1 s x (2 + 1), not libssh's own 10 s
	(( SECONDS - t0 <= 6 )) || fail "gave up after $((SECONDS - t0)) s"
	output=$stderr assert_output "mig-ssh: sshd-test: cannot connect to 127.0.0.1 port $SSHD_PORT: Timeout connecting to 127.0.0.1"
}

# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# tests/lib/sshd.bash - a private OpenSSH server on 127.0.0.1 for the tests
# (and bench/ssh): its own host and user keys, a free port, a known_hosts
# for it and a client configuration. Usable from bats or any bash script.
#
#   sshd_start DIR    generate everything in DIR and start the server; sets
#                     SSHD_DIR, SSHD_PORT, SSHD_PIDFILE, SSH_ID (user key),
#                     SSH_KNOWN (known_hosts), SSH_CFG (client config with
#                     "Host sshd-test"), SSHD_USER
#   sshd_stop [DIR]   stop exactly that server (its PidFile), and wait
#   sshd_sessions     PIDs of that server's session processes
#   sshd_log_mark     the server log's size now, for sshd_log_since
#   sshd_log_since M  what the server logged after mark M
#   free_port         a TCP port nobody listens on at 127.0.0.1
#
# Remote commands run with PATH=$MIG_BIN:/usr/bin:/bin (SetEnv), so the
# built commands are found there.
#
# Optional: SSHD_ADDR (listen address, default 127.0.0.1), SSHD_NETNS (run
# the server in that network namespace, `ip netns`), SSHD_EXTRA (more
# sshd_config lines).

SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}

# Wait up to $1 seconds for the command "${@:2}" to succeed.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}

_sshd_ns() { if [ -n "${SSHD_NETNS:-}" ]; then ip netns exec "$SSHD_NETNS" "$@"; else "$@"; fi; }

_port_in_use() { _sshd_ns ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 40000))
		_port_in_use "$p" || { echo "$p"; return 0; }
	done
	return 1
}

# Generate keys and configuration in DIR (not started).
sshd_prepare() {
	local dir=$1
	mkdir -p "$dir" /run/sshd
	SSHD_DIR=$(cd "$dir" && pwd)
	SSHD_USER=$(id -un)
	SSHD_PIDFILE=$SSHD_DIR/sshd.pid
	SSH_ID=$SSHD_DIR/id_ed25519
	SSH_KNOWN=$SSHD_DIR/known_hosts
	SSH_CFG=$SSHD_DIR/ssh_config
	[ -f "$SSHD_DIR/host_ed25519" ] ||
		ssh-keygen -q -t ed25519 -N '' -C mig-test-host -f "$SSHD_DIR/host_ed25519"
	[ -f "$SSH_ID" ] ||
		ssh-keygen -q -t ed25519 -N '' -C mig-test-user -f "$SSH_ID"
	cp "$SSH_ID.pub" "$SSHD_DIR/authorized_keys"
	export SSHD_DIR SSHD_USER SSHD_PIDFILE SSH_ID SSH_KNOWN SSH_CFG
}

_sshd_write_config() {
	local bin=${MIG_BIN:-/usr/local/bin}
	cat > "$SSHD_DIR/sshd_config" <<-EOF
	ListenAddress ${SSHD_ADDR:-127.0.0.1}
	Port $SSHD_PORT
	HostKey $SSHD_DIR/host_ed25519
	PidFile $SSHD_PIDFILE
	AuthorizedKeysFile $SSHD_DIR/authorized_keys
	PubkeyAuthentication yes
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	UsePAM no
	StrictModes no
	PermitRootLogin prohibit-password
	MaxStartups 100
	SetEnv PATH=$bin:/usr/bin:/bin
	${SSHD_EXTRA:-}
	EOF
	echo "[${SSHD_ADDR:-127.0.0.1}]:$SSHD_PORT $(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")" > "$SSH_KNOWN"
	cat > "$SSH_CFG" <<-EOF
	Host sshd-test
	    HostName ${SSHD_ADDR:-127.0.0.1}
	    Port $SSHD_PORT
	    User $SSHD_USER
	    IdentityFile $SSH_ID
	    IdentitiesOnly yes
	    UserKnownHostsFile $SSH_KNOWN
	    GlobalKnownHostsFile /dev/null
	    StrictHostKeyChecking yes
	    BatchMode yes
	EOF
}

# Start the server on a free port (retries if the port was taken meanwhile).
sshd_start() {
	local try
	sshd_prepare "$1" || return 1
	for ((try = 0; try < 5; try++)); do
		SSHD_PORT=$(free_port) || return 1
		export SSHD_PORT
		_sshd_write_config
		rm -f "$SSHD_PIDFILE" "$SSHD_DIR/sshd.log"
		# daemonises; the PidFile appears once it listens
		_sshd_ns "$SSHD_BIN" -f "$SSHD_DIR/sshd_config" -E "$SSHD_DIR/sshd.log" || continue
		local deadline=$((SECONDS + 10)) st=1
		while [ "$SECONDS" -lt "$deadline" ]; do
			_sshd_up && st=0 || st=$?
			[ "$st" -eq 1 ] || break
			sleep 0.02
		done
		[ "$st" -eq 0 ] && return 0
		sshd_stop "$SSHD_DIR"
	done
	echo "sshd_start: the server did not start:" >&2
	cat "$SSHD_DIR/sshd.log" >&2
	return 1
}

_sshd_up() {
	[ -s "$SSHD_PIDFILE" ] && _port_in_use "$SSHD_PORT" && return 0
	# gave up (port taken, bad config): stop waiting
	grep -q -e 'Cannot bind' -e 'fatal' "$SSHD_DIR/sshd.log" 2>/dev/null && return 2
	return 1
}

# PIDs of the per-connection processes of our server.
sshd_sessions() {
	[ -s "$SSHD_PIDFILE" ] || return 0
	ps -o pid= --ppid "$(cat "$SSHD_PIDFILE")" | tr -d ' '
}

sshd_log_mark() { stat -c %s "$SSHD_DIR/sshd.log"; }

sshd_log_since() { tail -c +"$(($1 + 1))" "$SSHD_DIR/sshd.log"; }

sshd_stop() {
	local dir=${1:-$SSHD_DIR} pid
	[ -s "$dir/sshd.pid" ] || return 0
	pid=$(cat "$dir/sshd.pid")
	kill "$pid" 2>/dev/null || true
	wait_for 10 eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
	rm -f "$dir/sshd.pid"
}

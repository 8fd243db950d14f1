# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# tests/lib/qemu.bash - drive real QEMU VMs from bats tests and scripts.
#
# Sourced by tests/*.bats (`load lib/qemu`), scripts/demo and
# scripts/make-test-stream.  Needs bash >= 5, qemu-system-x86_64, socat, jq
# and perl (perl-base is Essential on Debian).
#
# State of every VM lives in $VM_DIR (default: $BATS_TEST_TMPDIR, else
# $BATS_FILE_TMPDIR, else a fresh mktemp directory, exported on first use):
#   NAME.qmp       QMP unix socket          NAME.log      QEMU's stderr/stdout
#   NAME.pid       QEMU's pid (tracked)     NAME.qmplog   every QMP line received
#   NAME.events    QMP events received      NAME.in/.out  FIFOs to/from socat
#   NAME.socat.pid socat's pid              NAME.feed.*   incoming pipeline
#                                              (pid, stderr in .err, status in .rc)
# NAME must match [A-Za-z0-9_-]+.  The QMP session is a background
# `socat STDIO UNIX-CONNECT:NAME.qmp` whose stdin/stdout are FIFOs (not a bash
# coproc: bash keeps only one coproc and hides its fds from subshells, and
# tests need two VMs and `run`/`$(...)`).  Every line QEMU sends is read with
# a bounded, blocking `read -t` and logged, so no event is lost.
#
# Functions (all waits are bounded; a timeout fails with a message on stderr):
#   qemu_accel                       print `kvm` or `tcg` ($QEMU_ACCEL overrides)
#   vm_make_ram FILE MIB             write a MIB MiB guest-RAM-like image (zero
#                                    pages, text, binaries, random bytes)
#   vm_start NAME [QEMU ARGS...]     start QEMU (q35, -nodefaults, QMP), open QMP
#   vm_start_incoming NAME 'PIPELINE' [QEMU ARGS...]
#                                    start QEMU with `-incoming fd:0`, stdin fed
#                                    by `bash -o pipefail -c PIPELINE`
#   vm_start_source NAME RAMFILE MIB [QEMU ARGS...]
#                                    vm_start with RAM backed by RAMFILE
#                                    (share=off); add -S for a paused VM
#   vm_start_dest NAME MIB 'PIPELINE' [QEMU ARGS...]
#                                    vm_start_incoming with a matching
#                                    memory-backend-ram of MIB MiB
#   qmp NAME JSON                    run one command, print `return` (compact);
#                                    on error print its desc on stderr, return 1
#   qmp_event_mark NAME              print the number of events seen so far
#   qmp_wait_event NAME EVENT [JQ-FILTER] TIMEOUT
#                                    print the first EVENT (after mark
#                                    $QMP_EVENTS_SINCE, default 0) for which
#                                    JQ-FILTER is true, waiting if needed
#   vm_migrate NAME 'PIPELINE'       migrate to exec:PIPELINE, print the final
#                                    status; 0 only for `completed` with the
#                                    pipeline (its last command) exiting 0
#   vm_wait_incoming NAME TIMEOUT    wait for a destination's incoming migration,
#                                    print completed/failed; 0 only if completed
#                                    (fails fast if QEMU dies or the stream
#                                    ended before QEMU read a byte)
#   vm_feed_status NAME TIMEOUT      wait for the incoming pipeline to end,
#                                    print its exit status (pipefail)
#   vm_attach NAME                   open QMP to a QEMU started elsewhere (by
#                                    mig-recv) with -pidfile NAME.pid and
#                                    -qmp unix:NAME.qmp in $VM_DIR; vm_stop and
#                                    vm_cleanup_all then stop it too
#   vm_status NAME                   print query-status's status
#   vm_pmemsave NAME FILE SIZE       save guest physical RAM [0,SIZE) to FILE
#                                    (SIZE in bytes, or with suffix K/M/G)
#   vm_alive NAME                    true while NAME's QEMU runs
#   vm_log_tail NAME [LINES]         print the end of NAME's QEMU log
#   vm_stop NAME                     quit QEMU (then TERM/KILL), stop its helpers
#   vm_cleanup_all                   stop every VM started (call from teardown)
#   vm_shq STRING                    print STRING single-quoted for /bin/sh
#   make_test_stream OUT [MIB]       paused VM from a fresh RAM image (kept in
#                                    OUT.ram) migrated by `exec:cat > OUT`
#
# Tunables: QEMU (binary), QEMU_ACCEL, QMP_TIMEOUT (s, default 30),
# VM_START_TIMEOUT (s, 30), MIG_TIMEOUT (s, 300), MIG_MAX_BANDWIDTH (bytes/s).

QEMU=${QEMU:-qemu-system-x86_64}
declare -ga _VM_STARTED=()	# "DIR/NAME" of VMs started by this shell
declare -gA _VM_KEEPFD=()	# "DIR/NAME" -> fd keeping NAME.out's buffer alive
declare -g _QMP_LINE=""
declare -g _QMP_SEQ=0

_vm_err() { printf '%s\n' "$*" >&2; }

# Current time in milliseconds.
_vm_now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }

# Seconds (maybe fractional, e.g. 0.25) to milliseconds.
_vm_ms() {
	local s=$1 i f
	i=${s%%.*}; f=000
	[[ $s == *.* ]] && f=${s#*.}000
	echo $((10#${i:-0} * 1000 + 10#${f:0:3}))
}

# Bounded pause used only inside wait loops that poll a file, a process or a
# socket that cannot be waited on directly (no fork: read on a silent pipe).
_vm_tick() { read -r -t "$1" <> <(:) || true; }

# Quote a string for /bin/sh.
_vm_shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
vm_shq() { _vm_shq "$1"; }

# True while PID exists and is not a zombie.
_vm_pid_alive() {
	local pid=$1 stat
	[[ -n $pid ]] || return 1
	read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# _vm_dir_init: choose (and export) VM_DIR.  Must run in the calling shell,
# not in $(...), or a mktemp directory would be made per call: the vm_start*
# functions call it.
_vm_dir_init() {
	if [[ -z ${VM_DIR:-} ]]; then
		if [[ -n ${BATS_TEST_TMPDIR:-} ]]; then
			VM_DIR=$BATS_TEST_TMPDIR
		elif [[ -n ${BATS_FILE_TMPDIR:-} ]]; then
			VM_DIR=$BATS_FILE_TMPDIR
		else
			VM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/migkit-vm.XXXXXX") || return 1
		fi
		export VM_DIR
	fi
	[[ -d $VM_DIR ]] || mkdir -p "$VM_DIR"
}

_vm_dir() {
	_vm_dir_init || return 1
	printf '%s\n' "$VM_DIR"
}

_vm_check_name() {
	[[ $1 =~ ^[A-Za-z0-9_-]+$ ]] && return 0
	_vm_err "qemu.bash: bad VM name '$1' (use letters, digits, _ and -)"
	return 1
}

# _vm_pid NAME: print the tracked QEMU pid of NAME.
_vm_pid() {
	local d; d=$(_vm_dir) || return 1
	[[ -r $d/$1.pid ]] || { _vm_err "qemu.bash: no VM '$1' in $d"; return 1; }
	cat "$d/$1.pid"
}

vm_alive() {
	local pid; pid=$(_vm_pid "$1" 2>/dev/null) || return 1
	_vm_pid_alive "$pid"
}

vm_log_tail() {
	local d; d=$(_vm_dir) || return 1
	tail -n "${2:-15}" "$d/$1.log" 2>/dev/null | sed "s/^/  [$1] /"
}

qemu_accel() {
	if [[ -z ${QEMU_ACCEL:-} ]]; then
		QEMU_ACCEL=tcg
		if [[ -r /dev/kvm && -w /dev/kvm ]] &&
			printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"quit"}' |
			timeout 20 "$QEMU" -machine q35 -accel kvm -nodefaults -display none \
				-no-user-config -S -qmp stdio >/dev/null 2>&1 3>&-; then
			QEMU_ACCEL=kvm
		fi
		export QEMU_ACCEL
	fi
	printf '%s\n' "$QEMU_ACCEL"
}

# vm_make_ram FILE MIB
vm_make_ram() {
	local file=$1 mib=$2 tmp rc=0
	[[ $mib =~ ^[1-9][0-9]*$ ]] || { _vm_err "vm_make_ram: bad size '$mib' (MiB)"; return 1; }
	command -v perl >/dev/null || { _vm_err "vm_make_ram: perl not found"; return 1; }
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/migkit-ram.XXXXXX") || return 1
	# Pools of real content: ELF binaries and text (sources, docs, licences).
	find /usr/bin /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -size +32k 2>/dev/null |
		head -n 64 | xargs -r cat 2>/dev/null | head -c $((4 << 20)) >"$tmp/bin"
	find /usr/share/perl* /usr/include /usr/share/common-licenses /usr/share/doc \
		-type f \( -name '*.pm' -o -name '*.h' -o -name '*.txt' -o -name 'copyright' \
		-o -name 'GPL*' -o -name '*.pl' \) 2>/dev/null |
		head -n 2000 | xargs -r cat 2>/dev/null | head -c $((4 << 20)) >"$tmp/text"
	# Page runs of 1-64 pages: ~35% zero, ~20% text, ~25% binary, ~20% random.
	perl -e '
		use strict; use warnings;
		my ($out, $mib, $tpool, $bpool) = @ARGV;
		sub slurp { my $f = shift; local $/; open(my $h, "<:raw", $f) or return "";
			my $d = <$h>; return defined $d ? $d : ""; }
		my $text = slurp($tpool); my $bin = slurp($bpool);
		$text = join("", map { "line $_: the quick brown fox jumps over the lazy dog\n" } 1..80000)
			if length($text) < 65536;
		$bin = $text if length($bin) < 65536;
		my %cur = (t => 0, b => 0);
		my %pool = (t => \$text, b => \$bin);
		open(my $o, ">:raw", $out) or die "vm_make_ram: $out: $!\n";
		open(my $r, "<:raw", "/dev/urandom") or die "vm_make_ram: /dev/urandom: $!\n";
		srand(4242 + $mib);
		my $pages = $mib * 256;
		while ($pages > 0) {
			my $n = 1 + int(rand(64)); $n = $pages if $n > $pages; $pages -= $n;
			my $x = rand();
			my $buf;
			if ($x < 0.35) { seek($o, 4096 * $n, 1) or die "vm_make_ram: $out: $!\n"; next; }
			elsif ($x < 0.80) {
				my $k = $x < 0.55 ? "t" : "b"; my $p = $pool{$k}; my $len = 4096 * $n;
				$buf = "";
				while (length($buf) < $len) {
					my $c = $cur{$k} % length($$p);
					my $take = length($$p) - $c; my $need = $len - length($buf);
					$take = $need if $take > $need;
					$buf .= substr($$p, $c, $take); $cur{$k} = $c + $take;
				}
			} else {
				my $len = 4096 * $n; $buf = "";
				while (length($buf) < $len) {
					my $g = read($r, my $chunk, $len - length($buf));
					die "vm_make_ram: /dev/urandom: $!\n" unless $g;
					$buf .= $chunk;
				}
			}
			print $o $buf or die "vm_make_ram: $out: $!\n";
		}
		close($o) or die "vm_make_ram: $out: $!\n";
		truncate($out, $mib * 1048576) or die "vm_make_ram: $out: $!\n";
	' "$file" "$mib" "$tmp/text" "$tmp/bin" || rc=$?
	rm -rf "$tmp"
	[[ $rc -eq 0 ]] || { _vm_err "vm_make_ram: failed to write $file"; return 1; }
}

# _vm_qmp_connect NAME DIR PID: start socat on the QMP socket, read the
# greeting, negotiate capabilities.
_vm_qmp_connect() {
	local name=$1 d=$2 pid=$3 deadline line fd
	local sock=$d/$name.qmp
	local -i tmo=${VM_START_TIMEOUT:-30}
	deadline=$(($(_vm_now_ms) + $(_vm_ms "$tmo")))
	# Wait (bounded) for QEMU to create its QMP socket.
	while [[ ! -S $sock ]]; do
		if ! _vm_pid_alive "$pid"; then
			_vm_err "vm_start: QEMU '$name' exited during start-up; log:"
			vm_log_tail "$name" >&2
			return 1
		fi
		if (($(_vm_now_ms) > deadline)); then
			_vm_err "vm_start: no QMP socket $sock after ${tmo}s"
			return 1
		fi
		# Waiting for a file to appear: a short bounded poll is all we have.
		_vm_tick 0.01
	done
	rm -f "$d/$name.in" "$d/$name.out" "$d/$name.partial"
	mkfifo "$d/$name.in" "$d/$name.out" || return 1
	: >"$d/$name.qmplog"; : >"$d/$name.events"
	# FIFOs opened read-write: opens never block, socat never sees EOF on
	# its stdin, and nobody gets SIGPIPE.  retry= covers a socket that exists
	# but does not listen yet.
	socat -t 1 STDIO "UNIX-CONNECT:$sock,retry=100,interval=0.05" \
		0<>"$d/$name.in" 1<>"$d/$name.out" 2>>"$d/$name.log" 3>&- &
	echo $! >"$d/$name.socat.pid"
	# Keep the read side open in this shell so buffered lines survive socat.
	exec {fd}<>"$d/$name.out"
	_VM_KEEPFD["$d/$name"]=$fd
	# Greeting.
	if ! _qmp_read_until "$name" "$tmo" greeting; then
		_vm_err "vm_start: no QMP greeting from '$name'"
		vm_log_tail "$name" >&2
		return 1
	fi
	qmp "$name" '{"execute":"qmp_capabilities"}' >/dev/null
}

# _vm_launch NAME STDIN QEMU-ARGS...: start QEMU in the background, tracked.
_vm_launch() {
	local name=$1 in=$2; shift 2
	_vm_check_name "$name" || return 1
	_vm_dir_init || return 1
	local d; d=$(_vm_dir) || return 1
	local sock=$d/$name.qmp accel
	if ((${#sock} > 100)); then
		_vm_err "vm_start: socket path too long for a unix socket: $sock (set VM_DIR shorter)"
		return 1
	fi
	if [[ -e $d/$name.pid ]] && vm_alive "$name"; then
		_vm_err "vm_start: VM '$name' already running"
		return 1
	fi
	accel=$(qemu_accel) || return 1
	QEMU_ACCEL=$accel
	export QEMU_ACCEL
	rm -f "$sock"
	printf '%s\n' "$QEMU -machine q35 -accel $accel -nodefaults -display none -no-user-config -name $name -qmp unix:$sock,server=on,wait=off $*" >"$d/$name.cmdline"
	"$QEMU" -machine q35 -accel "$accel" -nodefaults -display none -no-user-config \
		-name "$name" -qmp "unix:$sock,server=on,wait=off" "$@" \
		<"$in" >>"$d/$name.log" 2>&1 3>&- &
	local pid=$!
	echo "$pid" >"$d/$name.pid"
	_VM_STARTED+=("$d/$name")
	_vm_qmp_connect "$name" "$d" "$pid" && return 0
	local until=$(($(_vm_now_ms) + 2000))
	while _vm_pid_alive "$pid" && (($(_vm_now_ms) < until)); do _vm_tick 0.02; done
	# A destination fed a short or broken stream may load it and exit before
	# the QMP handshake is over: leave the verdict to vm_wait_incoming.
	if [[ -n ${_VM_INCOMING:-} ]] && ! _vm_pid_alive "$pid"; then
		_vm_err "vm_start_incoming: QEMU '$name' already exited (vm_wait_incoming will report it)"
		return 0
	fi
	return 1
}

vm_start() {
	local name=$1; shift
	_vm_launch "$name" /dev/null "$@"
}

vm_start_incoming() {
	local name=$1 pipeline=$2; shift 2
	_vm_check_name "$name" || return 1
	_vm_dir_init || return 1
	local d; d=$(_vm_dir) || return 1
	rm -f "$d/$name.feed" "$d/$name.feed.rc" "$d/$name.feed.err"
	mkfifo "$d/$name.feed" || return 1
	# The pipeline runs in its own process group (setsid) so it can be
	# stopped as a whole; its exit status (pipefail) lands in NAME.feed.rc.
	# shellcheck disable=SC2016
	setsid bash -c 'set -o pipefail; (eval "$1"); echo $? >"$2"' feed \
		"$pipeline" "$d/$name.feed.rc" \
		</dev/null >"$d/$name.feed" 2>"$d/$name.feed.err" 3>&- &
	echo $! >"$d/$name.feed.pid"
	_VM_INCOMING=1 _vm_launch "$name" "$d/$name.feed" -incoming fd:0 "$@"
}

vm_start_source() {
	local name=$1 ram=$2 mib=$3; shift 3
	[[ -r $ram ]] || { _vm_err "vm_start_source: no RAM image $ram"; return 1; }
	ram=$(realpath "$ram")
	vm_start "$name" -m "${mib}M" \
		-object "memory-backend-file,id=mem,size=${mib}M,mem-path=${ram//,/,,},share=off" \
		-machine memory-backend=mem "$@"
}

vm_start_dest() {
	local name=$1 mib=$2 pipeline=$3; shift 3
	vm_start_incoming "$name" "$pipeline" -m "${mib}M" \
		-object "memory-backend-ram,id=mem,size=${mib}M" -machine memory-backend=mem \
		-global migration.x-events=on "$@"
}

# _qmp_read_line NAME TICK: read one line (bounded by TICK seconds) from
# NAME's QMP output, log it, leave it in _QMP_LINE.  Returns 0 with a line,
# 1 on timeout, 2 if the QMP connection is gone.
_qmp_read_line() {
	local name=$1 tick=$2 d fd line spid
	d=$(_vm_dir) || return 2
	exec {fd}<>"$d/$name.out" || return 2
	# A read that times out keeps what it got of a line (socat may relay a
	# line in pieces under load): park it in a file, which also survives
	# the subshells this is called from, and put it in front next time.
	line=
	if IFS= read -r -t "$tick" -u "$fd" line; then
		exec {fd}<&-
		if [[ -s $d/$name.partial ]]; then
			line=$(<"$d/$name.partial")$line
			rm -f "$d/$name.partial"
		fi
		line=${line%$'\r'}
		printf '%s\n' "$line" >>"$d/$name.qmplog"
		if [[ $line == '{"timestamp"'* && $line == *'"event": '* ]]; then
			printf '%s\n' "$line" >>"$d/$name.events"
		fi
		_QMP_LINE=$line
		return 0
	fi
	exec {fd}<&-
	[[ -z $line ]] || printf '%s' "$line" >>"$d/$name.partial"
	spid=$(cat "$d/$name.socat.pid" 2>/dev/null) || true
	_vm_pid_alive "$spid" || return 2
	return 1
}

# _qmp_read_until NAME TIMEOUT greeting|ID: read lines until the greeting or
# the reply carrying ID; it is left in _QMP_LINE.
_qmp_read_until() {
	local name=$1 tmo=$2 want=$3 deadline rc
	deadline=$(($(_vm_now_ms) + $(_vm_ms "$tmo")))
	while :; do
		rc=0
		_qmp_read_line "$name" 0.25 || rc=$?
		if ((rc == 0)); then
			if [[ $want == greeting ]]; then
				[[ $_QMP_LINE == '{"QMP":'* ]] && return 0
			elif [[ $_QMP_LINE == *"\"$want\""* ]]; then
				return 0
			elif [[ $_QMP_LINE == '{"error"'* && $_QMP_LINE != *'"id": '* ]]; then
				return 0	# e.g. a JSON parse error: QEMU cannot echo the id
			fi
			continue
		fi
		if ((rc == 2)); then
			_vm_err "qmp: connection to '$name' closed"
			return 1
		fi
		if (($(_vm_now_ms) > deadline)); then
			_vm_err "qmp: no reply from '$name' after ${tmo}s"
			return 1
		fi
	done
}

qmp() {
	local name=$1 json=$2 d id cmd
	d=$(_vm_dir) || return 1
	[[ -p $d/$name.in ]] || { _vm_err "qmp: no QMP session for '$name'"; return 1; }
	_QMP_SEQ=$((_QMP_SEQ + 1))
	id="migkit-$BASHPID-$_QMP_SEQ-$RANDOM"
	# Add the id without spawning jq: the command must be a JSON object.
	cmd=${json#"${json%%[![:space:]]*}"}
	[[ $cmd == "{"*"\"execute\""* ]] ||
		{ _vm_err "qmp: not a QMP command object: $json"; return 1; }
	cmd="{\"id\": \"$id\", ${cmd#\{}"
	printf '%s\n' "$cmd" 1<>"$d/$name.in"
	_qmp_read_until "$name" "${QMP_TIMEOUT:-30}" "$id" || return 1
	local reply
	reply=$(jq -r 'if has("error") then "E" + (.error.desc // "error") else "R" + (.return | tojson) end' <<<"$_QMP_LINE") ||
		{ _vm_err "qmp: bad reply from '$name': $_QMP_LINE"; return 1; }
	if [[ $reply == E* ]]; then
		_vm_err "${reply#E}"
		return 1
	fi
	printf '%s\n' "${reply#R}"
}

qmp_event_mark() {
	local d; d=$(_vm_dir) || return 1
	wc -l <"$d/$1.events" | tr -d ' '
}

# qmp_wait_event NAME EVENT [JQ-FILTER] TIMEOUT
qmp_wait_event() {
	local name=$1 event=$2 filter=true tmo d since deadline found rc
	if (($# >= 4)); then filter=$3; tmo=$4; else tmo=${3:-30}; fi
	d=$(_vm_dir) || return 1
	since=${QMP_EVENTS_SINCE:-0}
	local prog="select(.event == \$e) | select($filter)"
	found=$(tail -n +"$((since + 1))" "$d/$name.events" |
		jq -c --arg e "$event" "$prog" 2>/dev/null | head -n 1)
	[[ -n $found ]] && { printf '%s\n' "$found"; return 0; }
	deadline=$(($(_vm_now_ms) + $(_vm_ms "$tmo")))
	while :; do
		rc=0
		_qmp_read_line "$name" 0.25 || rc=$?
		if ((rc == 0)); then
			[[ $_QMP_LINE == '{"timestamp"'* ]] || continue
			found=$(jq -c --arg e "$event" "$prog" <<<"$_QMP_LINE" 2>/dev/null) || true
			[[ -n $found ]] && { printf '%s\n' "$found"; return 0; }
			continue
		fi
		if ((rc == 2)); then
			_vm_err "qmp_wait_event: QMP connection to '$name' closed while waiting for $event"
			return 1
		fi
		if (($(_vm_now_ms) > deadline)); then
			_vm_err "qmp_wait_event: no $event ($filter) from '$name' within ${tmo}s"
			return 1
		fi
	done
}

vm_migrate() {
	local name=$1 pipeline=$2 uri mark ev status d prc
	local -i tmo=${MIG_TIMEOUT:-300}
	qmp "$name" "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":${MIG_MAX_BANDWIDTH:-107374182400}}}" >/dev/null || return 1
	qmp "$name" '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true}]}}' >/dev/null || return 1
	mark=$(qmp_event_mark "$name") || return 1
	d=$(_vm_dir) || return 1
	rm -f "$d/$name.mig.rc"
	# QEMU ignores the exec child's exit status: record it (last command
	# of the pipeline, /bin/sh has no pipefail) and check it below.
	uri=$(jq -cn --arg u "exec:{ $pipeline
}; echo \$? >$(_vm_shq "$d/$name.mig.rc")" '{execute: "migrate", arguments: {uri: $u}}')
	qmp "$name" "$uri" >/dev/null || return 1
	ev=$(QMP_EVENTS_SINCE=$mark qmp_wait_event "$name" MIGRATION \
		'.data.status == "completed" or .data.status == "failed" or .data.status == "cancelled"' "$tmo") || true
	if [[ -z $ev ]]; then
		_vm_err "vm_migrate: migration of '$name' did not finish within ${tmo}s"
		qmp "$name" '{"execute":"query-migrate"}' >&2 || true
		return 1
	fi
	status=$(jq -r .data.status <<<"$ev")
	# QEMU says completed once the pipeline took the last byte, before
	# the pipeline ends: its status comes later (at most tmo seconds)
	local -i i
	for ((i = 0; i < tmo * 10; i++)); do
		[[ $status != completed || -s $d/$name.mig.rc ]] && break
		sleep 0.1
	done
	prc=$(cat "$d/$name.mig.rc" 2>/dev/null) || prc=""
	if [[ $status == completed && -z $prc ]]; then
		echo failed
		_vm_err "vm_migrate: QEMU says completed, but the pipeline did not end within ${tmo}s"
		return 1
	fi
	if [[ $status == completed && $prc != 0 ]]; then
		echo failed
		_vm_err "vm_migrate: QEMU says completed, but the pipeline exited with status $prc; log:"
		vm_log_tail "$name" 8 >&2
		return 1
	fi
	printf '%s\n' "$status"
	if [[ $status != completed ]]; then
		_vm_err "vm_migrate: migration of '$name' $status: $(qmp "$name" '{"execute":"query-migrate"}' | jq -r '."error-desc" // "no error-desc"')"
		vm_log_tail "$name" 8 >&2
		return 1
	fi
}

vm_wait_incoming() {
	local name=$1 tmo=${2:-60} deadline pid status rc d fpid feed_end=0 now
	d=$(_vm_dir) || return 1
	pid=$(_vm_pid "$name") || return 1
	fpid=$(cat "$d/$name.feed.pid" 2>/dev/null) || fpid=""
	deadline=$(($(_vm_now_ms) + $(_vm_ms "$tmo")))
	while :; do
		if ! _vm_pid_alive "$pid"; then
			rc=0
			wait "$pid" 2>/dev/null || rc=$?
			echo failed
			_vm_err "vm_wait_incoming: QEMU '$name' exited (status $rc) during incoming migration; log:"
			vm_log_tail "$name" >&2
			return 1
		fi
		status=$(qmp "$name" '{"execute":"query-migrate"}' 2>/dev/null | jq -r '.status // "none"')
		case $status in
		completed) echo completed; return 0 ;;
		failed | cancelled)
			echo "$status"
			_vm_err "vm_wait_incoming: incoming migration of '$name' $status"
			vm_log_tail "$name" >&2
			return 1 ;;
		esac
		now=$(_vm_now_ms)
		# QEMU 7.2 watches fd:0 for G_IO_IN only: a stream that ends before a
		# single byte arrived (HUP, no data) leaves it in "inmigrate" forever.
		if [[ $status == none && -n $fpid ]] && ! _vm_pid_alive "$fpid"; then
			((feed_end)) || feed_end=$now
			if ((now - feed_end > 2000)); then
				echo failed
				_vm_err "vm_wait_incoming: the stream for '$name' ended before QEMU read anything (pipeline status $(cat "$d/$name.feed.rc" 2>/dev/null || echo unknown)); QEMU would wait forever"
				sed "s/^/  [$name feed] /" "$d/$name.feed.err" >&2 2>/dev/null || true
				return 1
			fi
		fi
		if (($(_vm_now_ms) > deadline)); then
			echo "${status:-unknown}"
			_vm_err "vm_wait_incoming: '$name' incoming migration not finished after ${tmo}s (status ${status:-unknown})"
			return 1
		fi
		# Wait for the MIGRATION event (x-events) or the next tick.
		qmp_wait_event "$name" MIGRATION \
			'.data.status == "completed" or .data.status == "failed"' 0.25 >/dev/null 2>&1 || true
	done
}

vm_feed_status() {
	local name=$1 tmo=${2:-30} d pid deadline
	d=$(_vm_dir) || return 1
	pid=$(cat "$d/$name.feed.pid" 2>/dev/null) || { _vm_err "vm_feed_status: '$name' has no feed"; return 1; }
	deadline=$(($(_vm_now_ms) + $(_vm_ms "$tmo")))
	while _vm_pid_alive "$pid"; do
		if (($(_vm_now_ms) > deadline)); then
			_vm_err "vm_feed_status: pipeline of '$name' still running after ${tmo}s"
			return 1
		fi
		_vm_tick 0.05
	done
	wait "$pid" 2>/dev/null || true
	if [[ -s $d/$name.feed.rc ]]; then cat "$d/$name.feed.rc"; else echo 255; fi
}

vm_status() {
	qmp "$1" '{"execute":"query-status"}' | jq -r .status
}

vm_attach() {
	local name=$1 d pid
	_vm_check_name "$name" || return 1
	_vm_dir_init || return 1
	d=$(_vm_dir) || return 1
	pid=$(cat "$d/$name.pid" 2>/dev/null) || { _vm_err "vm_attach: no $d/$name.pid"; return 1; }
	_vm_pid_alive "$pid" || { _vm_err "vm_attach: QEMU '$name' (pid $pid) is not running"; return 1; }
	_VM_STARTED+=("$d/$name")
	_vm_qmp_connect "$name" "$d" "$pid"
}

# Two RAM dumps (vm_pmemsave) of a VM and its copy are the same but for
# the firmware's area below 1 MiB (0xC0000-0xFFFFF, option ROMs and the
# BIOS shadowed in RAM): a paused source and its restored copy were seen
# to differ there (byte 0xE8C21, in two tests of one run under KVM, and a
# byte or two under TCG), through pipelines that carry every byte intact
# (their checks verified); the cause, in QEMU or KVM, is not pinned down.
# Everything else, the guest's RAM, must match byte for byte.
vm_same_ram() {
	cmp -n $((0xC0000)) "$1" "$2" && cmp -i $((0x100000)) "$1" "$2"
}

vm_pmemsave() {
	local name=$1 file=$2 size=$3 bytes
	case $size in
	*[kK]) bytes=$((${size%?} << 10)) ;;
	*[mM]) bytes=$((${size%?} << 20)) ;;
	*[gG]) bytes=$((${size%?} << 30)) ;;
	*) bytes=$size ;;
	esac
	[[ $bytes =~ ^[0-9]+$ ]] || { _vm_err "vm_pmemsave: bad size $size"; return 1; }
	file=$(realpath -m "$file")
	rm -f "$file"
	qmp "$name" "$(jq -cn --arg f "$file" --argjson n "$bytes" \
		'{execute: "pmemsave", arguments: {val: 0, size: $n, filename: $f}}')" >/dev/null || return 1
	# pmemsave is synchronous: the reply means the file is complete.
	[[ $(stat -c %s "$file" 2>/dev/null) == "$bytes" ]] ||
		{ _vm_err "vm_pmemsave: $file is not $bytes bytes"; return 1; }
}

# _vm_kill DIR NAME: stop QEMU NAME of DIR (quit, then TERM, then KILL),
# its socat and its feed pipeline; reap what this shell started.
_vm_kill() {
	local d=$1 name=$2 pid spid fpid deadline key fd
	pid=$(cat "$d/$name.pid" 2>/dev/null) || true
	spid=$(cat "$d/$name.socat.pid" 2>/dev/null) || true
	fpid=$(cat "$d/$name.feed.pid" 2>/dev/null) || true
	if _vm_pid_alive "$pid" && _vm_pid_alive "$spid"; then
		QMP_TIMEOUT=5 VM_DIR=$d qmp "$name" '{"execute":"quit"}' >/dev/null 2>&1 || true
	fi
	deadline=$(($(_vm_now_ms) + 5000))
	while _vm_pid_alive "$pid" && (($(_vm_now_ms) < deadline)); do
		_vm_tick 0.02
	done
	if _vm_pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		deadline=$(($(_vm_now_ms) + 5000))
		while _vm_pid_alive "$pid" && (($(_vm_now_ms) < deadline)); do
			_vm_tick 0.02
		done
		if _vm_pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	[[ -z $pid ]] || wait "$pid" 2>/dev/null || true
	if [[ -n $fpid ]]; then
		if _vm_pid_alive "$fpid"; then kill -TERM -- "-$fpid" 2>/dev/null || true; fi
		wait "$fpid" 2>/dev/null || true
	fi
	if [[ -n $spid ]]; then
		if _vm_pid_alive "$spid"; then kill -TERM "$spid" 2>/dev/null || true; fi
		wait "$spid" 2>/dev/null || true
	fi
	key="$d/$name"
	fd=${_VM_KEEPFD[$key]:-}
	if [[ -n $fd ]]; then
		exec {fd}<&-
		unset '_VM_KEEPFD[$key]'
	fi
	rm -f "$d/$name.pid" "$d/$name.socat.pid" "$d/$name.feed.pid" "$d/$name.qmp" \
		"$d/$name.in" "$d/$name.out" "$d/$name.feed"
	return 0
}

vm_stop() {
	local d; d=$(_vm_dir) || return 1
	[[ -e $d/$1.pid ]] || { _vm_err "vm_stop: no VM '$1' in $d"; return 1; }
	_vm_kill "$d" "$1"
}

vm_cleanup_all() {
	local entry f d
	local -a all=("${_VM_STARTED[@]}")
	if [[ -n ${VM_DIR:-} && -d $VM_DIR ]]; then
		for f in "$VM_DIR"/*.pid; do
			[[ -e $f && $f != *.socat.pid && $f != *.feed.pid ]] || continue
			f=${f%.pid}
			all+=("$f")
		done
	fi
	for entry in "${all[@]}"; do
		d=${entry%/*}
		[[ -e $entry.pid ]] && _vm_kill "$d" "${entry##*/}"
	done
	_VM_STARTED=()
	return 0
}

# make_test_stream OUT [MIB]: a real QEMU migration stream of a paused
# q35 VM whose RAM is a fresh vm_make_ram image, kept as OUT.ram.
make_test_stream() {
	local out=$1 mib=${2:-64} status rc=0
	[[ -n $out ]] || { _vm_err "usage: make_test_stream OUT [MIB]"; return 2; }
	out=$(realpath -m "$out")
	local VM_DIR
	VM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/migkit-mts.XXXXXX") || return 1
	vm_make_ram "$out.ram" "$mib" || { rm -rf "$VM_DIR"; return 1; }
	rm -f "$out"
	if vm_start_source mkstream "$out.ram" "$mib" -S; then
		status=$(vm_migrate mkstream "cat > $(_vm_shq "$out")") || rc=1
	else
		rc=1
	fi
	_vm_kill "$VM_DIR" mkstream
	if ((rc == 0)) && [[ $(head -c 4 "$out" 2>/dev/null) != QEVM ]]; then
		_vm_err "make_test_stream: $out does not start with QEVM"
		rc=1
	fi
	((rc == 0)) || { _vm_err "make_test_stream: failed (status ${status:-none}); QEMU log:"; cat "$VM_DIR/mkstream.log" >&2; }
	rm -rf "$VM_DIR"
	return "$rc"
}

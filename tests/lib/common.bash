# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# tests/lib/common.bash - what every bats file of migkit loads first.
bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
export MIG_BIN=${MIG_BIN:-$REPO/build/bin}
export PATH=$MIG_BIN:$PATH

# The real QEMU stream the tests share: the one scripts/run-tests made, or
# one made now for this file (call from setup_file).
test_stream_setup() {
	if [ -n "${MIG_TEST_STREAM:-}" ] && [ -s "$MIG_TEST_STREAM" ]; then
		STREAM=$MIG_TEST_STREAM
	else
		STREAM=$BATS_FILE_TMPDIR/stream
		"$REPO/scripts/make-test-stream" "$STREAM" 64 >&3 2>&1
	fi
	export STREAM
}

# Frame k of a layer with no META and 1 MiB frames starts here: a 21-byte
# checksum header, then frames of 8 + 1 MiB + 8 bytes.
ck_frame_offset() { echo $((21 + $1 * (8 + 1048576 + 8))); }

# Flip one byte of FILE at OFFSET.
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf '%03o' $(((b ^ 0x40) & 0xff)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# OUT is a prefix of ORIG (both files).
assert_prefix() {
	local n
	n=$(stat -c %s "$1")
	[ "$n" -le "$(stat -c %s "$2")" ] || fail "$1 ($n bytes) is longer than $2"
	cmp -s -n "$n" "$1" "$2" || fail "$1 is not a prefix of $2"
}

# Run COMMAND-LINE (sh) with its standard output and error on a terminal,
# the pseudo-terminal of script(1) (util-linux), and its standard input
# empty. Prints what it wrote there, the terminal's "\r\n" line ends
# turned back into "\n" (a "\r" of its own stays); returns its status.
on_tty() { # COMMAND-LINE
	script -qec "$1" /dev/null < /dev/null | sed 's/\r$//'
	return "${PIPESTATUS[0]}"
}

#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# The build: make install puts commands, man pages, header and library
# where PREFIX and DESTDIR say.

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || exit 1
}

@test "make install PREFIX DESTDIR installs commands, man pages, header, library" {
	dest=$BATS_TEST_TMPDIR/root
	run -0 make -C "$REPO" -s install PREFIX=/opt/mig DESTDIR="$dest"
	for f in bin/mig-checksum bin/mig-info bin/mig-compact bin/mig-tee bin/mig-ssh bin/mig-envelope \
		include/mig.h lib/libmigchan.a \
		share/man/man1/mig-checksum.1 share/man/man1/mig-info.1 share/man/man1/mig-compact.1 \
		share/man/man5/mig-stream.5 share/man/man7/mig.7; do
		[ -f "$dest/opt/mig/$f" ] || fail "missing $f"
	done
	run -0 "$dest/opt/mig/bin/mig-checksum" --version
	assert_output "mig-checksum (migkit) 0.1.0"
	[ -x "$dest/opt/mig/bin/mig-info" ]
}

@test "every command has a man page that renders without warnings" {
	for c in "$MIG_BIN"/mig-*; do
		page=$REPO/man/$(basename "$c").1
		[ -f "$page" ] || fail "no man page for $(basename "$c")"
	done
	for page in "$REPO"/man/*.[157]; do
		run -0 --separate-stderr env MANWIDTH=80 man --warnings -l "$page"
		[ -z "$stderr" ] || fail "$page: $stderr"
	done
}

@test "the installed header compiles on its own, with a program using it" {
	cat > "$BATS_TEST_TMPDIR/t.c" <<-'C'
	#include <mig.h>
	int main(void) { uint64_t v; return mig_parse_size("1M", &v) || v != 1048576; }
	C
	san=()
	[ "${SANITIZE:-}" != 1 ] || san=(-fsanitize=address,undefined)
	run -0 cc -std=c11 -Wall -Wextra -Werror "${san[@]}" -I"$REPO/channel" \
		-o "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/t.c" "$REPO/build/libmigchan.a" -lxxhash -pthread
	run -0 "$BATS_TEST_TMPDIR/t"
}

@test "mig-keygen links libsodium alone: not the encrypt filter, not OpenSSL" {
	run -0 ldd "$MIG_BIN/mig-keygen"
	assert_output --partial "libsodium"
	refute_output --partial "libcrypto"
	refute_output --partial "libssl"
	refute_output --partial "libxxhash"
}

# A filter built out of tree against what `make install` put in place
# (mig.h, libmigchan.a, migchan.pc) and nothing else of the tree: it runs
# between stock filters, and mig-info names its layer from the kind file
# it installs.
@test "the installed library is an SDK: an out-of-tree filter builds, runs with the stock ones, and is named" {
	dest=$BATS_TEST_TMPDIR/root
	run -0 make -C "$REPO" -s install PREFIX=/opt/mig DESTDIR="$dest"
	[ -f "$dest/opt/mig/lib/pkgconfig/migchan.pc" ]
	[ -d "$dest/opt/mig/share/migkit/kinds.d" ]
	cp "$REPO/tests/sdk/mig-xor.c" "$BATS_TEST_TMPDIR/"
	pc() { pkg-config --define-variable=prefix="$dest/opt/mig" --static "$@" migchan; }
	export PKG_CONFIG_PATH=$dest/opt/mig/lib/pkgconfig
	run -0 pc --modversion
	assert_output "0.1.0"
	san=()
	[ "${SANITIZE:-}" != 1 ] || san=(-fsanitize=address,undefined)
	# shellcheck disable=SC2046 # pkg-config's words are separate flags
	run -0 cc -std=c11 -Wall -Wextra -Werror "${san[@]}" $(pc --cflags) \
		-o "$BATS_TEST_TMPDIR/mig-xor" "$BATS_TEST_TMPDIR/mig-xor.c" $(pc --libs)
	head -c 3000000 /dev/urandom > data
	"$BATS_TEST_TMPDIR/mig-xor" < data > x
	! cmp -s x data
	mig-checksum < data | "$BATS_TEST_TMPDIR/mig-xor" | mig-compress |
		mig-decompress | "$BATS_TEST_TMPDIR/mig-xor" -d | mig-checksum -d | cmp - data
	# unregistered, its kind is a number; registered, a name and a peeler
	run -1 --separate-stderr mig-checksum -d < x
	output=$stderr assert_output --partial "kind 200"
	cp "$REPO/tests/sdk/xor.kind" "$dest/opt/mig/share/migkit/kinds.d/xor"
	export MIG_KINDS_DIR=$dest/opt/mig/share/migkit/kinds.d
	run -1 --separate-stderr mig-checksum -d < x
	output=$stderr assert_output "mig-checksum: stdin: input is a xor layer; run mig-xor -d first"
	run -5 mig-info x
	assert_line --index 1 --regexp '^layer 1: xor, cannot be opened here'
}

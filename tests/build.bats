#!/usr/bin/env bats
# The build: make install puts commands, man pages, header and library
# where PREFIX and DESTDIR say.

setup() {
	load lib/common
}

@test "make install PREFIX DESTDIR installs commands, man pages, header, library" {
	dest=$BATS_TEST_TMPDIR/root
	run -0 make -C "$REPO" -s install PREFIX=/opt/mig DESTDIR="$dest"
	for f in bin/mig-checksum bin/mig-info bin/mig-tee bin/mig-ssh bin/mig-envelope \
		include/mig.h lib/libmigchan.a \
		share/man/man1/mig-checksum.1 share/man/man1/mig-info.1 \
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

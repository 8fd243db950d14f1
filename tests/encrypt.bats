#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# mig-encrypt / mig-decrypt / mig-keygen: round trips of a real QEMU
# stream in every key mode, a VM checkpointed and restored through them,
# and every tampering and key case refused with an exact message, exit
# status 1 and a prefix of the original (no output at all for a wrong
# key).
# shellcheck disable=SC2016,SC2154  # bash -c scripts use their own $vars; bats sets $stderr

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/common
	load lib/qemu
	cd "$BATS_TEST_TMPDIR" || exit 1
	mig-keygen -q -o k
}

teardown() {
	vm_cleanup_all
}

# A key-file layer: header of 12 + 84 + 8 bytes, frames of 8 + 1 MiB + 16.
HDR=104
frame_offset() { echo $((HDR + $1 * (8 + 1048576 + 16))); }
size_of() { stat -c %s "$1"; }
key_id() { sed -n 's/^# migkit .*, key id \([0-9a-f]*\)$/\1/p' "$1"; }

# Rewrite the XXH3-64 check of FILE's layer header, as someone who alters
# the header on purpose would.
fix_header_check() {
	local p sum i
	p=$(od -An -tu4 -j8 -N4 "$1" | tr -d ' ')
	sum=$(head -c $((12 + p)) "$1" | xxhsum -H3 - | sed 's/.*= //')
	for i in 0 1 2 3 4 5 6 7; do
		printf "\\x${sum:$((14 - 2 * i)):2}"
	done | dd of="$1" bs=1 seek=$((12 + p)) conv=notrunc status=none
}

# ---- mig-keygen -------------------------------------------------------------

@test "mig-keygen: --help, --version, and one mode is required" {
	run -0 mig-keygen --help
	assert_line --index 0 "usage: mig-keygen -o KEYFILE [-f]"
	run -0 mig-keygen -V
	assert_output "mig-keygen (migkit) 0.1.0"
	run -2 --separate-stderr mig-keygen
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-keygen: give one of -o KEYFILE, --pair NAME, -y IDENTITY or --sign-pair NAME"
	run -2 --separate-stderr mig-keygen --bogus
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-keygen: unknown or incomplete option '--bogus'"
}

@test "mig-keygen -o: a text key file, mode 0600, its key id printed; no overwrite without -f" {
	run -0 mig-keygen -o k1
	assert_output --regexp "^k1: symmetric key, key id [0-9a-f]{16}$"
	[ "$(stat -c %a k1)" = 600 ]
	run -0 grep -cE '^mig-key-1:[A-Za-z0-9+/]{43}=$' k1
	assert_output 1
	id=$(key_id k1)
	[ "${#id}" -eq 16 ]
	cp k1 k1.orig
	run -2 --separate-stderr mig-keygen -o k1
	output=$stderr assert_output "mig-keygen: k1 exists: not overwriting it (use -f)"
	cmp k1 k1.orig
	run -0 mig-keygen -q -f -o k1
	assert_output ""
	run ! cmp -s k1 k1.orig
	[ "$(stat -c %a k1)" = 600 ]
	[ -z "$(ls ./*.tmp.* 2>/dev/null)" ]
}

@test "mig-keygen --pair: a secret identity (0600) and its public recipient; -y remakes the .pub" {
	run -0 mig-keygen --pair alice
	assert_line --index 0 --regexp "^alice: identity \(secret key\), key id [0-9a-f]{16}$"
	assert_line --index 1 --regexp "^alice.pub: recipient \(public key\), key id [0-9a-f]{16}$"
	[ "$(stat -c %a alice)" = 600 ]
	[ "$(stat -c %a alice.pub)" = 644 ]
	[ "$(key_id alice)" = "$(key_id alice.pub)" ]
	grep -q '^mig-identity-1:' alice
	grep -q '^mig-recipient-1:' alice.pub
	mig-keygen -y alice | cmp - alice.pub
	run -2 --separate-stderr mig-keygen --pair alice
	output=$stderr assert_output "mig-keygen: alice.pub exists: not overwriting it (use -f)"
}

# ---- the command -------------------------------------------------------------

@test "--help names the key options; mig-decrypt is mig-encrypt -d" {
	run -0 mig-encrypt --help
	assert_line --index 0 "usage: mig-encrypt [options] [FILE]"
	assert_output --partial "-k, --key KEYFILE"
	assert_output --partial "--passphrase-fd N"
	assert_output --partial "-r, --recipient FILE.pub"
	assert_output --partial "-i, --identity FILE"
	run -0 mig-decrypt -V
	assert_output "mig-decrypt (migkit) 0.1.0"
	printf 'hello' | mig-encrypt -k k > e
	mig-decrypt -k k < e | cmp - <(printf 'hello')
	mig-encrypt -d -k k < e | cmp - <(printf 'hello')
}

@test "the layer starts with the mig magic, version 1, kind 3, parameters version 2; -v describes it" {
	printf 'x' | mig-encrypt -k k > e
	run -0 od -An -tx1 -N6 e
	assert_output " 89 4d 49 47 01 03"
	run -0 od -An -tx1 -j8 -N5 e
	assert_output " 54 00 00 00 02"
	run -0 --separate-stderr bash -c 'mig-decrypt -v -k k < e > /dev/null'
	output=$stderr assert_output --regexp "^mig-decrypt: encrypt layer \(cipher=(aes256gcm|chacha20poly1305) key=keyfile\): 1 frames, "
	run -5 mig-info e
	assert_line --index 1 "layer 1: encrypt, cannot be opened here ($(size_of e) bytes)"
}

@test "a missing key option is a usage error, encrypting and decrypting" {
	run -2 --separate-stderr bash -c 'mig-encrypt < "$STREAM" > e'
	output=$stderr assert_output "mig-encrypt: stdin: no key: give -k KEYFILE, --passphrase-file FILE, --passphrase-fd N or -r RECIPIENT.pub"
	[ ! -s e ]
	mig-encrypt -k k < /dev/null > e
	run -2 --separate-stderr bash -c 'mig-decrypt < e > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: no key: give -k KEYFILE, --passphrase-file FILE, --passphrase-fd N or -i IDENTITY"
	[ ! -s out ]
}

@test "key options that do not fit are usage errors" {
	mig-keygen -q --pair id
	run -2 --separate-stderr bash -c 'mig-encrypt -k k -r id.pub < /dev/null > e'
	output=$stderr assert_output "mig-encrypt: stdin: give one kind of key: -k, a passphrase or -r recipients"
	run -2 --separate-stderr bash -c 'mig-encrypt -i id < /dev/null > e'
	output=$stderr assert_output "mig-encrypt: stdin: -i is for decrypting; to encrypt to a key pair give its public half with -r NAME.pub"
	run -2 --separate-stderr mig-encrypt -r id
	output=$stderr assert_output "mig-encrypt: id is an identity (secret key), not a recipient (public key) (give its public half, NAME.pub)"
	run -2 --separate-stderr mig-encrypt -k id.pub
	output=$stderr assert_output "mig-encrypt: id.pub is a recipient (public key), not a symmetric key"
	run -2 --separate-stderr mig-encrypt -k nonexistent
	output=$stderr assert_output "mig-encrypt: nonexistent: No such file or directory"
	run -2 --separate-stderr mig-encrypt --passphrase-fd 0
	output=$stderr assert_output "mig-encrypt: --passphrase-fd: '0' is not a descriptor from 3 up (0 is the stream, 1 the output)"
	run -2 --separate-stderr mig-encrypt --cipher des
	output=$stderr assert_output "mig-encrypt: --cipher: 'des' is not aes256gcm or chacha20poly1305"
	printf 'garbage\n' > bad; chmod 600 bad
	run -2 --separate-stderr mig-encrypt -k bad
	output=$stderr assert_output "mig-encrypt: bad: not a migkit key file (no mig-key-1:, mig-identity-1:, mig-recipient-1:, mig-sign-key-1: or mig-signer-1: line)"
}

@test "a key file, identity or passphrase file that others can read is refused" {
	chmod 640 k
	run -2 --separate-stderr bash -c 'mig-encrypt -k k < /dev/null > e'
	output=$stderr assert_output "mig-encrypt: k: permissions 0640 are too open: a secret key must not be accessible by group or others; refusing it (chmod 600 k)"
	[ ! -s e ]
	chmod 604 k
	run -2 --separate-stderr mig-decrypt -k k
	output=$stderr assert_output --partial "k: permissions 0604 are too open"
	mig-keygen -q --pair id
	chmod 644 id
	run -2 --separate-stderr mig-decrypt -i id
	output=$stderr assert_output "mig-decrypt: id: permissions 0644 are too open: a secret key must not be accessible by group or others; refusing it (chmod 600 id)"
	echo pass > pw; chmod 644 pw
	run -2 --separate-stderr mig-encrypt --passphrase-file pw
	output=$stderr assert_output --partial "pw: permissions 0644 are too open"
}

# ---- round trips -----------------------------------------------------------------

@test "a real QEMU stream round-trips byte for byte with a key file, -T 1 and -T 4" {
	mig-encrypt -k k -T 1 < "$STREAM" > e1
	mig-encrypt -k k -T 4 < "$STREAM" > e4
	mig-decrypt -k k -T 1 < e4 | cmp - "$STREAM"
	mig-decrypt -k k -T 4 < e1 | cmp - "$STREAM"
	mig-decrypt -k k < e1 | cmp - "$STREAM"
	# a header, 24 bytes a frame and an END of 8 + 16 + 16
	frames=$(( ($(size_of "$STREAM") + 1048575) / 1048576 ))
	[ "$(size_of e1)" -eq $(( $(size_of "$STREAM") + HDR + frames * 24 + 40 )) ]
	# the same key, a fresh stream key: the two encryptions differ
	run ! cmp -s e1 e4
	# the guest's machine type is in the stream, not in its encryption
	grep -q pc-q35 "$STREAM"
	run ! grep -q pc-q35 e1
}

@test "the test vectors open to their exact bytes (test-channel opens them by mig-stream(5) with libsodium)" {
	# tests/vectors/encrypt-hello-*.mig: printf 'hello, sealed frames\n' |
	# mig-encrypt -k encrypt.key --cipher C --meta vm=demo --frame-size 8;
	# -recipient: -r (encrypt.identity's .pub) --cipher chacha20poly1305
	install -m 600 "$REPO/tests/vectors/encrypt.key" key
	install -m 600 "$REPO/tests/vectors/encrypt.identity" id
	for c in aes256gcm chacha20poly1305 recipient; do
		opt=(-k key); [ "$c" != recipient ] || opt=(-i id)
		run -0 mig-decrypt "${opt[@]}" "$REPO/tests/vectors/encrypt-hello-$c.mig"
		assert_output "hello, sealed frames"
		run -0 --separate-stderr mig-decrypt -v "${opt[@]}" "$REPO/tests/vectors/encrypt-hello-$c.mig"
		output=$stderr lines=("${stderr_lines[@]}")
		assert_line --index 1 "mig-decrypt: encrypt META (authenticated) vm=demo"
	done
	output=$stderr assert_line --index 0 "mig-decrypt: encrypt layer (cipher=chacha20poly1305 key=recipients n=1): 4 frames, 21 B inner, 348 B encoded"
}

@test "a stream of encrypt parameters version 1 (which named its keys) is refused, saying so, before any output" {
	install -m 600 "$REPO/tests/vectors/encrypt.key" key
	cp "$REPO/tests/vectors/encrypt-v1-hello-chacha20poly1305.mig" v1
	run -1 --separate-stderr bash -c 'mig-decrypt -k key v1 > out'
	output=$stderr assert_output "mig-decrypt: v1: layer header: encrypt parameters version 1 are no longer read (that version named its keys in the header): decrypt the stream with the mig-decrypt that wrote it"
	[ ! -s out ]
}

@test "both ciphers round-trip; the decoder reads the cipher from the header" {
	mig-encrypt -k k --cipher chacha20poly1305 < "$STREAM" > ec
	run -0 --separate-stderr bash -c 'mig-decrypt -v -k k < ec | cmp - "$STREAM"'
	output=$stderr assert_output --partial "(cipher=chacha20poly1305 key=keyfile"
	mig-encrypt -k k --cipher aes256gcm < "$STREAM" > ea
	run -0 --separate-stderr bash -c 'mig-decrypt -v -k k < ea | cmp - "$STREAM"'
	output=$stderr assert_output --partial "(cipher=aes256gcm key=keyfile"
}

@test "AES-256-GCM without AES-NI and PCLMUL: OpenSSL's software AES seals and opens it" {
	# OPENSSL_ia32cap masks the CPU's AES-NI (bit 57) and PCLMULQDQ (bit
	# 33) from OpenSSL, which then uses its constant-time software AES-GCM.
	# libsodium's detection, which chooses the default cipher, cannot be
	# masked: so this shows that both ways work without the instructions,
	# and that nothing refuses them (the refusal was removed from the code).
	export OPENSSL_ia32cap='~0x200000200000000'
	head -c 3000000 "$STREAM" > s
	mig-encrypt -k k --cipher aes256gcm < s > ea
	OPENSSL_ia32cap= mig-decrypt -k k < ea | cmp - s
	unset OPENSSL_ia32cap
	mig-encrypt -k k --cipher aes256gcm < s > eb
	OPENSSL_ia32cap='~0x200000200000000' mig-decrypt -k k < eb | cmp - s
}

@test "a passphrase from a file and from a descriptor round-trips" {
	printf 'correct horse battery staple\n' > pw
	chmod 600 pw
	mig-encrypt --passphrase-file pw --pwhash-cost interactive < "$STREAM" > e
	mig-decrypt --passphrase-fd 3 3< pw < e | cmp - "$STREAM"
	printf 'correct horse battery staple' | mig-encrypt --passphrase-fd 3 --pwhash-cost interactive 3<&0 < "$STREAM" > e2
	mig-decrypt --passphrase-file pw -T 4 < e2 | cmp - "$STREAM"
	run -0 --separate-stderr bash -c 'mig-decrypt -v --passphrase-file pw < e > /dev/null'
	output=$stderr assert_output --partial "key=passphrase kdf=argon2id ops=2 mem=64M"
}

@test "one recipient and several recipients round-trip; each identity decrypts" {
	mig-keygen -q --pair a
	mig-keygen -q --pair b
	mig-keygen -q --pair c
	mig-encrypt -r a.pub < "$STREAM" > e1
	mig-decrypt -i a < e1 | cmp - "$STREAM"
	mig-encrypt -r a.pub -r b.pub -r c.pub -T 4 < "$STREAM" > e3
	for id in a b c; do
		mig-decrypt -i "$id" -T 1 < e3 | cmp - "$STREAM"
	done
	# several -i: the one the stream was sealed to is used
	mig-keygen -q --pair d
	mig-decrypt -i d -i b < e3 | cmp - "$STREAM"
	run -0 --separate-stderr bash -c 'mig-decrypt -v -i a < e3 > /dev/null'
	output=$stderr assert_output --partial "(cipher=aes256gcm key=recipients n=3): "
}

# The bytes of FILE (or stdin) as one line of hex, for searching.
hex_of() { od -An -tx1 -v "$@" | tr -d ' \n'; }
# The 32 bytes of the key line of a key file, as hex.
key_hex() { sed -n 's/^mig-[a-z]*-1://p' "$1" | base64 -d | hex_of; }
# The parameters of a layer's header, as hex.
params_hex() { local p; p=$(od -An -tu4 -j8 -N4 "$1" | tr -d ' '); tail -c +13 "$1" | head -c "$p" | hex_of; }

@test "the header names nobody: no key id, no public key, nothing shared by two streams" {
	mig-keygen -q --pair a; mig-keygen -q --pair b
	mig-encrypt -r a.pub -r b.pub < /dev/null > r1
	mig-encrypt -r a.pub -r b.pub < /dev/null > r2
	mig-encrypt -k k < /dev/null > k1
	mig-encrypt -k k < /dev/null > k2
	for f in r1 r2 k1 k2; do
		for who in a b k; do
			run ! grep -q "$(key_id "$who")" <(hex_of "$f")
		done
		for who in a.pub b.pub; do
			run ! grep -q "$(key_hex "$who")" <(hex_of "$f")
		done
	done
	# two streams for the same recipients, or under the same key: after
	# version, cipher, mode and count, no 4-byte run of one is in the other
	for pair in "r1 r2" "k1 k2"; do
		set -- $pair
		one=$(params_hex "$1") two=$(params_hex "$2")
		[ "${one:0:8}" = "${two:0:8}" ]
		for ((i = 8; i < ${#one}; i += 8)); do
			[[ "$two" != *"${one:$i:8}"* ]] || { echo "shared at $i: ${one:$i:8}"; false; }
		done
	done
	[ "${#one}" -eq $((84 * 2)) ]
	[ "$(params_hex r1 | wc -c)" -eq $(((84 + 2 * 80) * 2)) ]
}

@test "a recipient key that is a low-order point is refused" {
	printf '# migkit recipient (public key), key id x\nmig-recipient-1:%s\n' \
		"$(head -c 32 /dev/zero | base64)" > zero.pub
	run -2 --separate-stderr bash -c 'mig-encrypt -r zero.pub < /dev/null > e'
	output=$stderr assert_output --regexp "^mig-encrypt: stdin: recipient key id [0-9a-f]{16} is not a usable X25519 public key$"
	[ ! -s e ]
}

@test "empty input, META and small frames round-trip; META is encrypted" {
	mig-encrypt -k k < /dev/null > e
	mig-decrypt -k k < e > out
	[ ! -s out ]
	mig-encrypt -k k --meta vm.name=secret-vm-name --frame-size 4K < "$STREAM" > e
	run ! grep -q secret-vm-name e
	run -0 --separate-stderr bash -c 'mig-decrypt -v -k k < e | cmp - "$STREAM"'
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 1 "mig-decrypt: encrypt META (authenticated) vm.name=secret-vm-name"
}

@test "-v: META from envelopes outside the layer is marked unauthenticated and escaped, apart from the layer's own" {
	printf 'hi' | mig-encrypt -k k --meta vm=real > e
	mig-envelope --meta "vm=$(printf 'forged\e[2J\nmig-decrypt: encrypt META (authenticated) vm=evil\\')" < e > env
	run -0 --separate-stderr bash -c 'mig-decrypt -v -k k < env'
	assert_output "hi"
	output=$stderr lines=("${stderr_lines[@]}")
	assert_equal "${#lines[@]}" 4
	assert_line --index 0 --regexp "^mig-decrypt: envelope layer \(hash=xxh3\): 2 frames, "
	assert_line --index 1 'mig-decrypt: envelope META (not authenticated) vm=forged\x1b[2J\x0amig-decrypt: encrypt META (authenticated) vm=evil\\'
	assert_line --index 2 --regexp "^mig-decrypt: encrypt layer \(cipher=[a-z0-9]+ key=keyfile\): 2 frames, "
	assert_line --index 3 "mig-decrypt: encrypt META (authenticated) vm=real"
}

# ---- locked memory -----------------------------------------------------------------

# Run a command as an unprivileged user (root's CAP_IPC_LOCK ignores the
# lock limit), with RLIMIT_MEMLOCK at LIMIT (bytes, or "keep").
unprivileged() {
	local limit=$1; shift
	[ "$limit" = keep ] || set -- prlimit --memlock="$limit" "$@"
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
	else
		"$@"
	fi
}

@test "-v says once that key memory cannot be locked (RLIMIT_MEMLOCK 0, unprivileged); without -v nothing" {
	# AddressSanitizer intercepts mlock() as a no-op that succeeds, so in a
	# SANITIZE=1 build no lock can fail; the plain build runs this test.
	if ldd "$(command -v mig-encrypt)" | grep -q libasan; then
		skip "AddressSanitizer makes mlock() succeed without locking"
	fi
	local msg="cannot lock key memory: Operation not permitted; keys may reach swap"
	printf 'pass phrase\n' > pw
	head -c 5000000 "$STREAM" > s
	enc() { unprivileged "$1" mig-encrypt "${@:2}" -T 4 --passphrase-fd 3 --pwhash-cost interactive 3< pw < s; }
	enc 0 -v > e 2> err
	run -0 grep -c "^mig-encrypt: $msg\$" err
	assert_output 1
	run -0 wc -l < err	# and the usual -v line
	assert_output 2
	enc 0 > e 2> err
	[ ! -s err ]
	unprivileged 0 mig-decrypt -v -T 4 --passphrase-fd 3 3< pw < e 2> err | cmp - s
	run -0 grep -c "^mig-decrypt: $msg\$" err
	assert_output 1
	# under the system's own limit (here $(ulimit -l) KiB) the keys fit
	enc keep -v > e 2> err
	run ! grep -q "cannot lock" err
}

# ---- wrong keys: refused at the header, nothing written ------------------------

@test "a wrong key is named as such before any output, by the check value (no key id in the stream)" {
	mig-encrypt -k k < "$STREAM" > e
	mig-keygen -q -o other
	run -1 --separate-stderr bash -c 'mig-decrypt -k other < e > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: wrong key: the stream was not encrypted with this key (key id $(key_id other)), or its header was altered"
	[ ! -s out ]
}

@test "a wrong passphrase is refused before any output" {
	echo right > pw; echo wrong > pw2; chmod 600 pw pw2
	mig-encrypt --passphrase-file pw --pwhash-cost interactive < "$STREAM" > e
	run -1 --separate-stderr bash -c 'mig-decrypt --passphrase-file pw2 < e > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: wrong passphrase: the stream was not encrypted with it, or its header was altered"
	[ ! -s out ]
}

@test "a wrong identity is refused, naming its own key ids only (the stream names none)" {
	mig-keygen -q --pair a; mig-keygen -q --pair b; mig-keygen -q --pair x; mig-keygen -q --pair y
	mig-encrypt -r a.pub -r b.pub < "$STREAM" > e
	run -1 --separate-stderr bash -c 'mig-decrypt -i x < e > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: wrong identity: the stream is encrypted to 2 recipients, none of them this identity (key id $(key_id x))"
	[ ! -s out ]
	mig-encrypt -r a.pub < /dev/null > e1
	run -1 --separate-stderr bash -c 'mig-decrypt -i x -i y < e1 > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: wrong identity: the stream is encrypted to 1 recipient, none of them these identities (key ids $(key_id x), $(key_id y))"
	[ ! -s out ]
}

@test "a key of the wrong kind says what the stream needs" {
	mig-keygen -q --pair a
	mig-encrypt -r a.pub < /dev/null > er
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < er > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: the stream is encrypted to 1 recipient: give -i IDENTITY"
	mig-encrypt -k k < /dev/null > ek
	run -1 --separate-stderr bash -c 'mig-decrypt -i a < ek > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: the stream is encrypted with a key file: give -k KEYFILE"
	[ ! -s out ]
}

# ---- tampering: refused, exit 1, output a prefix ---------------------------------

@test "a flipped bit in the header is refused before any output" {
	mig-encrypt -k k < "$STREAM" > e
	cp e e1; flip_byte e1 40
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < e1 > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header is corrupt (check mismatch)"
	[ ! -s out ]
	# altered on purpose, with the header's check rewritten: the MAC
	for at in 13 14 20 50 60 87; do
		cp e e2; flip_byte e2 "$at"; fix_header_check e2
		run -1 --separate-stderr bash -c 'mig-decrypt -k k < e2 > out'
		[ ! -s out ]
	done
	cp e e2; flip_byte e2 30; fix_header_check e2	# the stream salt
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < e2 > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: wrong key: the stream was not encrypted with this key (key id $(key_id k)), or its header was altered"
	[ ! -s out ]
	cp e e2; flip_byte e2 70; fix_header_check e2	# the MAC
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < e2 > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: header authentication failed: the header was altered"
	[ ! -s out ]
	# to recipients: a stanza that opens, the check value or MAC altered
	mig-keygen -q --pair a
	mig-encrypt -r a.pub < /dev/null > r
	for at in $((12 + 36 + 80 + 3)) $((12 + 36 + 80 + 16 + 9)); do
		cp r r2; flip_byte r2 "$at"; fix_header_check r2
		run -1 --separate-stderr bash -c 'mig-decrypt -i a < r2 > out'
		output=$stderr assert_output "mig-decrypt: stdin: layer header: header authentication failed: the header was altered"
	done
	cp r r2; flip_byte r2 $((12 + 36 + 40)); fix_header_check r2	# the stanza
	run -1 --separate-stderr bash -c 'mig-decrypt -i a < r2 > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: wrong identity: the stream is encrypted to 1 recipient, none of them this identity (key id $(key_id a))"
	cp e e2; flip_byte e2 13; fix_header_check e2	# the cipher
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < e2 > out'
	output=$stderr assert_output "mig-decrypt: stdin: layer header: unknown cipher 65"
}

@test "a flipped bit in a frame is refused at that frame; output is a prefix" {
	mig-encrypt -k k < "$STREAM" > e
	at=$(frame_offset 5)
	flip_byte e $((at + 1000))
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < e > out'
	output=$stderr assert_output "mig-decrypt: stdin: frame 5 (offset $at): authentication failed: the frame was altered, or frames were dropped, replayed or reordered"
	[ "$(size_of out)" -eq $((5 * 1048576)) ]
	assert_prefix out "$STREAM"
	# its tag is covered too
	for off in $((at + 8 + 1048576 + 15)); do
		mig-encrypt -k k < "$STREAM" > e
		flip_byte e "$off"
		run -1 --separate-stderr bash -c 'mig-decrypt -k k -T 4 < e > out'
		output=$stderr assert_output "mig-decrypt: stdin: frame 5 (offset $at): authentication failed: the frame was altered, or frames were dropped, replayed or reordered"
		assert_prefix out "$STREAM"
	done
	# and its flags, which the encrypt layer does not define: refused
	# before the frame is opened
	mig-encrypt -k k < "$STREAM" > e
	flip_byte e $((at + 1))
	run -1 --separate-stderr bash -c 'mig-decrypt -k k -T 4 < e > out'
	output=$stderr assert_output "mig-decrypt: stdin: frame 5 (offset $at): flags 0x40: bit 0x40 not defined for an encrypt layer"
	[ "$(size_of out)" -eq $((5 * 1048576)) ]
}

@test "a flipped bit in END is refused" {
	mig-encrypt -k k < "$STREAM" > e
	n=$(( ($(size_of "$STREAM") + 1048575) / 1048576 ))
	at=$(($(size_of e) - 40))	# END: 8 + 16 totals + 16 tag
	flip_byte e $((at + 12))
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < e > out'
	output=$stderr assert_output "mig-decrypt: stdin: frame $n (offset $at): authentication failed: the frame was altered, or frames were dropped, replayed or reordered"
	assert_prefix out "$STREAM"
}

@test "reordered frames are refused at the first one out of place" {
	mig-encrypt -k k < "$STREAM" > e
	a=$(frame_offset 3); b=$(frame_offset 4); c=$(frame_offset 5)
	{ head -c "$a" e; tail -c +$((b + 1)) e | head -c $((c - b)); tail -c +$((a + 1)) e | head -c $((b - a)); tail -c +$((c + 1)) e; } > swapped
	[ "$(size_of swapped)" -eq "$(size_of e)" ]
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < swapped > out'
	output=$stderr assert_output "mig-decrypt: stdin: frame 3 (offset $a): authentication failed: the frame was altered, or frames were dropped, replayed or reordered"
	[ "$(size_of out)" -eq $((3 * 1048576)) ]
	assert_prefix out "$STREAM"
}

@test "a duplicated frame, a dropped one, and a frame replayed from another stream are refused" {
	mig-encrypt -k k < "$STREAM" > e
	a=$(frame_offset 3); b=$(frame_offset 4)
	{ head -c "$b" e; tail -c +$((a + 1)) e; } > dup
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < dup > out'
	output=$stderr assert_output "mig-decrypt: stdin: frame 4 (offset $b): authentication failed: the frame was altered, or frames were dropped, replayed or reordered"
	assert_prefix out "$STREAM"
	{ head -c "$a" e; tail -c +$((b + 1)) e; } > dropped
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < dropped > out'
	output=$stderr assert_output --partial "frame 3 (offset $a): authentication failed"
	assert_prefix out "$STREAM"
	# the same key, the same input: frame 3 of another stream in its place
	mig-encrypt -k k < "$STREAM" > other
	{ head -c "$a" e; tail -c +$((a + 1)) other | head -c $((b - a)); tail -c +$((b + 1)) e; } > spliced
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < spliced > out'
	output=$stderr assert_output --partial "frame 3 (offset $a): authentication failed"
	[ "$(size_of out)" -eq $((3 * 1048576)) ]
	assert_prefix out "$STREAM"
}

@test "a truncated layer (no END) is refused at every kind of cut; output is a prefix" {
	mig-encrypt -k k < "$STREAM" > e
	size=$(size_of e)
	for cut in 3 50 $HDR $(frame_offset 2) $(( $(frame_offset 2) + 5 )) \
		$(( $(frame_offset 7) + 4096 )) $((size - 40)) $((size - 1)); do
		head -c "$cut" e > cut
		run -1 --separate-stderr bash -c 'mig-decrypt -k k -T 4 < cut > out'
		output=$stderr assert_output --regexp "^mig-decrypt: stdin: truncated: "
		assert_prefix out "$STREAM"
	done
	head -c $((size - 40)) e > cut
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < cut > out'
	n=$(( ($(size_of "$STREAM") + 1048575) / 1048576 ))
	output=$stderr assert_output "mig-decrypt: stdin: truncated: the stream ends after frame $n (offset $((size - 40))) with no END frame"
	cmp out "$STREAM"
}

@test "data after END is refused" {
	printf 'abc' | mig-encrypt -k k > e
	printf 'X' >> e
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < e'
	output=$stderr assert_output --partial "data after the END frame at offset"
}

@test "plaintext input is never passed through" {
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < "$STREAM" > out'
	output=$stderr assert_output "mig-decrypt: stdin: input is a raw QEMU stream, not an encrypt layer: nothing to decode"
	[ ! -s out ]
	mig-checksum < "$STREAM" > ck
	run -1 --separate-stderr bash -c 'mig-decrypt -k k < ck > out'
	output=$stderr assert_output "mig-decrypt: stdin: input is a checksum layer; run mig-checksum -d first"
	[ ! -s out ]
	run -1 --separate-stderr bash -c 'printf "hello, world" | mig-decrypt -k k > out'
	output=$stderr assert_output "mig-decrypt: stdin: input is not a mig stream (it starts 68 65 6c 6c 6f 2c 20 77)"
	[ ! -s out ]
}

@test "a closed output ends the filter at once with exit 3" {
	run -3 --separate-stderr bash -c 'mig-encrypt -k k < "$STREAM" | head -c 100 > /dev/null; exit ${PIPESTATUS[0]}'
	output=$stderr assert_output "mig-encrypt: stdin: write to stdout: Broken pipe"
}

# ---- a real VM --------------------------------------------------------------------

@test "a running VM checkpointed through mig-encrypt restores through mig-decrypt, same RAM when paused" {
	local ck=$BATS_TEST_TMPDIR/ckpt key=$BATS_TEST_TMPDIR/k
	vm_start_source src "$STREAM.ram" 64
	qmp src '{"execute":"stop"}'
	run vm_migrate src "$(vm_shq "$MIG_BIN/mig-encrypt") -k $(vm_shq "$key") > $(vm_shq "$ck")"
	assert_success
	assert_output completed
	run ! grep -q pc-q35 "$ck"

	vm_start_dest dst 64 "$(vm_shq "$MIG_BIN/mig-decrypt") -k $(vm_shq "$key") < $(vm_shq "$ck")"
	run vm_wait_incoming dst 60
	assert_success
	assert_output completed
	run vm_feed_status dst 10
	assert_output 0
	vm_pmemsave src "$BATS_TEST_TMPDIR/src.mem" 64M
	vm_pmemsave dst "$BATS_TEST_TMPDIR/dst.mem" 64M
	vm_same_ram "$BATS_TEST_TMPDIR/src.mem" "$BATS_TEST_TMPDIR/dst.mem"
	vm_cleanup_all

	# running, to recipients
	mig-keygen -q --pair "$BATS_TEST_TMPDIR/id"
	vm_start_source src2 "$STREAM.ram" 64
	run vm_migrate src2 "$(vm_shq "$MIG_BIN/mig-encrypt") -r $(vm_shq "$BATS_TEST_TMPDIR/id.pub") > $(vm_shq "$ck")"
	assert_output completed
	vm_start_dest dst2 64 "$(vm_shq "$MIG_BIN/mig-decrypt") -i $(vm_shq "$BATS_TEST_TMPDIR/id") < $(vm_shq "$ck")"
	run vm_wait_incoming dst2 60
	assert_success
	assert_output completed
	run vm_status dst2
	assert_output running
}

@test "a destination fed an altered checkpoint never reports a completed migration" {
	local ck=$BATS_TEST_TMPDIR/ckpt
	mig-encrypt -k k < "$STREAM" > "$ck"
	flip_byte "$ck" $(($(size_of "$ck") / 2))
	vm_start_dest bad 64 "$(vm_shq "$MIG_BIN/mig-decrypt") -k $(vm_shq "$BATS_TEST_TMPDIR/k") < $(vm_shq "$ck")"
	run vm_wait_incoming bad 60
	assert_failure
	refute_output completed
	run vm_feed_status bad 10
	assert_output 1
	run grep -F "authentication failed" "$VM_DIR/bad.feed.err"
	assert_success
}

@test "options of one direction are refused in the other" {
	mig-keygen -q -o k2
	run -2 --separate-stderr mig-decrypt -k k2 --cipher aes256gcm
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --index 0 "mig-decrypt: --cipher is for encoding"
}

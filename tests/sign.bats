#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-2-Clause
# Signed envelopes: a writer signs what it writes (mig-keygen --sign-pair,
# mig-envelope --sign, mig-qemu --sign); a reader names the signers it
# trusts, and refuses anything else before it uses a byte of configuration.
# The attacker who rewrites frames and recomputes every XXH3 check is in
# tests/unit/test-sign.c; the signed restore into real QEMU in glue.bats.
# shellcheck disable=SC2016

setup_file() {
	load lib/common
	test_stream_setup
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || exit 1
	mig-keygen -q --sign-pair src
	mig-keygen -q --sign-pair other
	ARGV='["qemu-system-x86_64","-machine","q35","-m","64M","-name","signed-guest"]'
}

signed() { # OUT [KEY]: the test stream in an envelope signed with KEY
	mig-envelope --sign "${2:-src}" --meta "qemu.argv=$ARGV" < "$STREAM" > "$1"
}

@test "mig-keygen --sign-pair: a secret 0600 and a public .pub, never overwritten" {
	run -0 stat -c '%a' src src.pub
	assert_output $'600\n644'
	run -0 grep -c '^mig-sign-key-1:' src
	run -0 grep -c '^mig-signer-1:' src.pub
	run -2 --separate-stderr mig-keygen --sign-pair src
	output=$stderr assert_output "mig-keygen: src.pub exists: not overwriting it (use -f)"
	run -0 mig-keygen --sign-pair fresh
	assert_line --regexp '^fresh: signing key, signer [0-9a-f]{16}$'
	assert_line --regexp '^fresh.pub: signer \(public key\), signer [0-9a-f]{16}$'
}

@test "a signed envelope round-trips; its signer is named and checked" {
	signed s.env
	mig-envelope -d --signer src.pub < s.env | cmp - "$STREAM"
	run -0 mig-info --signer src.pub s.env
	assert_line --regexp '^layer 1: envelope \(hash=xxh3, signed by [0-9a-f]{16}, created 20[0-9-]+T[0-9:]+Z\)$'
	assert_line --regexp '^  signature: good, signer [0-9a-f]{16} trusted \(--signer\)$'
	run -0 mig-info s.env
	assert_line --regexp 'not checked against a trusted key \(give --signer\)$'
	run -0 mig-info --json --signer src.pub s.env
	[ "$(jq -r '.layers[0].signature.trusted' <<<"$output")" = true ]
}

@test "--from-stream needs a signer (or --trust-unsigned): refused before reading" {
	run -2 --separate-stderr mig-recv -n --from-stream < /dev/null
	output=$stderr assert_output --partial "mig-recv: --from-stream starts what the stream describes: name the signer it must come from with --signer PUB (or give --trust-unsigned)"
	run -2 --separate-stderr mig-qemu restore --from-stream /dev/null
	output=$stderr assert_output --partial "name the signer it must come from with --signer PUB"
}

@test "an unsigned stream is refused where a signer is required; nothing is printed or run" {
	mig-envelope --meta "qemu.argv=$ARGV" < "$STREAM" > u.env
	run -1 --separate-stderr mig-recv -n --from-stream --signer src.pub < u.env
	assert_output ""
	output=$stderr assert_output "mig-recv: stdin: layer header: the envelope is not signed, and a trusted signer is required (--signer)"
	# with --trust-unsigned, the same stream is read
	run -0 mig-recv -n --from-stream --trust-unsigned < u.env
	assert_output --partial "signed-guest"
}

@test "a stream signed by another key is refused at its header" {
	signed o.env other
	run -1 --separate-stderr mig-recv -n --from-stream --signer src.pub < o.env
	assert_output ""
	output=$stderr assert_output --regexp '^mig-recv: stdin: layer header: the envelope is signed by signer [0-9a-f]{16}, which is not a trusted signer \(--signer\)$'
	run -1 --separate-stderr mig-info --signer src.pub o.env
	output=$stderr assert_output --partial "which is not a trusted signer"
}

@test "a raw stream, without any envelope, is unsigned" {
	run -1 --separate-stderr mig-recv -n --signer src.pub qemu-system-x86_64 -incoming - < "$STREAM"
	output=$stderr assert_output "mig-recv: stdin: the stream is not signed (it has no envelope), and a trusted signer is required (--signer)"
	# mig-info --signer too, raw or inside a complete checksum layer
	run -1 --separate-stderr mig-info -q --signer src.pub "$STREAM"
	output=$stderr assert_output "mig-info: $STREAM: the stream is not signed (it has no envelope), and a trusted signer is required (--signer)"
	mig-checksum < "$STREAM" > s.sum
	run -1 --separate-stderr mig-info -q --signer src.pub s.sum
	output=$stderr assert_output "mig-info: s.sum: the stream is not signed (it has no envelope), and a trusted signer is required (--signer)"
	run -0 mig-info -q s.sum
}

@test "a signature stripped (the envelope re-made unsigned) is refused" {
	signed s.env
	mig-envelope -d < s.env | mig-envelope --meta "qemu.argv=$ARGV" > stripped.env
	run -1 --separate-stderr mig-recv -n --from-stream --signer src.pub < stripped.env
	output=$stderr assert_output --partial "the envelope is not signed"
	# and signed again by someone else
	mig-envelope -d < s.env | mig-envelope --sign other --meta "qemu.argv=$ARGV" > resigned.env
	run -1 --separate-stderr mig-recv -n --from-stream --signer src.pub < resigned.env
	output=$stderr assert_output --partial "which is not a trusted signer"
}

@test "a signed stream cut before END: refused, the output a prefix" {
	signed s.env
	head -c $(( $(stat -c %s s.env) - 200 )) s.env > cut.env
	run -1 --separate-stderr bash -c 'mig-envelope -d --signer src.pub < cut.env > out'
	output=$stderr assert_output --partial "truncated"
	assert_prefix out "$STREAM"
	run -1 mig-info --signer src.pub cut.env
}

@test "a changed byte anywhere in a signed stream is refused" {
	signed s.env
	local at
	for at in 40 150 $(( $(stat -c %s s.env) / 2 )) $(( $(stat -c %s s.env) - 40 )); do
		cp s.env bad.env
		flip_byte bad.env "$at"
		run -1 --separate-stderr bash -c 'mig-envelope -d --signer src.pub < bad.env > out'
		assert_prefix out "$STREAM"
	done
}

@test "--not-before: an older signed stream is refused as a rollback" {
	signed s.env
	local now
	now=$(date +%s)
	run -1 --separate-stderr mig-recv -n --from-stream --signer src.pub --not-before "@$((now + 3600))" < s.env
	assert_output ""
	output=$stderr assert_output --regexp '^mig-recv: stdin: the stream was signed at 20[0-9-]+T[0-9:]+Z, before --not-before 20[0-9-]+T[0-9:]+Z: refusing an older stream$'
	run -0 mig-recv -n --from-stream --signer src.pub --not-before "$(date -u -d @$((now - 3600)) +%Y-%m-%dT%H:%M:%SZ)" < s.env
	assert_output --partial "signed-guest"
	run -2 --separate-stderr mig-recv -n --from-stream --trust-unsigned --not-before "@$now" < s.env
	output=$stderr assert_output --partial "--not-before needs --signer"
	run -2 --separate-stderr mig-recv -n --signer src.pub --not-before yesterday qemu -incoming - < s.env
	output=$stderr assert_output --partial "--not-before 'yesterday': not @SECONDS or YYYY-MM-DDTHH:MM:SSZ"
}

@test "--signer takes a signer's .pub, not the secret half" {
	run -2 --separate-stderr mig-recv -n --from-stream --signer src < /dev/null
	output=$stderr assert_output "mig-recv: --signer: src is a signing key (secret), not a signer (public key) (give its public half, NAME.pub)"
	chmod 644 src
	run -2 --separate-stderr mig-envelope --sign src < /dev/null
	output=$stderr assert_output --partial "permissions 0644 are too open"
}

# The attack of issue 12: a stream made from nothing but the recipient's
# .pub (or by any holder of a shared -k key) decrypts; its configuration
# names a program of the destination host. It must not run.
forged_case() { # how: recipient | shared
	printf '#!/bin/sh\ntouch "%s/ran"\n' "$PWD" > evil
	chmod +x evil
	local argv="[\"$PWD/evil\",\"-m\",\"64M\"]" enc dec
	if [ "$1" = recipient ]; then
		mig-keygen -q --pair alice
		enc="mig-encrypt -r alice.pub" dec="mig-decrypt -i alice"
	else
		mig-keygen -q -o shared.key
		enc="mig-encrypt -k shared.key" dec="mig-decrypt -k shared.key"
	fi
	mig-envelope --meta "qemu.argv=$argv" < "$STREAM" | $enc > forged
	# it decrypts: encryption does not say who wrote it
	$dec < forged | mig-envelope -d | cmp - "$STREAM"
	run -1 --separate-stderr bash -c "$dec < forged | mig-recv --from-stream --signer src.pub"
	output=$stderr assert_output --partial "mig-recv: stdin: layer header: the envelope is not signed, and a trusted signer is required (--signer)"
	run -1 --separate-stderr bash -c "mig-qemu restore --from-stream --signer src.pub forged '$dec'"
	output=$stderr assert_output --partial "the envelope is not signed"
	run -2 --separate-stderr bash -c "$dec < forged | mig-recv --from-stream"
	[ ! -e ran ] || fail "the stream's program ran"
}

@test "a stream forged from a recipient's .pub runs nothing on the destination" {
	forged_case recipient
}

@test "a stream forged by a holder of the shared key runs nothing on the destination" {
	forged_case shared
}

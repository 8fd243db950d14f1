/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * aead.c - the throughput of the AEADs mig-encrypt could use, libsodium's
 * and OpenSSL's (which mig-encrypt seals its frames with), on one core, sealing 1 MiB frames (the default frame size) with a
 * per-frame nonce, median of runs; and Argon2id's cost. Built and run by
 * bench/encrypt; prints "NAME MB/s" lines.
 */
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timing.h"

#define FRAME (1u << 20)
#define FRAMES 256 /* 256 MiB a run */
#define RUNS 7

static uint8_t key[32], nonce[24], ad[16], tag[16];

static void a_aes(uint8_t *p, size_t n, unsigned long long i)
{
	memcpy(nonce, &i, 8);
	crypto_aead_aes256gcm_encrypt_detached(p, tag, NULL, p, n, ad, sizeof ad,
					       NULL, nonce, key);
}
static void a_chacha(uint8_t *p, size_t n, unsigned long long i)
{
	memcpy(nonce, &i, 8);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(p, tag, NULL, p, n, ad,
							   sizeof ad, NULL, nonce, key);
}
static void a_xchacha(uint8_t *p, size_t n, unsigned long long i)
{
	memcpy(nonce, &i, 8);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(p, tag, NULL, p, n, ad,
							    sizeof ad, NULL, nonce, key);
}
static EVP_CIPHER_CTX *evp;
static void a_evp(const EVP_CIPHER *c, uint8_t *p, size_t n, unsigned long long i)
{
	int len;

	memcpy(nonce, &i, 8);
	if (EVP_EncryptInit_ex(evp, c, NULL, key, nonce) != 1 ||
	    EVP_EncryptUpdate(evp, NULL, &len, ad, sizeof ad) != 1 ||
	    EVP_EncryptUpdate(evp, p, &len, p, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(evp, p + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_AEAD_GET_TAG, sizeof tag, tag) != 1)
		abort();
}
static void a_evp_aes(uint8_t *p, size_t n, unsigned long long i)
{
	a_evp(EVP_aes_256_gcm(), p, n, i);
}
static void a_evp_chacha(uint8_t *p, size_t n, unsigned long long i)
{
	a_evp(EVP_chacha20_poly1305(), p, n, i);
}
static crypto_secretstream_xchacha20poly1305_state ss;
static uint8_t *ssout;
static void a_secretstream(uint8_t *p, size_t n, unsigned long long i)
{
	(void)i;
	crypto_secretstream_xchacha20poly1305_push(&ss, ssout, NULL, p, n, NULL, 0, 0);
}

int main(void)
{
	static const struct { const char *name; void (*fn)(uint8_t *, size_t, unsigned long long); int aes; } as[] = {
		{ "aes256gcm", a_aes, 1 },
		{ "chacha20poly1305-ietf", a_chacha, 0 },
		{ "xchacha20poly1305-ietf", a_xchacha, 0 },
		{ "secretstream-xchacha20poly1305", a_secretstream, 0 },
		{ "openssl-aes-256-gcm", a_evp_aes, 1 },
		{ "openssl-chacha20-poly1305", a_evp_chacha, 0 },
	};
	uint8_t *buf = malloc(FRAME);
	uint8_t hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];

	ssout = malloc(FRAME + crypto_secretstream_xchacha20poly1305_ABYTES);
	evp = EVP_CIPHER_CTX_new();
	if (!buf || !ssout || !evp || sodium_init() < 0)
		return 1;
	randombytes_buf(buf, FRAME);
	randombytes_buf(key, sizeof key);
	crypto_secretstream_xchacha20poly1305_init_push(&ss, hdr, key);
	for (size_t a = 0; a < sizeof as / sizeof as[0]; a++) {
		double t[RUNS];
		if (as[a].aes && !crypto_aead_aes256gcm_is_available()) {
			printf("%-32s unavailable\n", as[a].name);
			continue;
		}
		for (int r = 0; r < RUNS; r++) {
			double t0 = bench_now();
			for (unsigned long long i = 0; i < FRAMES; i++)
				as[a].fn(buf, FRAME, i);
			t[r] = bench_now() - t0;
		}
		printf("%-32s %6.0f MB/s\n", as[a].name,
		       (double)FRAMES * FRAME / bench_median(t, RUNS) / 1e6);
	}
	static const struct { const char *name; unsigned long long ops; size_t mem; } costs[] = {
		{ "argon2id-interactive", crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE },
		{ "argon2id-moderate", crypto_pwhash_OPSLIMIT_MODERATE, crypto_pwhash_MEMLIMIT_MODERATE },
	};
	for (size_t c = 0; c < sizeof costs / sizeof costs[0]; c++) {
		uint8_t out[32], salt[crypto_pwhash_SALTBYTES] = { 0 };
		double t0 = bench_now();
		if (crypto_pwhash(out, sizeof out, "passphrase", 10, salt, costs[c].ops,
				  costs[c].mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
			return 1;
		printf("%-32s %6.3f s (ops %llu, mem %zu MiB)\n", costs[c].name,
		       bench_now() - t0, costs[c].ops, costs[c].mem >> 20);
	}
	return 0;
}

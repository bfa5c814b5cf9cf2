/*
 * engine/seal.c — replica cryptography on libsodium (see seal.h for the
 * scheme).  Every function is a thin, checked call of one libsodium
 * primitive; the only decisions made here are the labels, the associated
 * data and the default Argon2id cost.
 */
#include "seal.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#define KDF_OPS 3
#define KDF_MEM (32u << 20)
#define WRAP_AD "snapfs-replica-key"
#define WRAP_AD_MAX (sizeof WRAP_AD + sizeof ((snap_kdf *)0)->context)
#define CTX_OBJECT "snapfsob"
#define CTX_PAGEID "snapfspg"

_Static_assert(SNAP_SEAL_NONCE == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	       "nonce size");
_Static_assert(SNAP_SEAL_TAG == crypto_aead_xchacha20poly1305_ietf_ABYTES,
	       "tag size");
_Static_assert(SNAP_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
	       "key size");
_Static_assert(SNAP_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt size");
_Static_assert(sizeof(CTX_OBJECT) - 1 == crypto_kdf_CONTEXTBYTES, "context");

int snap_seal_init(snap_err *err)
{
	if (sodium_init() < 0)
		return snap_err_set(err, -EIO,
				    "libsodium could not initialise (no "
				    "random source?)");
	return 0;
}

void snap_kdf_new(snap_kdf *kdf)
{
	memset(kdf, 0, sizeof *kdf);
	randombytes_buf(kdf->salt, sizeof kdf->salt);
	kdf->opslimit = KDF_OPS;
	kdf->memlimit = KDF_MEM;
}

void snap_random(void *buf, size_t n)
{
	randombytes_buf(buf, n);
}

void snap_key_new(uint8_t master[SNAP_KEY_BYTES])
{
	crypto_aead_xchacha20poly1305_ietf_keygen(master);
}

/* The associated data of a wrapped key: the label and kdf->context. */
static size_t wrap_ad(const snap_kdf *kdf, char *out)
{
	size_t n = strnlen(kdf->context, sizeof kdf->context);
	memcpy(out, WRAP_AD, sizeof WRAP_AD - 1);
	memcpy(out + sizeof WRAP_AD - 1, kdf->context, n);
	return sizeof WRAP_AD - 1 + n;
}

/* A key-encryption key and the associated data it wraps a key with. */
typedef struct kek_ad {
	uint8_t kek[SNAP_KEY_BYTES];
	char ad[WRAP_AD_MAX];
	size_t adlen;
} kek_ad;

/* The key-encryption key of a passphrase under kdf's parameters, and the
 * associated data its wrapped key is bound to. */
static int derive_kek(const snap_kdf *kdf, const char *pass, size_t passlen,
		      kek_ad *k, snap_err *err)
{
	k->adlen = wrap_ad(kdf, k->ad);
	/* Bounded far below libsodium's own limits: the parameters come
	 * from the replica, which a hostile provider may have rewritten to
	 * make every reader spin for hours or take gigabytes. */
	if (kdf->opslimit < crypto_pwhash_OPSLIMIT_MIN ||
	    kdf->opslimit > SNAP_KDF_OPS_MAX ||
	    kdf->memlimit < crypto_pwhash_MEMLIMIT_MIN ||
	    kdf->memlimit > SNAP_KDF_MEM_MAX ||
	    passlen > crypto_pwhash_PASSWD_MAX)
		return snap_err_set(err, -EINVAL,
				    "key derivation parameters out of range "
				    "(ops %llu, memory %llu bytes)",
				    (unsigned long long)kdf->opslimit,
				    (unsigned long long)kdf->memlimit);
	if (crypto_pwhash(k->kek, SNAP_KEY_BYTES, pass, passlen, kdf->salt,
			  kdf->opslimit, (size_t)kdf->memlimit,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return snap_err_set(err, -ENOMEM,
				    "Argon2id could not get %llu bytes of "
				    "memory for the passphrase",
				    (unsigned long long)kdf->memlimit);
	return 0;
}

int snap_key_wrap(const snap_kdf *kdf, const char *pass, size_t passlen,
		  const uint8_t master[SNAP_KEY_BYTES],
		  uint8_t out[SNAP_WRAPPED_BYTES], snap_err *err)
{
	kek_ad k;
	int rc = derive_kek(kdf, pass, passlen, &k, err);
	if (rc < 0)
		return rc;
	randombytes_buf(out, SNAP_SEAL_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		out + SNAP_SEAL_NONCE, NULL, master, SNAP_KEY_BYTES,
		(const uint8_t *)k.ad, k.adlen, NULL, out, k.kek);
	sodium_memzero(&k, sizeof k);
	return 0;
}

int snap_key_unwrap(const snap_kdf *kdf, const char *pass, size_t passlen,
		    const uint8_t wrapped[SNAP_WRAPPED_BYTES],
		    uint8_t master[SNAP_KEY_BYTES], snap_err *err)
{
	kek_ad k;
	int rc = derive_kek(kdf, pass, passlen, &k, err);
	if (rc < 0)
		return rc;
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
		master, NULL, NULL, wrapped + SNAP_SEAL_NONCE,
		SNAP_WRAPPED_BYTES - SNAP_SEAL_NONCE,
		(const uint8_t *)k.ad, k.adlen, wrapped, k.kek);
	sodium_memzero(&k, sizeof k);
	if (rc != 0) {
		sodium_memzero(master, SNAP_KEY_BYTES);
		return snap_err_set(err, -EACCES,
				    "wrong passphrase (or a damaged config): "
				    "the replica's key does not open with it");
	}
	return 0;
}

void snap_keys_derive(const uint8_t master[SNAP_KEY_BYTES], snap_keys *k)
{
	crypto_kdf_derive_from_key(k->object, sizeof k->object, 1, CTX_OBJECT,
				   master);
	crypto_kdf_derive_from_key(k->pageid, sizeof k->pageid, 2, CTX_PAGEID,
				   master);
}

void snap_keys_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

size_t snap_seal(const snap_keys *k, const char *name, const void *in,
		 size_t len, uint8_t *out)
{
	unsigned long long clen = 0;
	randombytes_buf(out, SNAP_SEAL_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		out + SNAP_SEAL_NONCE, &clen, in, len, (const uint8_t *)name,
		strlen(name), NULL, out, k->object);
	return SNAP_SEAL_NONCE + (size_t)clen;
}

int snap_unseal(const snap_keys *k, const char *name, const uint8_t *in,
		size_t len, uint8_t *out, size_t *outlen)
{
	unsigned long long mlen = 0;
	if (len < SNAP_SEAL_OVERHEAD)
		return -EBADMSG;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    out, &mlen, NULL, in + SNAP_SEAL_NONCE,
		    len - SNAP_SEAL_NONCE, (const uint8_t *)name, strlen(name),
		    in, k->object) != 0)
		return -EBADMSG;
	*outlen = (size_t)mlen;
	return 0;
}

void snap_pageid(const snap_keys *k, const void *page, size_t len,
		 uint8_t out[32])
{
	crypto_generichash(out, 32, page, len, k->pageid, sizeof k->pageid);
}

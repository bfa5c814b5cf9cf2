/*
 * engine/seal.h — the cryptography of an encrypted replica: a passphrase
 * wraps a random master key, the master key gives the keys that seal
 * objects and name pages, and every object is sealed with an AEAD bound to
 * its name.  All of it is libsodium; nothing here is home-made.
 *
 *   passphrase --Argon2id(salt, ops, mem)--> key-encryption key
 *   master key (32 random bytes), kept only wrapped:
 *       XChaCha20-Poly1305(kek, random nonce, master, ad = "snapfs-replica-key")
 *   master --crypto_kdf(id 1, "snapfsob")--> object key
 *   master --crypto_kdf(id 2, "snapfspg")--> page-identity key
 *   object = nonce(24) || XChaCha20-Poly1305(object key, nonce, plain,
 *                                            ad = the object's name)
 *   page identity = BLAKE2b-256 keyed with the page-identity key
 *
 * Binding the name as associated data means a provider cannot swap two
 * objects (a pack served under another pack's name fails to open).  Keyed
 * page identities mean the provider cannot confirm that the replica holds a
 * page it can guess.  Changing the passphrase rewraps the master key only:
 * no object is rewritten.
 */
#ifndef ENGINE_SEAL_H
#define ENGINE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SNAP_KEY_BYTES 32
#define SNAP_SALT_BYTES 16
#define SNAP_SEAL_NONCE 24
#define SNAP_SEAL_TAG 16
/* Bytes a sealed object has beyond its plain text. */
#define SNAP_SEAL_OVERHEAD (SNAP_SEAL_NONCE + SNAP_SEAL_TAG)
/* A wrapped master key: nonce, sealed key, tag. */
#define SNAP_WRAPPED_BYTES (SNAP_KEY_BYTES + SNAP_SEAL_OVERHEAD)

/* The most a replica may ask of a reader's key derivation. */
#define SNAP_KDF_OPS_MAX 16
#define SNAP_KDF_MEM_MAX (256ull << 20)

/* Argon2id parameters, recorded in the replica so a future snapfs can
 * derive the same key.  Defaults: 3 passes over 32 MiB (interactive use,
 * within the 64 MB a snapctl command may use). */
typedef struct snap_kdf {
	uint8_t salt[SNAP_SALT_BYTES];
	uint64_t opslimit;
	uint64_t memlimit;
	char context[64];  /* bound to the wrapped key as associated data
			      (the replica's id): a key wrapped for one
			      replica does not open as another's */
} snap_kdf;

/* The working keys of an opened replica; wipe with snap_keys_wipe(). */
typedef struct snap_keys {
	uint8_t object[SNAP_KEY_BYTES];
	uint8_t pageid[SNAP_KEY_BYTES];
} snap_keys;

/* Initialise libsodium (idempotent, thread-safe); -EIO when it cannot. */
int snap_seal_init(snap_err *err);

/* Default Argon2id parameters with a fresh random salt. */
void snap_kdf_new(snap_kdf *kdf);

/* n bytes from the system's random source. */
void snap_random(void *buf, size_t n);

/* A fresh random master key. */
void snap_key_new(uint8_t master[SNAP_KEY_BYTES]);

/* Wrap master under the passphrase: out = nonce || sealed key.  0, or
 * -ENOMEM when Argon2id could not get its memory, -EINVAL for parameters
 * outside [libsodium's minimum, SNAP_KDF_*_MAX]. */
int snap_key_wrap(const snap_kdf *kdf, const char *pass, size_t passlen,
		  const uint8_t master[SNAP_KEY_BYTES],
		  uint8_t out[SNAP_WRAPPED_BYTES], snap_err *err);

/* Unwrap a master key.  0; -EACCES "wrong passphrase (or a damaged
 * config)" when the wrapped key
 * does not open (a wrong passphrase and a tampered key are the same to
 * an AEAD); -ENOMEM/-EINVAL as snap_key_wrap. */
int snap_key_unwrap(const snap_kdf *kdf, const char *pass, size_t passlen,
		    const uint8_t wrapped[SNAP_WRAPPED_BYTES],
		    uint8_t master[SNAP_KEY_BYTES], snap_err *err);

/* The object and page-identity keys of a master key. */
void snap_keys_derive(const uint8_t master[SNAP_KEY_BYTES], snap_keys *k);

/* Zero keys (also master keys: any buffer) so they do not linger. */
void snap_keys_wipe(void *p, size_t len);

/* Seal len bytes for the object called name into out, which must hold
 * len + SNAP_SEAL_OVERHEAD bytes; returns that length. */
size_t snap_seal(const snap_keys *k, const char *name, const void *in,
		 size_t len, uint8_t *out);

/* Open a sealed object of len bytes called name into out (room for len -
 * SNAP_SEAL_OVERHEAD bytes); *outlen gets the plain length.  0, or
 * -EBADMSG when it is too short, was altered, or belongs to another name
 * or another key. */
int snap_unseal(const snap_keys *k, const char *name, const uint8_t *in,
		size_t len, uint8_t *out, size_t *outlen);

/* The replica identity of a page: BLAKE2b-256 keyed with k->pageid. */
void snap_pageid(const snap_keys *k, const void *page, size_t len,
		 uint8_t out[32]);

#endif /* ENGINE_SEAL_H */

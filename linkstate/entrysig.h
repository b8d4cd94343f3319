/* Signed entries (DESIGN §5.2). Every entry a master issues is signed by it
 * with Ed25519 over the entry's content (table.h, mm_entry_content: the
 * entry without its signature and signer) and carries the master's
 * certificate. Every receiver -- a member on 691, a master, a bridgehead
 * over X-LINK2STATE -- checks, once the entry's version is newer than what
 * it holds (the caller's check: cheap, first):
 *   1. the certificate chains to the organization's CA and is not on its
 *      CRL (its notAfter is not checked: a master re-signs when it starts
 *      again with a new certificate; and the result must not depend on a
 *      clock, for the simulator's replay);
 *   2. it names a master (mailmesh:master:NAME);
 *   3. NAME is an mmMaster of the entry's group in the receiver's own
 *      directory;
 *   4. the signature holds over the content.
 * An entry that fails is dropped (and logged by the caller). The work of 1
 * and 4 is kept by signature, so an entry that floods back costs a lookup.
 *
 * Pure: libcrypto only, no clock, no file; the caller hands over the CA's
 * and the CRL's PEM text. */
#ifndef MM_ENTRYSIG_H
#define MM_ENTRYSIG_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certid.h"
#include "table.h"

struct mm_trust;

/* The organization's CA and its CRL (crl_pem may be NULL: none). NULL with
 * the reason in err when either does not load. */
struct mm_trust *mm_trust_new(const char *ca_pem, size_t ca_len, const char *crl_pem,
                              size_t crl_len, char *err, size_t errlen);
void mm_trust_free(struct mm_trust *t);

/* Sign e: its signature (64 bytes) with key, an Ed25519 private key, and
 * cert (DER) as its signer. False when the key cannot sign (not Ed25519). */
bool mm_entry_sign(mm_entry *e, EVP_PKEY *key, const uint8_t *cert, size_t certlen);

enum mm_entry_check {
	MM_ENTRY_OK,
	MM_ENTRY_UNSIGNED,      /* no signature or no signer */
	MM_ENTRY_BAD_CERT,      /* does not decode, or does not chain to the CA */
	MM_ENTRY_REVOKED,       /* on the CRL */
	MM_ENTRY_NOT_MASTER,    /* names no master */
	MM_ENTRY_NOT_CANDIDATE, /* a master, not of this group in our directory */
	MM_ENTRY_BAD_SIGNATURE, /* not Ed25519, or not over this content */
};

const char *mm_entry_check_name(enum mm_entry_check c);

/* Checks 1 to 4 above for e. dir_entry is the receiver's directory entry
 * of e's group (its candidates); NULL: the group is not in the directory,
 * which fails check 3. The signer's name (when the certificate names a
 * master) goes to signer, MM_CERT_NAME_MAX + 1 bytes, "" otherwise. */
enum mm_entry_check mm_entry_check(struct mm_trust *t, const mm_entry *e, const mm_entry *dir_entry,
                                   char *signer);

/* The name the signer certificate of e gives, checking nothing (meshctl's
 * signed_by); false when it has none. name: MM_CERT_NAME_MAX + 1 bytes. */
bool mm_entry_signer_name(const mm_entry *e, char *name);

#endif

/* A deterministic organization PKI, built in process (no openssl tool, no
 * file, no clock): for the fuzz targets of signed entries and for the
 * simulator's model mode (DESIGN §8: "it derives its CA, keys and
 * certificates from the seed").
 *
 * Every key is Ed25519, its 32 private octets SHA-256 of the seed and the
 * certificate's identity, so the same seed gives the same keys; the
 * certificates have fixed validity dates and serials (a hash of the
 * identity) and Ed25519 signatures are deterministic (RFC 8032), so the
 * same seed gives the same DER, byte for byte, whatever the order of
 * issue. What entrysig.c verifies with X509_V_FLAG_X509_STRICT is there:
 * the CA has basicConstraints critical CA:TRUE, keyUsage keyCertSign and
 * cRLSign, a subjectKeyIdentifier; a leaf has basicConstraints CA:FALSE,
 * keyUsage digitalSignature, an authorityKeyIdentifier and the identity
 * URI:mailmesh:KIND:NAME (linkstate/certid.h), as `meshctl pki issue`
 * makes them. The CRL is v2 and lists the certificates revoked so far.
 *
 * Not for production: anyone who knows the seed has every key. */
#ifndef MM_FUZZ_PKI_H
#define MM_FUZZ_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certid.h"
#include "entrysig.h"

#define FPKI_SEED_LEN 32

struct fpki_cert {
	enum mm_cert_kind kind;
	char name[MM_CERT_NAME_MAX + 1];
	EVP_PKEY *key; /* Ed25519, private */
	X509 *x509;
	uint8_t *der; /* what an entry carries as its signer */
	size_t len;
	bool revoked;
};

struct fpki {
	uint8_t seed[FPKI_SEED_LEN];
	char org[64]; /* O= of every subject */
	EVP_PKEY *ca_key;
	X509 *ca;
	char *ca_pem; /* ca.pem's text */
	size_t ca_len;
	char *crl_pem; /* crl.pem's text: every revocation so far */
	size_t crl_len;
	struct fpki_cert **certs;
	size_t n;
};

/* The CA of org ("/O=org/CN=org mailmesh CA"), from seed; and an empty
 * CRL. Two seeds give two CAs that trust nothing of each other. */
void fpki_init(struct fpki *p, const uint8_t seed[FPKI_SEED_LEN], const char *org);
void fpki_free(struct fpki *p);

/* A certificate the CA issues to KIND:name (a name mm_cert_name_ok
 * accepts; aborts otherwise, or when it is issued twice). */
const struct fpki_cert *fpki_issue(struct fpki *p, enum mm_cert_kind kind, const char *name);
/* Revoke c (one of p's): the CRL is made again. */
void fpki_revoke(struct fpki *p, const struct fpki_cert *c);
/* p's certificate of KIND:name, or NULL. */
const struct fpki_cert *fpki_find(const struct fpki *p, enum mm_cert_kind kind, const char *name);

/* What a receiver trusts: the CA, and the CRL when crl. Aborts when
 * entrysig.c refuses either (a bug of this file). */
struct mm_trust *fpki_trust(const struct fpki *p, bool crl);

/* Sign e with c (entrysig.h's mm_entry_sign): its key and its DER. */
void fpki_sign(const struct fpki_cert *c, mm_entry *e);

#endif

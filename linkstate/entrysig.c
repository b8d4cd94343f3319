#include "entrysig.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "strmap.h"

/* What checks 1, 2 and 4 found for one (signature, signer, content): a
 * flood brings the same entry back from every side. */
struct verdict {
	char key[65]; /* the cache's key (the map points here) */
	enum mm_entry_check check;
	char signer[MM_CERT_NAME_MAX + 1];
};

#define CACHE_MAX 4096 /* verdicts kept; then the cache starts afresh */

/* What checks 1 and 2 found for one signer certificate: every entry a
 * master issues carries the same one, and the chain (an ECDSA or Ed25519
 * verification per link, the CRL's lookup) costs several times the entry's
 * own signature. A new CRL makes a new trust, and so a new cache. */
struct signer {
	char key[65]; /* SHA-256 of the DER (the map points here) */
	enum mm_entry_check check;
	char name[MM_CERT_NAME_MAX + 1];
	X509 *x; /* its key verifies the entries */
};

#define SIGNERS_MAX 256

struct mm_trust {
	X509_STORE *store;
	bool crl;
	struct mm_strmap cache;   /* hex of the key → index in verdicts */
	struct verdict *verdicts; /* CACHE_MAX, made at the first check */
	size_t n;
	struct mm_strmap by_cert; /* hex of the DER's digest → index in signers */
	struct signer *signers;   /* SIGNERS_MAX, made at the first check */
	size_t nsigners;
};

static void err_text(char *err, size_t errlen, const char *what)
{
	char buf[200];
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

struct mm_trust *mm_trust_new(const char *ca_pem, size_t ca_len, const char *crl_pem,
                              size_t crl_len, char *err, size_t errlen)
{
	struct mm_trust *t = mm_xcalloc(1, sizeof(*t));
	t->store = X509_STORE_new();
	BIO *b = BIO_new_mem_buf(ca_pem, (int)ca_len);
	X509 *ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (t->store == NULL || ca == NULL || !X509_STORE_add_cert(t->store, ca)) {
		err_text(err, errlen, "the CA certificate");
		X509_free(ca);
		mm_trust_free(t);
		return NULL;
	}
	X509_free(ca);
	if (crl_pem != NULL) {
		b = BIO_new_mem_buf(crl_pem, (int)crl_len);
		X509_CRL *crl = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		if (crl == NULL || !X509_STORE_add_crl(t->store, crl)) {
			err_text(err, errlen, "the CRL");
			X509_CRL_free(crl);
			mm_trust_free(t);
			return NULL;
		}
		X509_CRL_free(crl);
		t->crl = true;
	}
	return t;
}

void mm_trust_free(struct mm_trust *t)
{
	if (t == NULL)
		return;
	X509_STORE_free(t->store);
	mm_strmap_free(&t->cache);
	free(t->verdicts);
	for (size_t i = 0; i < t->nsigners; i++)
		X509_free(t->signers[i].x);
	mm_strmap_free(&t->by_cert);
	free(t->signers);
	free(t);
}

bool mm_entry_sign(mm_entry *e, EVP_PKEY *key, const uint8_t *cert, size_t certlen)
{
	if (key == NULL || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519)
		return false;
	size_t len;
	uint8_t *content = mm_entry_content(e, &len);
	uint8_t sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	/* Ed25519 takes no digest: it hashes the message itself (RFC 8032),
	 * deterministically, so a virtual-time run replays byte for byte */
	bool ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	          EVP_DigestSign(ctx, sig, &siglen, content, len) == 1 && siglen == sizeof(sig);
	EVP_MD_CTX_free(ctx);
	free(content);
	if (!ok)
		return false;
	free(e->signature.data);
	free(e->signer.data);
	e->signature.data = mm_xmalloc(siglen);
	memcpy(e->signature.data, sig, siglen);
	e->signature.len = siglen;
	e->signer.data = mm_xmalloc(certlen ? certlen : 1);
	memcpy(e->signer.data, cert, certlen);
	e->signer.len = certlen;
	return true;
}

const char *mm_entry_check_name(enum mm_entry_check c)
{
	switch (c) {
	case MM_ENTRY_OK: return "signed by a master of the group";
	case MM_ENTRY_UNSIGNED: return "not signed";
	case MM_ENTRY_BAD_CERT: return "its signer's certificate is not the organization's";
	case MM_ENTRY_REVOKED: return "its signer's certificate is revoked";
	case MM_ENTRY_NOT_MASTER: return "its signer's certificate names no master";
	case MM_ENTRY_NOT_CANDIDATE: return "its signer is no master candidate of the group";
	case MM_ENTRY_BAD_SIGNATURE: return "its signature does not hold";
	}
	return "?";
}

static X509 *signer_cert(const mm_entry *e)
{
	const unsigned char *p = e->signer.data;
	if (p == NULL || e->signer.len == 0 || e->signer.len > 65536)
		return NULL;
	X509 *x = d2i_X509(NULL, &p, (long)e->signer.len);
	/* the certificate alone, no bytes after it */
	if (x && p != e->signer.data + e->signer.len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

bool mm_entry_signer_name(const mm_entry *e, char *name)
{
	name[0] = '\0';
	X509 *x = signer_cert(e);
	enum mm_cert_kind kind;
	bool ok = x && mm_cert_identity(x, name, MM_CERT_NAME_MAX + 1, &kind);
	X509_free(x);
	return ok;
}

static void sha256_hex(const uint8_t *p, size_t len, char hex[65])
{
	uint8_t d[MM_DIGEST_LEN];
	unsigned int n = 0;
	EVP_Digest(p, len, d, &n, EVP_sha256(), NULL);
	mm_digest_hex(d, hex);
}

/* Checks 1 and 2 for e's signer certificate, once per certificate: the
 * signer, its X509 NULL when it does not decode. */
static const struct signer *signer_of(struct mm_trust *t, const mm_entry *e)
{
	char key[65];
	sha256_hex(e->signer.data, e->signer.len, key);
	uint32_t i;
	if (mm_strmap_get(&t->by_cert, key, &i))
		return &t->signers[i];
	struct signer v = {.check = MM_ENTRY_BAD_CERT, .x = signer_cert(e)};
	X509_STORE_CTX *ctx = v.x ? X509_STORE_CTX_new() : NULL;
	if (ctx && X509_STORE_CTX_init(ctx, t->store, v.x, NULL) == 1) {
		unsigned long flags = X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_X509_STRICT;
		if (t->crl)
			flags |= X509_V_FLAG_CRL_CHECK;
		X509_STORE_CTX_set_flags(ctx, flags);
		if (X509_verify_cert(ctx) == 1)
			v.check = MM_ENTRY_OK;
		else if (X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_REVOKED)
			v.check = MM_ENTRY_REVOKED;
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	enum mm_cert_kind kind;
	if (v.check == MM_ENTRY_OK &&
	    (!mm_cert_identity(v.x, v.name, sizeof(v.name), &kind) || kind != MM_CERT_MASTER)) {
		v.check = MM_ENTRY_NOT_MASTER;
		v.name[0] = '\0';
	}
	if (t->signers == NULL)
		t->signers = mm_xcalloc(SIGNERS_MAX, sizeof(*t->signers));
	if (t->nsigners >= SIGNERS_MAX) {
		for (size_t k = 0; k < t->nsigners; k++)
			X509_free(t->signers[k].x);
		mm_strmap_clear(&t->by_cert);
		t->nsigners = 0;
	}
	memcpy(v.key, key, sizeof(v.key));
	t->signers[t->nsigners] = v;
	mm_strmap_put(&t->by_cert, t->signers[t->nsigners].key, (uint32_t)t->nsigners);
	return &t->signers[t->nsigners++];
}

/* Checks 1, 2 and 4: chain and CRL, kind, signature. */
static struct verdict verify(struct mm_trust *t, const mm_entry *e, const uint8_t *content,
                             size_t len)
{
	struct verdict v = {.check = MM_ENTRY_BAD_CERT};
	const struct signer *s = signer_of(t, e);
	v.check = s->check;
	memcpy(v.signer, s->name, sizeof(v.signer));
	if (v.check == MM_ENTRY_OK) {
		EVP_PKEY *key = X509_get0_pubkey(s->x);
		EVP_MD_CTX *mc = EVP_MD_CTX_new();
		bool good =
		    key && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 && mc &&
		    EVP_DigestVerifyInit(mc, NULL, NULL, NULL, key) == 1 &&
		    EVP_DigestVerify(mc, e->signature.data, e->signature.len, content, len) == 1;
		EVP_MD_CTX_free(mc);
		ERR_clear_error();
		if (!good)
			v.check = MM_ENTRY_BAD_SIGNATURE;
	}
	return v;
}

/* The cache's key: what the verdict depends on, all of it. */
static void cache_key(const mm_entry *e, const uint8_t *content, size_t len, char hex[65])
{
	uint8_t d[MM_DIGEST_LEN];
	unsigned int n = 0;
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	/* each field after its length: bytes moved from one field to the next
	 * make another key (else a forged entry could leave its verdict under
	 * a genuine one's key) */
	const struct {
		const void *p;
		size_t n;
	} f[] = {
	    {e->signature.data, e->signature.len}, {e->signer.data, e->signer.len}, {content, len}};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		uint8_t n8[8];
		for (int k = 0; k < 8; k++)
			n8[k] = (uint8_t)((uint64_t)f[i].n >> (8 * k));
		EVP_DigestUpdate(mc, n8, sizeof(n8));
		EVP_DigestUpdate(mc, f[i].p, f[i].n);
	}
	EVP_DigestFinal_ex(mc, d, &n);
	EVP_MD_CTX_free(mc);
	mm_digest_hex(d, hex);
}

enum mm_entry_check mm_entry_check(struct mm_trust *t, const mm_entry *e, const mm_entry *dir_entry,
                                   char *signer)
{
	signer[0] = '\0';
	if (e->signature.len == 0 || e->signer.len == 0)
		return MM_ENTRY_UNSIGNED;
	size_t len;
	uint8_t *content = mm_entry_content(e, &len);
	char key[65];
	cache_key(e, content, len, key);
	uint32_t i;
	struct verdict v;
	if (mm_strmap_get(&t->cache, key, &i)) {
		v = t->verdicts[i];
	} else {
		v = verify(t, e, content, len);
		if (t->verdicts == NULL)
			t->verdicts = mm_xcalloc(CACHE_MAX, sizeof(*t->verdicts));
		if (t->n >= CACHE_MAX) {
			mm_strmap_clear(&t->cache);
			t->n = 0;
		}
		memcpy(v.key, key, sizeof(v.key));
		t->verdicts[t->n] = v;
		mm_strmap_put(&t->cache, t->verdicts[t->n].key, (uint32_t)t->n);
		t->n++;
	}
	free(content);
	memcpy(signer, v.signer, sizeof(v.signer));
	if (v.check != MM_ENTRY_OK)
		return v.check;
	/* 3: a candidate of the entry's group in our own directory */
	for (size_t k = 0; dir_entry && k < dir_entry->n_masters; k++)
		if (strcmp(dir_entry->masters[k]->name, v.signer) == 0)
			return MM_ENTRY_OK;
	return MM_ENTRY_NOT_CANDIDATE;
}

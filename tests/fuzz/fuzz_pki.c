/* A deterministic organization PKI (fuzz_pki.h). */
#include "fuzz_pki.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Fixed dates: entrysig.c checks no time (NO_CHECK_TIME), and a fixed
 * date keeps the DER the same from run to run. UTCTime up to 2049. */
#define NOT_BEFORE  "20240101000000Z"
#define NOT_AFTER   "20491231235959Z"
#define REVOKED_AT  "20240102000000Z"
#define SERIAL_CA   1u
#define LABEL_MAGIC "mailmesh fuzz pki 1"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_pki: %s\n", what);
	abort();
}

/* SHA-256 of the magic, the seed and label: a key or a serial */
static void derive(const struct fpki *p, const char *label, uint8_t out[32])
{
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	unsigned int n = 0;
	if (mc == NULL || EVP_DigestInit_ex(mc, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(mc, LABEL_MAGIC, sizeof(LABEL_MAGIC)) != 1 ||
	    EVP_DigestUpdate(mc, p->seed, FPKI_SEED_LEN) != 1 ||
	    EVP_DigestUpdate(mc, label, strlen(label)) != 1 ||
	    EVP_DigestFinal_ex(mc, out, &n) != 1 || n != 32)
		die("SHA-256");
	EVP_MD_CTX_free(mc);
}

static EVP_PKEY *key_of(const struct fpki *p, const char *label)
{
	uint8_t k[32];
	char l[192]; /* "serial:" and a label of up to 128 */
	snprintf(l, sizeof(l), "key:%s", label);
	derive(p, l, k);
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k, sizeof(k));
	if (key == NULL)
		die("an Ed25519 key from raw octets");
	return key;
}

/* 63 bits of the label's hash, never 0 or the CA's 1: positive, as RFC
 * 5280 wants, and the same whatever the order of issue */
static uint64_t serial_of(const struct fpki *p, const char *label)
{
	uint8_t d[32];
	char l[192]; /* "serial:" and a label of up to 128 */
	snprintf(l, sizeof(l), "serial:%s", label);
	derive(p, l, d);
	uint64_t s = 0;
	for (int i = 0; i < 8; i++)
		s = s << 8 | d[i];
	s &= INT64_MAX;
	return s > SERIAL_CA ? s : s + 2;
}

static void add_ext(X509 *x, X509V3_CTX *v, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v, nid, value);
	if (e == NULL || !X509_add_ext(x, e, -1))
		die("an extension");
	X509_EXTENSION_free(e);
}

static void set_time(ASN1_TIME *t, const char *s)
{
	if (!ASN1_TIME_set_string_X509(t, s))
		die("a time");
}

static X509_NAME *name_of(const char *org, const char *ou, const char *cn)
{
	X509_NAME *n = X509_NAME_new();
	if (n == NULL ||
	    !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1,
	                                0) ||
	    (ou && !X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)ou,
	                                       -1, -1, 0)) ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
	                                0))
		die("a name");
	return n;
}

/* A certificate the CA issues; before p has its CA (fpki_init), the CA
 * itself: self-signed, with the CA's extensions. */
static X509 *make_cert(const struct fpki *p, EVP_PKEY *key, X509_NAME *subject, uint64_t serial,
                       const char *uri)
{
	X509 *x = X509_new();
	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) ||
	    !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, p->ca ? X509_get_subject_name(p->ca) : subject) ||
	    !X509_set_pubkey(x, key))
		die("a certificate");
	set_time(X509_getm_notBefore(x), NOT_BEFORE);
	set_time(X509_getm_notAfter(x), NOT_AFTER);
	X509V3_CTX v;
	X509V3_set_ctx(&v, p->ca ? p->ca : x, x, NULL, NULL, 0);
	bool ca = p->ca == NULL;
	add_ext(x, &v, NID_basic_constraints,
	        ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE");
	add_ext(x, &v, NID_key_usage,
	        ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	/* the subject key identifier first: a self-signed CA's authority key
	 * identifier is its own */
	add_ext(x, &v, NID_subject_key_identifier, "hash");
	add_ext(x, &v, NID_authority_key_identifier, "keyid:always");
	if (uri) {
		char san[256];
		snprintf(san, sizeof(san), "URI:%s", uri);
		add_ext(x, &v, NID_subject_alt_name, san);
	}
	/* Ed25519 takes no digest (NULL) */
	if (X509_sign(x, p->ca_key ? p->ca_key : key, NULL) <= 0)
		die("signing a certificate");
	return x;
}

static char *pem_of(BIO *b, size_t *len)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	if (n <= 0)
		die("PEM");
	char *s = mm_xmalloc((size_t)n + 1);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*len = (size_t)n;
	BIO_free(b);
	return s;
}

/* The CRL of every revocation so far, signed by the CA. */
static void make_crl(struct fpki *p)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = ASN1_TIME_new(), *next = ASN1_TIME_new(), *at = ASN1_TIME_new();
	if (crl == NULL || last == NULL || next == NULL || at == NULL ||
	    !X509_CRL_set_version(crl, 1 /* v2 */) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(p->ca)))
		die("a CRL");
	set_time(last, NOT_BEFORE);
	set_time(next, NOT_AFTER);
	set_time(at, REVOKED_AT);
	if (!X509_CRL_set1_lastUpdate(crl, last) || !X509_CRL_set1_nextUpdate(crl, next))
		die("the CRL's dates");
	long number = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (!p->certs[i]->revoked)
			continue;
		X509_REVOKED *r = X509_REVOKED_new();
		if (r == NULL ||
		    !X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(p->certs[i]->x509)) ||
		    !X509_REVOKED_set_revocationDate(r, at) || !X509_CRL_add0_revoked(crl, r))
			die("a revoked entry");
		number++;
	}
	X509_CRL_sort(crl);
	X509V3_CTX v;
	X509V3_set_ctx(&v, p->ca, NULL, NULL, crl, 0);
	X509_EXTENSION *e =
	    X509V3_EXT_conf_nid(NULL, &v, NID_authority_key_identifier, "keyid:always");
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	if (e == NULL || !X509_CRL_add_ext(crl, e, -1) || num == NULL ||
	    !ASN1_INTEGER_set(num, number) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0))
		die("the CRL's extensions");
	X509_EXTENSION_free(e);
	ASN1_INTEGER_free(num);
	if (X509_CRL_sign(crl, p->ca_key, NULL) <= 0)
		die("signing the CRL");
	BIO *b = BIO_new(BIO_s_mem());
	if (b == NULL || !PEM_write_bio_X509_CRL(b, crl))
		die("the CRL's PEM");
	free(p->crl_pem);
	p->crl_pem = pem_of(b, &p->crl_len);
	X509_CRL_free(crl);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	ASN1_TIME_free(at);
}

void fpki_init(struct fpki *p, const uint8_t seed[FPKI_SEED_LEN], const char *org)
{
	*p = (struct fpki){0};
	memcpy(p->seed, seed, FPKI_SEED_LEN);
	snprintf(p->org, sizeof(p->org), "%s", org);
	EVP_PKEY *key = key_of(p, "ca");
	char cn[256];
	snprintf(cn, sizeof(cn), "%s mailmesh CA", org);
	X509_NAME *n = name_of(org, NULL, cn);
	p->ca = make_cert(p, key, n, SERIAL_CA, NULL);
	p->ca_key = key;
	X509_NAME_free(n);
	BIO *b = BIO_new(BIO_s_mem());
	if (b == NULL || !PEM_write_bio_X509(b, p->ca))
		die("the CA's PEM");
	p->ca_pem = pem_of(b, &p->ca_len);
	make_crl(p);
}

void fpki_free(struct fpki *p)
{
	for (size_t i = 0; i < p->n; i++) {
		EVP_PKEY_free(p->certs[i]->key);
		X509_free(p->certs[i]->x509);
		OPENSSL_free(p->certs[i]->der);
		free(p->certs[i]);
	}
	free(p->certs);
	EVP_PKEY_free(p->ca_key);
	X509_free(p->ca);
	free(p->ca_pem);
	free(p->crl_pem);
	*p = (struct fpki){0};
}

const struct fpki_cert *fpki_find(const struct fpki *p, enum mm_cert_kind kind, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->certs[i]->kind == kind && strcmp(p->certs[i]->name, name) == 0)
			return p->certs[i];
	return NULL;
}

const struct fpki_cert *fpki_issue(struct fpki *p, enum mm_cert_kind kind, const char *name)
{
	char uri[128], label[128];
	if (!mm_cert_identity_uri(uri, sizeof(uri), kind, name) || fpki_find(p, kind, name))
		die("a name that is no certificate name, or issued twice");
	snprintf(label, sizeof(label), "%s:%s", mm_cert_kind_name(kind), name);
	struct fpki_cert *c = mm_xcalloc(1, sizeof(*c));
	c->kind = kind;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->key = key_of(p, label);
	X509_NAME *n = name_of(p->org, mm_cert_kind_name(kind), name);
	c->x509 = make_cert(p, c->key, n, serial_of(p, label), uri);
	X509_NAME_free(n);
	int len = i2d_X509(c->x509, &c->der);
	if (len <= 0)
		die("DER");
	c->len = (size_t)len;
	p->certs = mm_xrealloc(p->certs, p->n + 1, sizeof(*p->certs));
	p->certs[p->n++] = c;
	return c;
}

void fpki_revoke(struct fpki *p, const struct fpki_cert *c)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->certs[i] == c)
			p->certs[i]->revoked = true;
	make_crl(p);
}

struct mm_trust *fpki_trust(const struct fpki *p, bool crl)
{
	char err[512];
	struct mm_trust *t = mm_trust_new(p->ca_pem, p->ca_len, crl ? p->crl_pem : NULL,
	                                  crl ? p->crl_len : 0, err, sizeof(err));
	if (t == NULL) {
		fprintf(stderr, "fuzz_pki: %s\n", err);
		abort();
	}
	return t;
}

void fpki_sign(const struct fpki_cert *c, mm_entry *e)
{
	if (!mm_entry_sign(e, c->key, c->der, c->len))
		die("mm_entry_sign");
}

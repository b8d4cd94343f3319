/* Signed entries (linkstate/entrysig.h) against certificates the openssl
 * tool made (tests/support/entrysig_pki.sh DIR; DIR is the argument):
 * who may sign an entry, what a receiver refuses, and that what is signed
 * is the content alone. Each test names the mutation it was seen to catch.
 *
 * usage: entrysig_test DIR */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "alloc.h"
#include "digest.h"
#include "entrysig.h"
#include "synth.h"

static const char *dir;

static char *slurp(const char *name, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("%s: cannot open", path);
	char *buf = mm_xmalloc(1 << 16);
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	return buf;
}

static EVP_PKEY *key_of(const char *name)
{
	size_t len;
	char file[64];
	snprintf(file, sizeof(file), "%s.key", name);
	char *pem = slurp(file, &len);
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	free(pem);
	assert_non_null(k);
	return k;
}

/* name.pem as DER */
static uint8_t *cert_of(const char *name, size_t *der_len)
{
	size_t len;
	char file[64];
	snprintf(file, sizeof(file), "%s.pem", name);
	char *pem = slurp(file, &len);
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	free(pem);
	assert_non_null(x);
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);
	X509_free(x);
	assert_true(n > 0);
	*der_len = (size_t)n;
	return der;
}

static struct mm_trust *trust(bool crl)
{
	size_t calen, crllen;
	char *ca = slurp("ca.pem", &calen);
	char *c = crl ? slurp("crl.pem", &crllen) : NULL;
	char err[256];
	struct mm_trust *t = mm_trust_new(ca, calen, c, crl ? crllen : 0, err, sizeof(err));
	if (t == NULL)
		fail_msg("trust: %s", err);
	free(ca);
	free(c);
	return t;
}

/* group G000000 as its directory has it: candidates M-A and R-A */
static mm_entry *directory_entry(void)
{
	mm_entry *e = synth_group(0, 2);
	const char *names[] = {"M-A", "R-A"};
	e->masters = mm_xcalloc(2, sizeof(*e->masters));
	for (size_t i = 0; i < 2; i++) {
		Mailmesh__MasterCandidate *m = mm_xmalloc(sizeof(*m));
		mailmesh__master_candidate__init(m);
		m->name = mm_xstrdup(names[i]);
		m->routing_address = mm_xstrdup("127.0.9.9:691");
		e->masters[e->n_masters++] = m;
	}
	return e;
}

/* the entry as master `signer` issues it, signed with `key`'s key and
 * carrying `cert`'s certificate */
static mm_entry *issued(const char *key, const char *cert)
{
	mm_entry *e = directory_entry();
	e->version->incarnation = 1790000064;
	EVP_PKEY *k = key_of(key);
	size_t n;
	uint8_t *der = cert_of(cert, &n);
	bool ok = mm_entry_sign(e, k, der, n);
	EVP_PKEY_free(k);
	OPENSSL_free(der);
	if (!ok) {
		mm_entry_free(e);
		return NULL;
	}
	return e;
}

/* Mutations caught: verify() without the chain (the stranger's X-A is
 * taken); without X509_V_FLAG_CRL_CHECK (R-A taken); without the kind
 * check (a server's certificate taken); the candidacy loop accepting any
 * master (M-B taken); the signature not verified (the altered entry
 * taken); the cache keyed by the signature alone (the altered entry taken
 * once the original was checked). */
static void test_checks(void **state)
{
	(void)state;
	struct mm_trust *t = trust(true);
	mm_entry *group = directory_entry();
	char signer[MM_CERT_NAME_MAX + 1];
	static const struct {
		const char *key, *cert;
		enum mm_entry_check want;
		const char *signer;
	} rows[] = {
	    {"M-A", "M-A", MM_ENTRY_OK, "M-A"},
	    {"M-B", "M-B", MM_ENTRY_NOT_CANDIDATE, "M-B"},
	    {"R-A", "R-A", MM_ENTRY_REVOKED, ""},
	    {"X-A", "X-A", MM_ENTRY_BAD_CERT, ""},
	    {"M-A", "S-A", MM_ENTRY_NOT_MASTER, ""},
	    {"M-B", "M-A", MM_ENTRY_BAD_SIGNATURE, "M-A"}, /* M-A's certificate, M-B's key */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		mm_entry *e = issued(rows[i].key, rows[i].cert);
		assert_non_null(e);
		for (int twice = 0; twice < 2; twice++) { /* the second from the cache */
			enum mm_entry_check c = mm_entry_check(t, e, group, signer);
			if (c != rows[i].want || strcmp(signer, rows[i].signer) != 0)
				fail_msg("key %s, certificate %s: got %s (%s), want %s (%s)",
				         rows[i].key, rows[i].cert, mm_entry_check_name(c), signer,
				         mm_entry_check_name(rows[i].want), rows[i].signer);
		}
		mm_entry_free(e);
	}
	/* altered after it was signed (and checked once: the cache) */
	mm_entry *e = issued("M-A", "M-A");
	assert_int_equal(mm_entry_check(t, e, group, signer), MM_ENTRY_OK);
	e->servers[0]->down = !e->servers[0]->down;
	assert_int_equal(mm_entry_check(t, e, group, signer), MM_ENTRY_BAD_SIGNATURE);
	e->servers[0]->down = !e->servers[0]->down;
	e->version->minor++;
	assert_int_equal(mm_entry_check(t, e, group, signer), MM_ENTRY_BAD_SIGNATURE);
	mm_entry_free(e);
	/* no signature; the group not in our directory */
	e = directory_entry();
	assert_int_equal(mm_entry_check(t, e, group, signer), MM_ENTRY_UNSIGNED);
	mm_entry_free(e);
	e = issued("M-A", "M-A");
	assert_int_equal(mm_entry_check(t, e, NULL, signer), MM_ENTRY_NOT_CANDIDATE);
	mm_entry_free(e);
	/* without the CRL, R-A is a master like another */
	struct mm_trust *t2 = trust(false);
	e = issued("R-A", "R-A");
	assert_int_equal(mm_entry_check(t2, e, group, signer), MM_ENTRY_OK);
	mm_entry_free(e);
	mm_trust_free(t2);
	mm_entry_free(group);
	mm_trust_free(t);
}

/* A forged entry whose signature and signer, joined, are a genuine one's
 * (the first octet of the certificate moved to the end of the signature)
 * fails; checked first, its verdict must not be the genuine entry's.
 * Mutation seen failing: the cache's key without the fields' lengths -- the
 * genuine entry, checked second, is refused from the cache. */
static void test_cache_key(void **state)
{
	(void)state;
	struct mm_trust *t = trust(true);
	mm_entry *group = directory_entry();
	char signer[MM_CERT_NAME_MAX + 1];
	mm_entry *good = issued("M-A", "M-A");
	mm_entry *forged = mm_entry_clone(good);
	size_t sl = good->signature.len, cl = good->signer.len;
	uint8_t *sig = mm_xmalloc(sl + 1), *cert = mm_xmalloc(cl - 1);
	memcpy(sig, good->signature.data, sl);
	sig[sl] = good->signer.data[0];
	memcpy(cert, good->signer.data + 1, cl - 1);
	free(forged->signature.data);
	free(forged->signer.data);
	forged->signature = (ProtobufCBinaryData){sl + 1, sig};
	forged->signer = (ProtobufCBinaryData){cl - 1, cert};
	assert_int_equal(mm_entry_check(t, forged, group, signer), MM_ENTRY_BAD_CERT);
	assert_int_equal(mm_entry_check(t, good, group, signer), MM_ENTRY_OK);
	mm_entry_free(forged);
	mm_entry_free(good);
	mm_entry_free(group);
	mm_trust_free(t);
}

/* What is signed, and what every digest covers, is the content: a signed
 * entry has the digest of its content, a table holding it the digest of
 * the same table unsigned; Ed25519 is deterministic; only Ed25519 keys
 * sign. Mutations caught: mm_entry_content keeping the signature (the
 * digests differ); digest.c packing the whole entry (the cached table
 * digest differs). */
static void test_content(void **state)
{
	(void)state;
	mm_entry *plain = directory_entry();
	plain->version->incarnation = 1790000064;
	mm_entry *a = issued("M-A", "M-A"), *b = issued("M-A", "M-A");
	uint8_t d0[MM_DIGEST_LEN], d1[MM_DIGEST_LEN];
	mm_entry_digest(plain, d0);
	mm_entry_digest(a, d1);
	assert_memory_equal(d0, d1, MM_DIGEST_LEN);
	assert_int_equal(a->signature.len, 64);
	assert_memory_equal(a->signature.data, b->signature.data, 64);
	struct mm_table t1, t2;
	mm_table_init(&t1);
	mm_table_init(&t2);
	mm_table_merge(&t1, plain);
	mm_table_merge(&t2, a);
	mm_table_digest(&t1, d0);
	mm_table_digest(&t2, d1);
	assert_memory_equal(d0, d1, MM_DIGEST_LEN);
	struct mm_digest_cache c = {0};
	mm_table_digest_cached(&t2, &c, d1);
	assert_memory_equal(d0, d1, MM_DIGEST_LEN);
	mm_digest_cache_free(&c);
	/* a P-256 key does not sign entries */
	EVP_PKEY *k = key_of("S-A");
	size_t n;
	uint8_t *der = cert_of("S-A", &n);
	assert_false(mm_entry_sign(b, k, der, n));
	EVP_PKEY_free(k);
	OPENSSL_free(der);
	char name[MM_CERT_NAME_MAX + 1];
	assert_true(mm_entry_signer_name(b, name));
	assert_string_equal(name, "M-A");
	mm_entry_free(b);
	mm_table_free(&t1);
	mm_table_free(&t2);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: entrysig_test DIR\n");
		return 64;
	}
	dir = argv[1];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checks),
	    cmocka_unit_test(test_cache_key),
	    cmocka_unit_test(test_content),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

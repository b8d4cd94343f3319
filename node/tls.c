#include "tls.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

/* Accept any certificate during the handshake; whether it chains to the
 * organization's CA is read afterwards with SSL_get_verify_result, so a
 * stranger's certificate lowers no one's session to failure, it only
 * earns no trust. */
static int verify_later(int ok, X509_STORE_CTX *ctx)
{
	(void)ok, (void)ctx;
	return 1;
}

static const char *ssl_error(void)
{
	static char buf[256];
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	return buf;
}

bool mm_tls_init(struct mm_tls *t, const char *dir, const char *name, char *err, size_t errlen)
{
	char ca[4096], cert[4096], key[4096];
	*t = (struct mm_tls){0};
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(cert, sizeof(cert), "%s/%s.pem", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	t->server = SSL_CTX_new(TLS_server_method());
	t->client = SSL_CTX_new(TLS_client_method());
	t->client_verify = SSL_CTX_new(TLS_client_method());
	if (!t->server || !t->client || !t->client_verify) {
		snprintf(err, errlen, "TLS: %s", ssl_error());
		return false;
	}
	SSL_CTX *all[] = {t->server, t->client, t->client_verify};
	for (int i = 0; i < 3; i++) {
		SSL_CTX_set_min_proto_version(all[i], TLS1_2_VERSION);
		if (SSL_CTX_use_certificate_chain_file(all[i], cert) != 1) {
			snprintf(err, errlen, "%s: %s", cert, ssl_error());
			return false;
		}
		if (SSL_CTX_use_PrivateKey_file(all[i], key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(all[i]) != 1) {
			snprintf(err, errlen, "%s: %s", key, ssl_error());
			return false;
		}
		if (SSL_CTX_load_verify_locations(all[i], ca, NULL) != 1) {
			snprintf(err, errlen, "%s: %s", ca, ssl_error());
			return false;
		}
	}
	SSL_CTX_set_verify(t->server, SSL_VERIFY_PEER, verify_later);
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
	if (names)
		SSL_CTX_set_client_CA_list(t->server, names);
	SSL_CTX_set_verify(t->client, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_verify(t->client_verify, SSL_VERIFY_PEER, NULL);
	return true;
}

void mm_tls_free(struct mm_tls *t)
{
	SSL_CTX_free(t->server);
	SSL_CTX_free(t->client);
	SSL_CTX_free(t->client_verify);
	*t = (struct mm_tls){0};
}

bool mm_tls_peer_verified(SSL *ssl, char *cn, size_t cnlen)
{
	X509 *peer = SSL_get1_peer_certificate(ssl);
	if (peer == NULL)
		return false;
	bool ok = SSL_get_verify_result(ssl) == X509_V_OK;
	if (cn && cnlen) {
		cn[0] = '\0';
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
		                          (int)cnlen);
	}
	X509_free(peer);
	return ok;
}

static bool digest_ok(const char *md, const char *stored_b64, const char *given)
{
	unsigned char raw[256];
	int n = EVP_DecodeBlock(raw, (const unsigned char *)stored_b64, (int)strlen(stored_b64));
	if (n < 20)
		return false;
	/* EVP_DecodeBlock counts base64 padding as bytes */
	size_t len = strlen(stored_b64);
	while (len > 0 && stored_b64[len - 1] == '=') {
		n--;
		len--;
	}
	const EVP_MD *m = EVP_get_digestbyname(md);
	unsigned int dl = (unsigned int)EVP_MD_get_size(m);
	if ((size_t)n < dl)
		return false;
	unsigned char out[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, m, NULL);
	EVP_DigestUpdate(ctx, given, strlen(given));
	EVP_DigestUpdate(ctx, raw + dl, (size_t)n - dl); /* the salt, for SSHA */
	EVP_DigestFinal_ex(ctx, out, &dl);
	EVP_MD_CTX_free(ctx);
	return CRYPTO_memcmp(out, raw, dl) == 0;
}

bool mm_password_ok(const char *stored, const char *given)
{
	if (stored == NULL || given == NULL)
		return false;
	if (strncmp(stored, "{SSHA}", 6) == 0 || strncmp(stored, "{SHA}", 5) == 0)
		return digest_ok("SHA1", stored + (stored[2] == 'S' ? 6 : 5), given);
	if (strncmp(stored, "{SSHA256}", 9) == 0)
		return digest_ok("SHA256", stored + 9, given);
	if (stored[0] == '{')
		return false; /* a scheme we do not know: never a match */
	size_t a = strlen(stored), b = strlen(given);
	return a == b && CRYPTO_memcmp(stored, given, a) == 0;
}

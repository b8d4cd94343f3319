/* The stored-password check of AUTH PLAIN/LOGIN. The stored value is
 * directory data that users commonly may write themselves, so it is as
 * hostile as anything a peer sends: its length is checked before a byte
 * of it is decoded. */
#include "password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

/* {SHA} is the digest alone; {SSHA} and {SSHA256} append the salt and
 * hash password || salt. */
static bool digest_ok(const char *md, const char *stored_b64, const char *given)
{
	size_t len = strlen(stored_b64);
	if (len == 0 || len > MM_PASSWORD_B64_MAX || len % 4 != 0)
		return false;
	/* EVP_DecodeBlock writes 3 bytes per 4 of input */
	unsigned char raw[MM_PASSWORD_B64_MAX / 4 * 3];
	int n = EVP_DecodeBlock(raw, (const unsigned char *)stored_b64, (int)len);
	if (n < 0)
		return false;
	/* it counts base64 padding as bytes */
	while (len > 0 && stored_b64[len - 1] == '=') {
		n--;
		len--;
	}
	const EVP_MD *m = EVP_get_digestbyname(md);
	if (m == NULL)
		return false;
	unsigned int dl = (unsigned int)EVP_MD_get_size(m);
	if (n < 0 || (size_t)n < dl)
		return false;
	unsigned char out[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, m, NULL) == 1 &&
	          EVP_DigestUpdate(ctx, given, strlen(given)) == 1 &&
	          EVP_DigestUpdate(ctx, raw + dl, (size_t)n - dl) == 1 && /* the salt */
	          EVP_DigestFinal_ex(ctx, out, &dl) == 1;
	EVP_MD_CTX_free(ctx);
	return ok && CRYPTO_memcmp(out, raw, dl) == 0;
}

bool mm_password_ok(const char *stored, const char *given)
{
	if (stored == NULL || given == NULL)
		return false;
	if (strncmp(stored, "{SSHA}", 6) == 0)
		return digest_ok("SHA1", stored + 6, given);
	if (strncmp(stored, "{SHA}", 5) == 0)
		return digest_ok("SHA1", stored + 5, given);
	if (strncmp(stored, "{SSHA256}", 9) == 0)
		return digest_ok("SHA256", stored + 9, given);
	if (stored[0] == '{')
		return false; /* a scheme we do not know: never a match */
	size_t a = strlen(stored), b = strlen(given);
	return a == b && CRYPTO_memcmp(stored, given, a) == 0;
}

#include "certid.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
    [MM_CERT_SERVER] = "server",
    [MM_CERT_MASTER] = "master",
    [MM_CERT_ADMIN] = "admin",
};

const char *mm_cert_kind_name(enum mm_cert_kind kind)
{
	if ((size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]))
		return kind_names[kind];
	return "?";
}

static bool kind_parse(const char *s, size_t len, enum mm_cert_kind *kind)
{
	for (size_t k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++) {
		if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0) {
			*kind = (enum mm_cert_kind)k;
			return true;
		}
	}
	return false;
}

bool mm_cert_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > MM_CERT_NAME_MAX || name[0] == '.' || strcmp(name, "ca") == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

bool mm_cert_identity_uri(char *buf, size_t n, enum mm_cert_kind kind, const char *name)
{
	if (!mm_cert_name_ok(name) || (size_t)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
		return false;
	int w = snprintf(buf, n, "%s%s:%s", MM_CERT_URI_SCHEME, kind_names[kind], name);
	return w >= 0 && (size_t)w < n;
}

/* "mailmesh:KIND:NAME" as it is in the certificate: counted bytes, which
 * may hold a NUL meant to cut a comparison short */
static bool identity_parse(const unsigned char *p, size_t len, char name[MM_CERT_NAME_MAX + 1],
                           enum mm_cert_kind *kind)
{
	size_t pre = strlen(MM_CERT_URI_SCHEME);
	const unsigned char *k = p + pre, *colon;
	if (memchr(p, '\0', len) != NULL || (colon = memchr(k, ':', len - pre)) == NULL ||
	    !kind_parse((const char *)k, (size_t)(colon - k), kind))
		return false;
	size_t nl = len - (size_t)(colon + 1 - p);
	if (nl == 0 || nl > MM_CERT_NAME_MAX)
		return false;
	memcpy(name, colon + 1, nl);
	name[nl] = '\0';
	return mm_cert_name_ok(name);
}

bool mm_cert_identity(X509 *cert, char *name, size_t n, enum mm_cert_kind *kind)
{
	char got[MM_CERT_NAME_MAX + 1] = "";
	enum mm_cert_kind k = MM_CERT_SERVER;
	int found = 0;
	bool bad = false;
	if (n)
		name[0] = '\0';
	/* NULL also when the extension is there twice: no identity then */
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_URI)
			continue;
		const unsigned char *p = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		size_t len = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
		size_t pre = strlen(MM_CERT_URI_SCHEME);
		if (len < pre || memcmp(p, MM_CERT_URI_SCHEME, pre) != 0)
			continue;
		/* one identity per certificate: a second one, or one that
		 * does not parse, makes the certificate name no one */
		if (++found > 1 || !identity_parse(p, len, got, &k))
			bad = true;
	}
	GENERAL_NAMES_free(gens);
	if (found != 1 || bad || strlen(got) >= n)
		return false;
	memcpy(name, got, strlen(got) + 1);
	*kind = k;
	return true;
}

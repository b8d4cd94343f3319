/* The identity a mailmesh certificate carries (docs/meshctl.md): a
 * subjectAltName URI "mailmesh:KIND:NAME". Pure (libcrypto's X509 only):
 * the daemons' TLS (node/tls.c), `meshctl pki` and the checks of signed
 * entries (entrysig.h) read and write it with this one definition. */
#ifndef MM_CERTID_H
#define MM_CERTID_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

/* Certificate identity. Names are unique only per kind (a server and a
 * master may share one), so a certificate names both. */
enum mm_cert_kind {
	MM_CERT_SERVER, /* an mmServer: meshnode */
	MM_CERT_MASTER, /* an mmMaster candidate: rgmaster */
	MM_CERT_ADMIN,  /* an operator: meshctl --connect --as NAME */
};

#define MM_CERT_URI_SCHEME "mailmesh:"
/* RFC 5280 ub-common-name: the name is also the certificate's CN */
#define MM_CERT_NAME_MAX 64

/* "server", "master", "admin" */
const char *mm_cert_kind_name(enum mm_cert_kind kind);
/* A name a certificate may carry: 1..64 of [A-Za-z0-9._-], not starting
 * with '.', and not "ca". The name is also a file name in --tls DIR
 * (NAME.pem, NAME.key) beside ca.pem, and a URI: this keeps all three
 * plain. */
bool mm_cert_name_ok(const char *name);
/* "mailmesh:KIND:NAME" into buf; false when it does not fit or the name
 * is not mm_cert_name_ok. */
bool mm_cert_identity_uri(char *buf, size_t n, enum mm_cert_kind kind, const char *name);
/* The identity a certificate carries, whoever signed it: exactly one
 * subjectAltName URI "mailmesh:KIND:NAME" with a known KIND and a name
 * mm_cert_name_ok accepts. False (and name empty) when there is none, more
 * than one, or it does not parse. name needs MM_CERT_NAME_MAX + 1 bytes. */
bool mm_cert_identity(X509 *cert, char *name, size_t n, enum mm_cert_kind *kind);

#endif

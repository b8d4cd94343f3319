/* TLS for the daemons (OpenSSL): the SMTP virtual servers and the relay
 * client, the routing engine's contexts (TCP 691), the certificate
 * identity that `meshctl pki issue` writes and the daemons read, and the
 * start check that keeps the CA's private key out of a daemon.
 *
 * --tls DIR holds ca.pem (the organization's CA), NAME.pem and NAME.key
 * (this daemon's certificate and key), as `meshctl pki` lays them out. A
 * peer presenting a certificate the organization's CA signed is an
 * organization member; which one, and of which kind, its certificate says
 * in a subjectAltName URI "mailmesh:KIND:NAME" (docs/meshctl.md). */
#ifndef MM_TLS_H
#define MM_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/* SMTP: TLS 1.2 or later; any client certificate is accepted for
 * encryption, and earns trust only if it chains to ca.pem. */
struct mm_tls {
	SSL_CTX *server;
	SSL_CTX *client;        /* opportunistic: encrypt, verify nothing */
	SSL_CTX *client_verify; /* required: the peer must chain to ca.pem */
};

/* Returns false with a message in err. */
bool mm_tls_init(struct mm_tls *t, const char *dir, const char *name, char *err, size_t errlen);
void mm_tls_free(struct mm_tls *t);
/* After the handshake: the peer's certificate verified against ca.pem;
 * its subject CN goes to cn (may be NULL). */
bool mm_tls_peer_verified(SSL *ssl, char *cn, size_t cnlen);

/* The routing engine (DESIGN §5.1): mutual TLS 1.3 only. Both sides must
 * present a certificate, and it must chain to ca.pem alone (no system
 * roots); a handshake that does not is refused by OpenSSL itself. Which
 * object the peer is, the caller then checks with mm_tls_expect_peer. */
struct mm_tls_routing {
	SSL_CTX *accept; /* the 691 listener */
	SSL_CTX *dial;   /* connections this daemon opens */
};

/* Returns false with a message in err; free t in every case. */
bool mm_tls_routing_init(struct mm_tls_routing *t, const char *dir, const char *name, char *err,
                         size_t errlen);
void mm_tls_routing_free(struct mm_tls_routing *t);

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

/* After a handshake: the identity of a peer whose certificate verified
 * against ca.pem. False when the peer sent no certificate, it did not
 * verify (the SMTP contexts let such a handshake finish), or it carries no
 * mailmesh identity. */
bool mm_tls_peer_identity(SSL *ssl, char *name, size_t n, enum mm_cert_kind *kind);

/* The check both sides of 691 make after the handshake: the peer's
 * verified certificate names exactly (kind, name). The accepting side
 * passes what the peer claims in its Hello: its name, and its role as a
 * kind (a node MM_CERT_SERVER, a master candidate MM_CERT_MASTER, meshctl
 * MM_CERT_ADMIN); it also checks that the directory has that server or
 * master. The dialing side passes the object it dialled (the master or
 * server whose mmRoutingAddress it connected to). Names compare exactly,
 * as the directory compares them. A mismatch closes the connection before
 * anything else is read. False with the reason in err, e.g. "certificate
 * names master LAB-RGM, expected server LAB-RGM"; a claimed name that no
 * certificate could carry is not copied into err (it goes to a log). */
bool mm_tls_expect_peer(SSL *ssl, enum mm_cert_kind kind, const char *name, char *err,
                        size_t errlen);

/* After a TLS handshake that failed: true when it failed because the
 * peer's certificate did not verify (a verifying context refuses it
 * inside the handshake), with OpenSSL's reason in why. */
bool mm_tls_verify_failed(SSL *ssl, char *why, size_t whylen);

/* The start check of a daemon (DESIGN §7a), before anything else it does
 * with --tls DIR: the CA's private key stays where `pki init` put it,
 * never in a daemon's directory. False (exit 78) with the file named in
 * err when DIR has a ca.key (of any kind, even a dangling link), or when
 * any regular file in DIR (links followed) holds a PEM private key whose
 * public half is ca.pem's, whatever its name; also when such a file
 * cannot be read, as it cannot then be ruled out. Encrypted keys cannot be
 * compared without their pass phrase, and are not. */
bool mm_tls_check_dir(const char *dir, char *err, size_t errlen);

#endif

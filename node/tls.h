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

#include "certid.h"
#include "entrysig.h"

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

/* --tls DIR's trust as text: ca.pem, and crl.pem when there is one (*crl
 * NULL when not); both allocated. For mm_trust_new (entrysig.h). */
bool mm_tls_trust_text(const char *dir, char **ca, size_t *calen, char **crl, size_t *crllen,
                       char *err, size_t errlen);
/* DESIGN §7a: the contexts take ca.pem and DIR/crl.pem (when there is
 * one) afresh, so that a revoked certificate fails every handshake after
 * this call (691) and earns no trust (SMTP: relay, AUTH EXTERNAL). At
 * start and on SIGHUP; false with the reason in err (the contexts keep
 * what they had, save those already done). */
bool mm_tls_apply_crl(SSL_CTX *const *ctxs, size_t n, const char *dir, char *err, size_t errlen);

/* The entries' trust (entrysig.h) from --tls DIR: ca.pem and crl.pem
 * (when there is one). NULL with the reason in err. */
struct mm_trust *mm_tls_trust(const char *dir, char *err, size_t errlen);

/* A master's signing identity (DESIGN §5.2): DIR/NAME.key, an Ed25519 key
 * (`meshctl pki issue` makes one for every master), and DIR/NAME.pem as
 * DER, the certificate every entry it signs carries. */
struct mm_signer {
	EVP_PKEY *key;
	uint8_t *cert;
	size_t certlen;
};
bool mm_signer_load(struct mm_signer *s, const char *dir, const char *name, char *err,
                    size_t errlen);
void mm_signer_free(struct mm_signer *s);

/* The start check of a daemon (DESIGN §7a), before anything else it does
 * with --tls DIR: the CA's private key stays where `pki init` put it,
 * never in a daemon's directory. False (exit 78) with the file named in
 * err when DIR has a ca.key (of any kind, even a dangling link), or when
 * any regular file in DIR (links followed) holds a PEM private key whose
 * public half is ca.pem's, whatever its name; also when such a file
 * cannot be read, as it cannot then be ruled out. Encrypted keys cannot be
 * compared without their pass phrase, and are not. */
bool mm_tls_check_dir(const char *dir, char *err, size_t errlen);

/* The peer's certificate chain against its context's store as it is now
 * (a CRL loaded since the handshake): false when it no longer verifies.
 * True when the peer showed no certificate. */
bool mm_tls_peer_still_trusted(SSL *ssl);

#endif

/* TLS for the SMTP virtual servers and the relay client (OpenSSL).
 * --tls DIR holds ca.pem (the organization's CA), NAME.pem and NAME.key
 * (this server's certificate and key), as `meshctl pki` lays them out. A
 * peer presenting a certificate the organization's CA signed is an
 * organization server: it may relay and use AUTH EXTERNAL. */
#ifndef MM_TLS_H
#define MM_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

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

/* userPassword as LDAP stores it: {SSHA}, {SHA} or clear text. */
bool mm_password_ok(const char *stored, const char *given);

#endif

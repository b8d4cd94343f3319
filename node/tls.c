#include "tls.h"

#include <errno.h>
#include <fts.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"

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

/* DIR/FILE, false when it does not fit */
static bool join(char *buf, size_t n, const char *dir, const char *file, const char *ext)
{
	int w = snprintf(buf, n, "%s/%s%s", dir, file, ext);
	return w >= 0 && (size_t)w < n;
}

struct material {
	char ca[4096], cert[4096], key[4096];
};

static bool material(struct material *m, const char *dir, const char *name, char *err,
                     size_t errlen)
{
	if (!join(m->ca, sizeof(m->ca), dir, "ca", ".pem") ||
	    !join(m->cert, sizeof(m->cert), dir, name, ".pem") ||
	    !join(m->key, sizeof(m->key), dir, name, ".key")) {
		snprintf(err, errlen, "%s: path too long", dir);
		return false;
	}
	return true;
}

/* One context: the daemon's certificate and key, ca.pem as the only
 * trust anchor, and the oldest protocol version it speaks. */
static bool load_ctx(SSL_CTX *ctx, const struct material *m, int min_version, char *err,
                     size_t errlen)
{
	if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1) {
		snprintf(err, errlen, "TLS: %s", ssl_error());
		return false;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, m->cert) != 1) {
		snprintf(err, errlen, "%s: %s", m->cert, ssl_error());
		return false;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, m->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s: %s", m->key, ssl_error());
		return false;
	}
	if (SSL_CTX_load_verify_locations(ctx, m->ca, NULL) != 1) {
		snprintf(err, errlen, "%s: %s", m->ca, ssl_error());
		return false;
	}
	return true;
}

/* A server asking for client certificates names the CAs it trusts. */
static void client_ca_list(SSL_CTX *ctx, const struct material *m)
{
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(m->ca);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
}

/* No session is resumed: a resumed session skips the check of the client's
 * certificate, and so the CRL read since (a revoked certificate could come
 * back on a ticket it was given before). Full handshakes cost little at
 * the rate these contexts see them. */
static void no_resumption(SSL_CTX *ctx)
{
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
}

bool mm_tls_init(struct mm_tls *t, const char *dir, const char *name, char *err, size_t errlen)
{
	struct material m;
	*t = (struct mm_tls){0};
	if (!material(&m, dir, name, err, errlen))
		return false;
	t->server = SSL_CTX_new(TLS_server_method());
	t->client = SSL_CTX_new(TLS_client_method());
	t->client_verify = SSL_CTX_new(TLS_client_method());
	if (!t->server || !t->client || !t->client_verify) {
		snprintf(err, errlen, "TLS: %s", ssl_error());
		return false;
	}
	SSL_CTX *all[] = {t->server, t->client, t->client_verify};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!load_ctx(all[i], &m, TLS1_2_VERSION, err, errlen))
			return false;
	SSL_CTX_set_verify(t->server, SSL_VERIFY_PEER, verify_later);
	client_ca_list(t->server, &m);
	no_resumption(t->server);
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

bool mm_tls_routing_init(struct mm_tls_routing *t, const char *dir, const char *name, char *err,
                         size_t errlen)
{
	static const unsigned char sid_ctx[] = "mailmesh-691";
	struct material m;
	*t = (struct mm_tls_routing){0};
	if (!material(&m, dir, name, err, errlen))
		return false;
	t->accept = SSL_CTX_new(TLS_server_method());
	t->dial = SSL_CTX_new(TLS_client_method());
	if (!t->accept || !t->dial) {
		snprintf(err, errlen, "TLS: %s", ssl_error());
		return false;
	}
	SSL_CTX *both[] = {t->accept, t->dial};
	for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++) {
		if (!load_ctx(both[i], &m, TLS1_3_VERSION, err, errlen))
			return false;
		/* no certificate, or one that does not chain to ca.pem: the
		 * handshake fails, and the peer gets no data (DESIGN §5.1).
		 * FAIL_IF_NO_PEER_CERT matters on the accepting side; a client
		 * always fails on a server certificate that does not verify. */
		SSL_CTX_set_verify(both[i], SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		                   NULL);
		/* RFC 5280 to the letter: `pki issue` makes nothing less */
		X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(both[i]), X509_V_FLAG_X509_STRICT);
	}
	client_ca_list(t->accept, &m);
	/* a server that verifies its clients must name its sessions, or a
	 * resumption attempt fails the handshake */
	SSL_CTX_set_session_id_context(t->accept, sid_ctx, sizeof(sid_ctx) - 1);
	no_resumption(t->accept);
	return true;
}

void mm_tls_routing_free(struct mm_tls_routing *t)
{
	SSL_CTX_free(t->accept);
	SSL_CTX_free(t->dial);
	*t = (struct mm_tls_routing){0};
}

bool mm_tls_peer_identity(SSL *ssl, char *name, size_t n, enum mm_cert_kind *kind)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (n)
		name[0] = '\0';
	/* X509_V_OK is also the answer when no certificate came at all */
	if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	return mm_cert_identity(peer, name, n, kind);
}

bool mm_tls_expect_peer(SSL *ssl, enum mm_cert_kind kind, const char *name, char *err,
                        size_t errlen)
{
	char got[MM_CERT_NAME_MAX + 1];
	enum mm_cert_kind k;
	X509 *peer = SSL_get0_peer_certificate(ssl);
	long v = SSL_get_verify_result(ssl);
	/* what the peer claims may be anything: it goes into the log only
	 * when it is a name a certificate could carry */
	const char *want = mm_cert_name_ok(name) ? name : "(not a certificate name)";
	if (peer == NULL) {
		snprintf(err, errlen, "no certificate; expected %s %s", mm_cert_kind_name(kind),
		         want);
		return false;
	}
	if (v != X509_V_OK) {
		snprintf(err, errlen, "certificate not trusted (%s); expected %s %s",
		         X509_verify_cert_error_string(v), mm_cert_kind_name(kind), want);
		return false;
	}
	if (!mm_cert_identity(peer, got, sizeof(got), &k)) {
		snprintf(err, errlen,
		         "certificate carries no mailmesh identity (subjectAltName URI "
		         "mailmesh:KIND:NAME); expected %s %s",
		         mm_cert_kind_name(kind), want);
		return false;
	}
	if (k != kind || strcmp(got, name) != 0) {
		snprintf(err, errlen, "certificate names %s %s, expected %s %s",
		         mm_cert_kind_name(k), got, mm_cert_kind_name(kind), want);
		return false;
	}
	return true;
}

/* --- the CA key start check ---------------------------------------------- */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1; /* never a prompt on the daemon's terminal */
}

/* 1: FILE holds a private key whose public half is pub, 0: it does not,
 * -1: it cannot be read. Every PEM block is looked at, so a key behind a
 * certificate in the same file is found too. */
static int holds_key_of(const char *file, EVP_PKEY *pub)
{
	BIO *b = BIO_new_file(file, "r");
	if (b == NULL) {
		int e = errno;
		ERR_clear_error();
		errno = e;
		return -1;
	}
	int found = 0;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long len = 0;
	while (!found && PEM_read_bio(b, &name, &header, &data, &len) == 1) {
		size_t nl = strlen(name), kl = strlen("PRIVATE KEY");
		bool key = nl >= kl && strcmp(name + nl - kl, "PRIVATE KEY") == 0 &&
		           strcmp(name, "ENCRYPTED PRIVATE KEY") != 0 &&
		           strstr(header, "ENCRYPTED") == NULL;
		if (key) {
			const unsigned char *p = data;
			EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, len);
			found = k && EVP_PKEY_eq(k, pub) == 1;
			EVP_PKEY_free(k);
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(data, (size_t)len);
		name = header = NULL;
		data = NULL;
	}
	ERR_clear_error(); /* the end of the file reads as "no start line" */
	BIO_free(b);
	return found;
}

bool mm_tls_check_dir(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	bool ok = false;
	X509 *ca = NULL;
	FTS *fts = NULL;
	if (!join(path, sizeof(path), dir, "ca", ".key")) {
		snprintf(err, errlen, "%s: path too long", dir);
		goto out;
	}
	if (lstat(path, &st) == 0) {
		snprintf(err, errlen,
		         "%s: the CA's private key is in a daemon's --tls directory; it stays "
		         "where `meshctl pki init` made it",
		         path);
		goto out;
	}
	/* without a readable ca.pem there is nothing to compare with, and
	 * mm_tls_init refuses the directory for it */
	if (!join(path, sizeof(path), dir, "ca", ".pem")) {
		snprintf(err, errlen, "%s: path too long", dir);
		goto out;
	}
	BIO *b = BIO_new_file(path, "r");
	if (b) {
		ca = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
		BIO_free(b);
	}
	ERR_clear_error();
	EVP_PKEY *pub = ca ? X509_get0_pubkey(ca) : NULL;
	if (pub == NULL) {
		ok = true;
		goto out;
	}
	/* fts(3), not readdir: conf/dirent.h shadows <dirent.h> here. Links
	 * are followed (FTS_LOGICAL): ca.key linked in under another name
	 * is still the CA's key. Only DIR's own files: subdirectories are
	 * not entered. */
	char *const roots[] = {(char *)dir, NULL};
	if ((fts = fts_open(roots, FTS_LOGICAL | FTS_NOCHDIR, NULL)) == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	for (FTSENT *f; (errno = 0, f = fts_read(fts)) != NULL;) {
		switch (f->fts_info) {
		case FTS_F: break;
		case FTS_D:
			if (f->fts_level > 0)
				fts_set(fts, f, FTS_SKIP);
			continue;
		case FTS_DNR:
		case FTS_ERR:
		case FTS_NS:
			snprintf(err, errlen, "%s: %s", f->fts_path, strerror(f->fts_errno));
			goto out;
		default: continue; /* a dangling link or a socket holds no key */
		}
		if (f->fts_level == 0) {
			snprintf(err, errlen, "%s: not a directory", dir);
			goto out;
		}
		int r = holds_key_of(f->fts_path, pub);
		if (r < 0) {
			snprintf(err, errlen,
			         "%s: %s; a file of the --tls directory the daemon cannot read "
			         "might be the CA's private key",
			         f->fts_path, strerror(errno));
			goto out;
		}
		if (r > 0) {
			snprintf(
			    err, errlen,
			    "%s holds the CA's private key (the key of ca.pem); it stays where "
			    "`meshctl pki init` made it, never in a daemon's --tls directory",
			    f->fts_path);
			goto out;
		}
	}
	if (errno != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	ok = true;
out:
	if (fts)
		fts_close(fts);
	X509_free(ca);
	return ok;
}

bool mm_tls_verify_failed(SSL *ssl, char *why, size_t whylen)
{
	long r = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (r == X509_V_OK)
		return false;
	snprintf(why, whylen, "%s", X509_verify_cert_error_string(r));
	return true;
}

/* --- the CRL (DESIGN §7a) --------------------------------------------------- */

/* A whole file into memory (NULL with errno when it cannot be read). */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? 2 * cap : 8192;
			char *b = realloc(buf, cap);
			if (b == NULL) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0 || n > (16u << 20))
			break;
	}
	bool bad = ferror(f) || n > (16u << 20);
	fclose(f);
	if (bad) {
		free(buf);
		errno = EFBIG;
		return NULL;
	}
	*len = n;
	return buf;
}

bool mm_tls_trust_text(const char *dir, char **ca, size_t *calen, char **crl, size_t *crllen,
                       char *err, size_t errlen)
{
	char path[4096];
	*ca = *crl = NULL;
	*calen = *crllen = 0;
	if (!join(path, sizeof(path), dir, "ca", ".pem") || (*ca = slurp(path, calen)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	if (!join(path, sizeof(path), dir, "crl", ".pem")) {
		snprintf(err, errlen, "%s: path too long", dir);
		free(*ca);
		*ca = NULL;
		return false;
	}
	*crl = slurp(path, crllen);
	if (*crl == NULL && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(*ca);
		*ca = NULL;
		return false;
	}
	return true;
}

bool mm_tls_apply_crl(SSL_CTX *const *ctxs, size_t n, const char *dir, char *err, size_t errlen)
{
	char *ca, *crl;
	size_t calen, crllen;
	if (!mm_tls_trust_text(dir, &ca, &calen, &crl, &crllen, err, errlen))
		return false;
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		/* a new store for each context: the CA, and the CRL when there
		 * is one; a handshake after this call is checked against it */
		X509_STORE *store = X509_STORE_new();
		BIO *b = BIO_new_mem_buf(ca, (int)calen);
		STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		ok = store && infos;
		for (int k = 0; ok && k < sk_X509_INFO_num(infos); k++) {
			X509_INFO *xi = sk_X509_INFO_value(infos, k);
			if (xi->x509)
				ok = X509_STORE_add_cert(store, xi->x509) == 1;
		}
		sk_X509_INFO_pop_free(infos, X509_INFO_free);
		if (ok && crl) {
			b = BIO_new_mem_buf(crl, (int)crllen);
			X509_CRL *c = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
			BIO_free(b);
			ok = c && X509_STORE_add_crl(store, c) == 1;
			X509_CRL_free(c);
			if (!ok)
				snprintf(err, errlen, "%s/crl.pem: not a PEM CRL: %s", dir,
				         ssl_error());
		} else if (!ok) {
			snprintf(err, errlen, "%s/ca.pem: %s", dir, ssl_error());
		}
		if (!ok) {
			X509_STORE_free(store);
			break;
		}
		SSL_CTX_set_cert_store(ctxs[i], store);
		X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctxs[i]);
		if (crl)
			X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK);
		else
			X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_CRL_CHECK);
	}
	free(ca);
	free(crl);
	return ok;
}

struct mm_trust *mm_tls_trust(const char *dir, char *err, size_t errlen)
{
	char *ca, *crl;
	size_t calen, crllen;
	if (!mm_tls_trust_text(dir, &ca, &calen, &crl, &crllen, err, errlen))
		return NULL;
	struct mm_trust *t = mm_trust_new(ca, calen, crl, crllen, err, errlen);
	free(ca);
	free(crl);
	return t;
}

bool mm_signer_load(struct mm_signer *s, const char *dir, const char *name, char *err,
                    size_t errlen)
{
	struct material m;
	*s = (struct mm_signer){0};
	if (!material(&m, dir, name, err, errlen))
		return false;
	BIO *b = BIO_new_file(m.key, "r");
	s->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (s->key == NULL || EVP_PKEY_get_id(s->key) != EVP_PKEY_ED25519) {
		snprintf(
		    err, errlen,
		    "%s: not an Ed25519 private key: a master signs the entries it issues with "
		    "Ed25519 (meshctl pki issue makes one for a master)",
		    m.key);
		ERR_clear_error();
		mm_signer_free(s);
		return false;
	}
	b = BIO_new_file(m.cert, "r");
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	unsigned char *der = NULL;
	int n = x ? i2d_X509(x, &der) : -1;
	bool ok = n > 0 && X509_check_private_key(x, s->key) == 1;
	X509_free(x);
	if (!ok) {
		snprintf(err, errlen, "%s: not the certificate of %s: %s", m.cert, m.key,
		         ssl_error());
		OPENSSL_free(der);
		mm_signer_free(s);
		return false;
	}
	s->cert = mm_xmalloc((size_t)n);
	memcpy(s->cert, der, (size_t)n);
	s->certlen = (size_t)n;
	OPENSSL_free(der);
	return true;
}

void mm_signer_free(struct mm_signer *s)
{
	EVP_PKEY_free(s->key);
	free(s->cert);
	*s = (struct mm_signer){0};
}

/* The peer's chain against its context's store as it is now (a CRL loaded
 * since the handshake): false when it no longer verifies. */
bool mm_tls_peer_still_trusted(SSL *ssl)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (peer == NULL)
		return true;
	SSL_CTX *sc = SSL_get_SSL_CTX(ssl);
	X509_STORE_CTX *x = X509_STORE_CTX_new();
	bool ok = x && X509_STORE_CTX_init(x, SSL_CTX_get_cert_store(sc), peer,
	                                   SSL_get_peer_cert_chain(ssl)) == 1;
	if (ok) {
		X509_STORE_CTX_set_flags(x, X509_VERIFY_PARAM_get_flags(SSL_CTX_get0_param(sc)));
		ok = X509_verify_cert(x) == 1;
	}
	X509_STORE_CTX_free(x);
	return ok;
}

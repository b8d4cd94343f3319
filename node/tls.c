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
#include <string.h>
#include <sys/stat.h>

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
	return true;
}

void mm_tls_routing_free(struct mm_tls_routing *t)
{
	SSL_CTX_free(t->accept);
	SSL_CTX_free(t->dial);
	*t = (struct mm_tls_routing){0};
}

/* --- certificate identity ------------------------------------------------ */

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

/* meshctl pki: the organization's CA and the certificates of its servers,
 * masters and administrators (DESIGN §5.1, §7a), with OpenSSL's API.
 *
 *   meshctl pki init --dir DIR --org NAME
 *   meshctl --directory SPEC pki issue --dir DIR [--server NAME]...
 *           [--master NAME]... [--admin NAME]... [NAME]...
 *
 * A certificate names its object and the object's kind (node/tls.h), as
 * names are unique only per kind: the kind of each NAME comes from the
 * directory. Nothing is ever overwritten, and nothing is written at all
 * until every name has been checked. The profile is in docs/meshctl.md. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "meshctl.h"
#include "tls.h"

#define CA_DAYS    3650 /* the CA: ten years */
#define LEAF_DAYS  730  /* a server, master or admin: two years */
#define BACKDATE_S 3600 /* notBefore an hour early: clocks between machines drift */
#define PATH_SIZE  4096

static int say(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("meshctl: pki: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static int openssl_failed(const char *what)
{
	char buf[256];
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	return say(EX_SOFTWARE, "%s: %s", what, buf);
}

static bool join(char *buf, const char *dir, const char *name, const char *ext)
{
	int w = snprintf(buf, PATH_SIZE, "%s/%s%s", dir, name, ext);
	return w >= 0 && w < PATH_SIZE;
}

/* --- files: whole or not at all, and never over anything ---------------- */

/* A file is written to a temporary name in its directory (mkostemp:
 * O_EXCL, mode 0600 from the first byte), fsync'ed, and then given its
 * name with link(2), which, unlike rename(2), fails when the name exists:
 * a CA or a key that is there stays as it is, even against a second
 * meshctl running at the same moment. */
struct staged {
	char tmp[PATH_SIZE], path[PATH_SIZE];
	bool written, linked;
};

typedef int (*pem_writer)(BIO *b, const void *obj);

static int put_key(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int put_cert(BIO *b, const void *x)
{
	return PEM_write_bio_X509(b, (X509 *)x);
}

static int stage(struct staged *f, const char *dir, const char *file, mode_t mode, pem_writer put,
                 const void *obj)
{
	*f = (struct staged){0};
	int w = snprintf(f->tmp, sizeof(f->tmp), "%s/.%s.XXXXXX", dir, file);
	if (w < 0 || (size_t)w >= sizeof(f->tmp) || !join(f->path, dir, file, ""))
		return say(EX_CANTCREAT, "%s/%s: path too long", dir, file);
	int fd = mkostemp(f->tmp, O_CLOEXEC);
	if (fd < 0)
		return say(EX_CANTCREAT, "%s: %s", f->path, strerror(errno));
	f->written = true;
	BIO *b = BIO_new_fd(fd, BIO_NOCLOSE);
	errno = 0;
	bool ok =
	    b && fchmod(fd, mode) == 0 && put(b, obj) == 1 && BIO_flush(b) == 1 && fsync(fd) == 0;
	int e = errno;
	BIO_free(b);
	if (close(fd) != 0 && ok) {
		ok = false;
		e = errno;
	}
	ERR_clear_error();
	if (!ok)
		return say(EX_CANTCREAT, "%s: cannot write: %s", f->path,
		           e ? strerror(e) : "OpenSSL could not encode it");
	return EX_OK;
}

static int commit(struct staged *f)
{
	if (link(f->tmp, f->path) != 0)
		return say(EX_CANTCREAT, "%s: %s%s", f->path, strerror(errno),
		           errno == EEXIST ? "; not overwritten" : "");
	f->linked = true;
	return EX_OK;
}

/* the temporary name goes in every case; the real one only when a later
 * file of the same set failed (undo) */
static void unstage(struct staged *f, bool undo)
{
	if (f->written)
		unlink(f->tmp);
	if (undo && f->linked)
		unlink(f->path);
	f->written = f->linked = false;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return say(EX_CANTCREAT, "%s: fsync: %s", dir, strerror(e));
	}
	close(fd);
	return EX_OK;
}

/* Write key and certificate as one: both get their names, or neither. */
static int write_pair(const char *dir, const char *keyfile, const EVP_PKEY *key,
                      const char *certfile, const X509 *cert)
{
	struct staged k, c;
	int rc = stage(&k, dir, keyfile, 0600, put_key, key);
	if (rc == EX_OK)
		rc = stage(&c, dir, certfile, 0644, put_cert, cert);
	else
		c = (struct staged){0};
	if (rc == EX_OK)
		rc = commit(&k);
	if (rc == EX_OK)
		rc = commit(&c);
	unstage(&c, rc != EX_OK);
	unstage(&k, rc != EX_OK);
	if (rc == EX_OK)
		rc = sync_dir(dir);
	return rc;
}

/* 73 when FILE is already in DIR: refused before anything is made */
static int must_not_exist(const char *dir, const char *file)
{
	char path[PATH_SIZE];
	struct stat st;
	if (!join(path, dir, file, ""))
		return say(EX_CANTCREAT, "%s/%s: path too long", dir, file);
	if (lstat(path, &st) == 0)
		return say(EX_CANTCREAT, "%s exists; not overwritten", path);
	if (errno != ENOENT)
		return say(EX_CANTCREAT, "%s: %s", path, strerror(errno));
	return EX_OK;
}

/* --- certificates ------------------------------------------------------ */

static EVP_PKEY *new_key(enum mm_cert_kind kind)
{
	/* a master signs the entries it issues (DESIGN §5.2) with Ed25519:
	 * deterministic and fixed-size, which the simulator's byte-for-byte
	 * replay needs; TLS 1.3 carries it on 691 (RFC 8446 4.2.3) */
	if (kind == MM_CERT_MASTER)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	/* P-256: every TLS 1.3 stack does it on both sides (RFC 8446 9.1) */
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* 128 random bits, positive (RFC 5280 4.1.2.2: at most 20 octets) */
static bool random_serial(X509 *x)
{
	unsigned char r[16];
	BIGNUM *bn = NULL;
	bool ok = false;
	do {
		BN_free(bn);
		bn = NULL;
		if (RAND_bytes(r, sizeof(r)) != 1 || (bn = BN_bin2bn(r, sizeof(r), NULL)) == NULL)
			goto out;
	} while (BN_is_zero(bn));
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
out:
	BN_free(bn);
	return ok;
}

static bool add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	bool ok = ext && X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* The frame every certificate shares: v3, a random serial, validity from
 * an hour ago for DAYS (never past the issuer's end), subject, key.
 * issuer NULL: self-signed. */
static X509 *new_cert(X509_NAME *subject, EVP_PKEY *key, X509 *issuer, long days)
{
	X509 *x = X509_new();
	if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 || !random_serial(x) ||
	    X509_set_subject_name(x, subject) != 1 ||
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto fail;
	if (issuer && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuer)) > 0 &&
	    X509_set1_notAfter(x, X509_get0_notAfter(issuer)) != 1)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static bool add_ia5(GENERAL_NAMES *gens, int type, const char *value)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	if (g == NULL || s == NULL || ASN1_STRING_set(s, value, (int)strlen(value)) != 1) {
		GENERAL_NAME_free(g);
		ASN1_IA5STRING_free(s);
		return false;
	}
	GENERAL_NAME_set0_value(g, type, s);
	if (sk_GENERAL_NAME_push(gens, g) <= 0) {
		GENERAL_NAME_free(g);
		return false;
	}
	return true;
}

/* --- pki init ---------------------------------------------------------- */

static int init(const struct pki_args *a)
{
	int rc = EX_SOFTWARE;
	EVP_PKEY *key = NULL;
	X509 *ca = NULL;
	X509_NAME *subject = NULL;
	char cn[256];
	if (a->dir == NULL || a->org == NULL || a->nnames != 0 || a->directory ||
	    a->nserver + a->nmaster + a->nadmin != 0) {
		fputs("usage: meshctl pki init --dir DIR --org NAME\n", stderr);
		return EX_USAGE;
	}
	int w = snprintf(cn, sizeof(cn), "%s mailmesh CA", a->org);
	subject = X509_NAME_new();
	/* OpenSSL enforces RFC 5280's upper bounds: O at most 64 characters,
	 * CN (the name and " mailmesh CA") 64 too */
	bool control = false;
	for (const char *p = a->org; *p; p++)
		control |= (unsigned char)*p < 0x20 || *p == 0x7f;
	if (subject == NULL || a->org[0] == '\0' || control || w < 0 || (size_t)w >= sizeof(cn) ||
	    X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *)a->org,
	                               -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
	                               -1, 0) != 1) {
		ERR_clear_error();
		rc = say(EX_USAGE, "--org %s: not an organization name (UTF-8, 1 to 52 characters)",
		         a->org);
		goto out;
	}
	if (mkdir(a->dir, 0700) != 0 && errno != EEXIST) {
		rc = say(EX_CANTCREAT, "--dir %s: %s", a->dir, strerror(errno));
		goto out;
	}
	if ((rc = must_not_exist(a->dir, "ca.key")) != EX_OK ||
	    (rc = must_not_exist(a->dir, "ca.pem")) != EX_OK)
		goto out;
	if ((key = new_key(MM_CERT_SERVER)) == NULL) {
		rc = openssl_failed("CA key");
		goto out;
	}
	/* pathlen:0: the CA signs end entities only, so no certificate it
	 * issues can sign for the organization */
	if ((ca = new_cert(subject, key, NULL, CA_DAYS)) == NULL ||
	    !add_ext(ca, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !add_ext(ca, NULL, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(ca, NULL, NID_subject_key_identifier, "hash") ||
	    X509_sign(ca, key, EVP_sha256()) <= 0) {
		rc = openssl_failed("CA certificate");
		goto out;
	}
	if ((rc = write_pair(a->dir, "ca.key", key, "ca.pem", ca)) != EX_OK)
		goto out;
	printf("CA \"%s\" (O=%s) made in %s:\n"
	       "  ca.pem  the CA certificate: into every daemon's --tls directory\n"
	       "  ca.key  its private key: stays here, offline; never in a --tls directory\n",
	       cn, a->org, a->dir);
out:
	X509_NAME_free(subject);
	X509_free(ca);
	EVP_PKEY_free(key);
	return rc;
}

/* --- pki issue --------------------------------------------------------- */

struct subject {
	const char *name;
	enum mm_cert_kind kind;
	const Mailmesh__Server *server; /* kind server: its fqdns */
};

static const Mailmesh__Server *find_server(const struct mm_directory *d, const char *name)
{
	for (size_t g = 0; d && g < d->table.n; g++)
		for (size_t i = 0; i < d->table.entries[g]->n_servers; i++)
			if (strcmp(d->table.entries[g]->servers[i]->name, name) == 0)
				return d->table.entries[g]->servers[i];
	return NULL;
}

static bool is_master(const struct mm_directory *d, const char *name)
{
	for (size_t g = 0; d && g < d->table.n; g++)
		for (size_t i = 0; i < d->table.entries[g]->n_masters; i++)
			if (strcmp(d->table.entries[g]->masters[i]->name, name) == 0)
				return true;
	return false;
}

/* The kind of every name, or 65 naming each one that has none or more
 * than one. Bare names: a server, a master, or "admin"; --server,
 * --master and --admin say the kind themselves. */
static int resolve(const struct pki_args *a, const struct mm_directory *d, struct subject *out,
                   size_t *n)
{
	int rc = EX_OK;
	*n = 0;
	for (size_t i = 0; i < a->nnames; i++) {
		const char *name = a->names[i];
		const Mailmesh__Server *s = find_server(d, name);
		bool m = is_master(d, name), adm = strcmp(name, "admin") == 0;
		int kinds = (s != NULL) + m + adm;
		if (kinds == 0) {
			rc = say(EX_DATAERR,
			         "%s: no server or master of that name in the directory (an "
			         "administrator: --admin %s)",
			         name, name);
			continue;
		}
		if (kinds > 1) {
			/* names are unique per kind only: the operator says which */
			const char *what[3], *flag[3];
			int k = 0;
			if (s)
				what[k] = "a server", flag[k++] = "--server";
			if (m)
				what[k] = "a master", flag[k++] = "--master";
			if (adm)
				what[k] = "the administrator name", flag[k++] = "--admin";
			bool three = k > 2;
			rc = say(EX_DATAERR, "%s: %s and %s%s%s; say which: %s %s or %s %s%s%s%s%s",
			         name, what[0], what[1], three ? " and " : "", three ? what[2] : "",
			         flag[0], name, flag[1], name, three ? " or " : "",
			         three ? flag[2] : "", three ? " " : "", three ? name : "");
			continue;
		}
		out[(*n)++] = (struct subject){
		    name, s ? MM_CERT_SERVER : (m ? MM_CERT_MASTER : MM_CERT_ADMIN), s};
	}
	for (size_t i = 0; i < a->nserver; i++) {
		const Mailmesh__Server *s = find_server(d, a->server[i]);
		if (s == NULL)
			rc = say(EX_DATAERR, "--server %s: no server of that name in the directory",
			         a->server[i]);
		else
			out[(*n)++] = (struct subject){a->server[i], MM_CERT_SERVER, s};
	}
	for (size_t i = 0; i < a->nmaster; i++) {
		if (!is_master(d, a->master[i]))
			rc = say(EX_DATAERR, "--master %s: no master of that name in the directory",
			         a->master[i]);
		else
			out[(*n)++] = (struct subject){a->master[i], MM_CERT_MASTER, NULL};
	}
	/* administrators are not directory objects: any certificate name */
	for (size_t i = 0; i < a->nadmin; i++)
		out[(*n)++] = (struct subject){a->admin[i], MM_CERT_ADMIN, NULL};
	for (size_t i = 0; i < *n; i++) {
		if (!mm_cert_name_ok(out[i].name))
			rc = say(EX_DATAERR,
			         "%s: cannot be a certificate name (1 to %d of A-Z a-z 0-9 . - _, "
			         "not starting with '.', not \"ca\"): it is also the file name in "
			         "--tls DIR",
			         out[i].name, MM_CERT_NAME_MAX);
	}
	return rc;
}

/* One --dir holds one NAME.pem: a name twice in one run (even of two
 * kinds) is a usage error */
static int distinct(const struct subject *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(s[i].name, s[j].name) == 0)
				return say(
				    EX_USAGE,
				    "%s given twice: one --dir holds one %s.pem (issue a second "
				    "kind of %s into another directory)",
				    s[i].name, s[i].name, s[i].name);
	return EX_OK;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* DIR's CA: 66 when ca.pem or ca.key cannot be read, 65 when they are not
 * a CA and its key */
static int load_ca(const char *dir, X509 **ca, EVP_PKEY **key)
{
	char pem[PATH_SIZE], kf[PATH_SIZE];
	if (!join(pem, dir, "ca", ".pem") || !join(kf, dir, "ca", ".key"))
		return say(EX_USAGE, "--dir %s: path too long", dir);
	const char *files[] = {pem, kf};
	for (int i = 0; i < 2; i++) {
		BIO *b = BIO_new_file(files[i], "r");
		if (b == NULL) {
			ERR_clear_error();
			return say(EX_NOINPUT,
			           "%s: %s (pki issue signs with the CA pki init made in DIR)",
			           files[i], strerror(errno));
		}
		if (i == 0)
			*ca = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
		else
			*key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
		BIO_free(b);
	}
	ERR_clear_error();
	if (*ca == NULL)
		return say(EX_DATAERR, "%s: not a PEM certificate", pem);
	if (*key == NULL)
		return say(EX_DATAERR, "%s: not a PEM private key (or an encrypted one)", kf);
	if (X509_check_private_key(*ca, *key) != 1) {
		ERR_clear_error();
		return say(EX_DATAERR, "%s is not the private key of %s", kf, pem);
	}
	if (X509_check_ca(*ca) < 1)
		return say(EX_DATAERR, "%s is not a CA certificate", pem);
	if (X509_cmp_current_time(X509_get0_notAfter(*ca)) <= 0)
		return say(EX_DATAERR, "%s has expired", pem);
	if (X509_NAME_get_index_by_NID(X509_get_subject_name(*ca), NID_organizationName, -1) < 0)
		return say(EX_DATAERR, "%s names no organization (O=); make the CA with pki init",
		           pem);
	return EX_OK;
}

/* subject O=<the CA's O>, OU=<kind>, CN=<name>: the organization entry is
 * copied from the CA, so the two spell it alike */
static X509_NAME *leaf_name(X509 *ca, const struct subject *s)
{
	X509_NAME *n = X509_NAME_new();
	const X509_NAME *cs = X509_get_subject_name(ca);
	int o = X509_NAME_get_index_by_NID(cs, NID_organizationName, -1);
	const char *kind = mm_cert_kind_name(s->kind);
	if (n == NULL || X509_NAME_add_entry(n, X509_NAME_get_entry(cs, o), -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)kind, -1, -1,
	                               0) != 1 ||
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)s->name, -1,
	                               -1, 0) != 1) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

/* subjectAltName: the identity URI first, then DNS names of a server: its
 * mmFqdn and its virtual servers', each once */
static bool add_san(X509 *x, const struct subject *s)
{
	char uri[sizeof(MM_CERT_URI_SCHEME) + 8 + MM_CERT_NAME_MAX];
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	bool ok = gens && mm_cert_identity_uri(uri, sizeof(uri), s->kind, s->name) &&
	          add_ia5(gens, GEN_URI, uri);
	const Mailmesh__Server *sv = s->server;
	size_t nfq = sv ? 1 + sv->n_virtual_servers : 0;
	for (size_t i = 0; ok && i < nfq; i++) {
		const char *fq = i == 0 ? sv->fqdn : sv->virtual_servers[i - 1]->fqdn;
		bool seen = fq == NULL || fq[0] == '\0';
		for (size_t j = 0; !seen && j < i; j++)
			seen = strcasecmp(fq, j == 0 ? sv->fqdn
			                             : sv->virtual_servers[j - 1]->fqdn) == 0;
		if (!seen)
			ok = add_ia5(gens, GEN_DNS, fq);
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}

static int issue_one(const char *dir, X509 *ca, EVP_PKEY *cakey, const struct subject *s)
{
	int rc;
	EVP_PKEY *key = new_key(s->kind);
	X509_NAME *name = leaf_name(ca, s);
	X509 *x = NULL;
	char kf[MM_CERT_NAME_MAX + 8], cf[MM_CERT_NAME_MAX + 8];
	snprintf(kf, sizeof(kf), "%s.key", s->name);
	snprintf(cf, sizeof(cf), "%s.pem", s->name);
	if (key == NULL || name == NULL || (x = new_cert(name, key, ca, LEAF_DAYS)) == NULL ||
	    !add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !add_ext(x, ca, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, ca, NID_authority_key_identifier, "keyid:always") || !add_san(x, s) ||
	    X509_sign(x, cakey, EVP_sha256()) <= 0) {
		rc = openssl_failed(s->name);
		goto out;
	}
	if ((rc = write_pair(dir, kf, key, cf, x)) == EX_OK)
		printf("%s: %s certificate %s/%s, key %s/%s\n", s->name, mm_cert_kind_name(s->kind),
		       dir, cf, dir, kf);
out:
	X509_free(x);
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	return rc;
}

static int issue(const struct pki_args *a)
{
	size_t total = a->nnames + a->nserver + a->nmaster + a->nadmin;
	if (a->dir == NULL || a->org != NULL || total == 0) {
		fputs("usage: meshctl --directory SPEC pki issue --dir DIR [--server NAME]... "
		      "[--master NAME]... [--admin NAME]... [NAME]...\n",
		      stderr);
		return EX_USAGE;
	}
	/* only administrators can be issued without the directory */
	if (a->directory == NULL && a->nnames + a->nserver + a->nmaster != 0)
		return say(EX_USAGE, "servers and masters are looked up: --directory ldif:PATH or "
		                     "ldap://... is needed");
	struct mm_directory dir = {0};
	bool loaded = false;
	struct subject *subj = mm_xcalloc(total, sizeof(*subj));
	size_t n = 0;
	X509 *ca = NULL;
	EVP_PKEY *cakey = NULL;
	int rc = EX_OK;
	if (a->directory) {
		if ((rc = ctl_load_directory(a->directory, &dir)) != EX_OK)
			goto out;
		loaded = true;
	}
	if ((rc = resolve(a, loaded ? &dir : NULL, subj, &n)) != EX_OK)
		goto out;
	if ((rc = distinct(subj, n)) != EX_OK)
		goto out;
	if ((rc = load_ca(a->dir, &ca, &cakey)) != EX_OK)
		goto out;
	char org[256] = "";
	X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_organizationName, org,
	                          sizeof(org));
	if (loaded && dir.org && strcmp(dir.org, org) != 0)
		fprintf(stderr,
		        "meshctl: pki: note: the CA is for O=%s, the directory's organization is "
		        "%s\n",
		        org, dir.org);
	/* every file is checked before the first is made: a run that
	 * refuses one name writes nothing for the others */
	for (size_t i = 0; i < n && rc == EX_OK; i++) {
		char f[MM_CERT_NAME_MAX + 8];
		snprintf(f, sizeof(f), "%s.key", subj[i].name);
		rc = must_not_exist(a->dir, f);
		snprintf(f, sizeof(f), "%s.pem", subj[i].name);
		if (rc == EX_OK)
			rc = must_not_exist(a->dir, f);
	}
	for (size_t i = 0; i < n && rc == EX_OK; i++)
		rc = issue_one(a->dir, ca, cakey, &subj[i]);
out:
	X509_free(ca);
	EVP_PKEY_free(cakey);
	free(subj);
	if (loaded)
		mm_directory_free(&dir);
	return rc;
}

/* --- pki revoke -------------------------------------------------------- */

static int put_crl(BIO *b, const void *crl)
{
	return PEM_write_bio_X509_CRL(b, (X509_CRL *)crl);
}

/* DIR/crl.pem as it is (a new empty one when there is none): 65 when it is
 * not a CRL of this CA */
static int load_crl(const char *dir, X509 *ca, X509_CRL **out)
{
	char path[PATH_SIZE];
	if (!join(path, dir, "crl", ".pem"))
		return say(EX_USAGE, "--dir %s: path too long", dir);
	BIO *b = BIO_new_file(path, "r");
	if (b == NULL) {
		ERR_clear_error();
		if (errno != ENOENT)
			return say(EX_NOINPUT, "%s: %s", path, strerror(errno));
		*out = X509_CRL_new();
		if (*out == NULL || X509_CRL_set_version(*out, X509_CRL_VERSION_2) != 1 ||
		    X509_CRL_set_issuer_name(*out, X509_get_subject_name(ca)) != 1)
			return openssl_failed("CRL");
		return EX_OK;
	}
	*out = PEM_read_bio_X509_CRL(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (*out == NULL)
		return say(EX_DATAERR, "%s: not a PEM CRL", path);
	if (X509_NAME_cmp(X509_CRL_get_issuer(*out), X509_get_subject_name(ca)) != 0)
		return say(EX_DATAERR, "%s: a CRL of another CA", path);
	return EX_OK;
}

/* The serial of DIR/NAME.pem, a certificate of this CA. */
static int serial_of(const char *dir, const char *name, X509 *ca, ASN1_INTEGER **serial)
{
	char path[PATH_SIZE];
	if (!mm_cert_name_ok(name) || !join(path, dir, name, ".pem"))
		return say(EX_USAGE, "%s: not a name a certificate carries", name);
	BIO *b = BIO_new_file(path, "r");
	if (b == NULL) {
		ERR_clear_error();
		return say(EX_NOINPUT,
		           "%s: %s (pki revoke takes the certificates pki issue made in "
		           "DIR)",
		           path, strerror(errno));
	}
	X509 *x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (x == NULL)
		return say(EX_DATAERR, "%s: not a PEM certificate", path);
	if (X509_check_issued(ca, x) != X509_V_OK) {
		X509_free(x);
		return say(EX_DATAERR, "%s: not issued by this CA", path);
	}
	*serial = ASN1_INTEGER_dup(X509_get0_serialNumber(x));
	X509_free(x);
	return *serial ? EX_OK : openssl_failed(name);
}

static bool listed(X509_CRL *crl, const ASN1_INTEGER *serial)
{
	STACK_OF(X509_REVOKED) *rs = X509_CRL_get_REVOKED(crl);
	for (int i = 0; i < sk_X509_REVOKED_num(rs); i++)
		if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rs, i)),
		                     serial) == 0)
			return true;
	return false;
}

/* DESIGN §7a: DIR/crl.pem lists NAME's certificate, signed by the CA, its
 * nextUpdate the CA's notAfter (daemons read it with the time unchecked,
 * as entries are: one CRL lasts as long as the CA). Replaced as a whole:
 * written to a temporary name, fsync'ed, renamed, DIR fsync'ed. */
static int pki_revoke(const struct pki_args *a)
{
	if (a->dir == NULL || a->org != NULL || a->nnames == 0 || a->directory ||
	    a->nserver + a->nmaster + a->nadmin != 0) {
		fputs("usage: meshctl pki revoke --dir DIR NAME...\n", stderr);
		return EX_USAGE;
	}
	X509 *ca = NULL;
	EVP_PKEY *cakey = NULL;
	X509_CRL *crl = NULL;
	ASN1_TIME *now = NULL;
	int rc = load_ca(a->dir, &ca, &cakey);
	if (rc == EX_OK)
		rc = load_crl(a->dir, ca, &crl);
	if (rc == EX_OK && (now = X509_gmtime_adj(NULL, 0)) == NULL)
		rc = openssl_failed("time");
	/* every name is checked before the CRL changes */
	ASN1_INTEGER **serials = mm_xcalloc(a->nnames, sizeof(*serials));
	for (size_t i = 0; i < a->nnames && rc == EX_OK; i++)
		rc = serial_of(a->dir, a->names[i], ca, &serials[i]);
	for (size_t i = 0; i < a->nnames && rc == EX_OK; i++) {
		if (listed(crl, serials[i])) {
			printf("%s: revoked already\n", a->names[i]);
			continue;
		}
		X509_REVOKED *r = X509_REVOKED_new();
		if (r == NULL || X509_REVOKED_set_serialNumber(r, serials[i]) != 1 ||
		    X509_REVOKED_set_revocationDate(r, now) != 1 ||
		    X509_CRL_add0_revoked(crl, r) != 1) {
			X509_REVOKED_free(r);
			rc = openssl_failed(a->names[i]);
			break;
		}
		printf("%s: revoked\n", a->names[i]);
	}
	if (rc == EX_OK &&
	    (X509_CRL_set1_lastUpdate(crl, now) != 1 ||
	     X509_CRL_set1_nextUpdate(crl, X509_get0_notAfter(ca)) != 1 ||
	     X509_CRL_sort(crl) != 1 || X509_CRL_sign(crl, cakey, EVP_sha256()) <= 0))
		rc = openssl_failed("CRL");
	if (rc == EX_OK) {
		struct staged f;
		rc = stage(&f, a->dir, "crl.pem", 0644, put_crl, crl);
		if (rc == EX_OK && rename(f.tmp, f.path) != 0)
			rc = say(EX_CANTCREAT, "%s: %s", f.path, strerror(errno));
		else if (rc == EX_OK)
			f.written = false; /* renamed: nothing to unlink */
		unstage(&f, false);
		if (rc == EX_OK)
			rc = sync_dir(a->dir);
	}
	if (rc == EX_OK)
		printf("%s/crl.pem lists %d certificates: copy it into every daemon's --tls "
		       "directory, then SIGHUP them\n",
		       a->dir, sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)));
	for (size_t i = 0; i < a->nnames; i++)
		ASN1_INTEGER_free(serials[i]);
	free(serials);
	ASN1_TIME_free(now);
	X509_CRL_free(crl);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	return rc;
}

int ctl_pki(const char *verb, const struct pki_args *a)
{
	if (verb && strcmp(verb, "init") == 0)
		return init(a);
	if (verb && strcmp(verb, "issue") == 0)
		return issue(a);
	if (verb && strcmp(verb, "revoke") == 0)
		return pki_revoke(a);
	fputs("usage: meshctl pki init --dir DIR --org NAME\n"
	      "       meshctl --directory SPEC pki issue --dir DIR [--server NAME]... "
	      "[--master NAME]... [--admin NAME]... [NAME]...\n"
	      "       meshctl pki revoke --dir DIR NAME...\n",
	      stderr);
	return EX_USAGE;
}

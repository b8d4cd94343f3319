/* The node of the X-LINK2STATE fuzz targets (fuzz_xnode.h). */
#include "fuzz_xnode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "alloc.h"

void fx_die(const char *what)
{
	fprintf(stderr, "xlink fuzz: %s\n", what);
	abort();
}

/* --- the organization ------------------------------------------------------- */

#define FX_GROUPS 4 /* GA to GD */

static char *dup(const char *s)
{
	return mm_xstrdup(s);
}

/* A directory entry: version (0, 1, 0, 0), one server, its candidates. */
static mm_entry *group(const char *name, const char *server, const char *m1, const char *m2)
{
	mm_entry *e = mm_xmalloc(sizeof(*e));
	mailmesh__group_entry__init(e);
	e->name = dup(name);
	e->master = dup(m1);
	e->version = mm_xmalloc(sizeof(*e->version));
	mailmesh__version__init(e->version);
	e->version->major = 1;
	size_t nm = m2 ? 2 : 1;
	e->masters = mm_xcalloc(nm, sizeof(*e->masters));
	for (size_t i = 0; i < nm; i++) {
		Mailmesh__MasterCandidate *c = mm_xmalloc(sizeof(*c));
		mailmesh__master_candidate__init(c);
		c->name = dup(i ? m2 : m1);
		c->routing_address = dup(i ? "127.0.9.2:691" : "127.0.9.1:691");
		c->priority = i ? 10 : 20;
		e->masters[e->n_masters++] = c;
	}
	Mailmesh__Server *s = mm_xmalloc(sizeof(*s));
	mailmesh__server__init(s);
	s->name = dup(server);
	s->virtual_servers = mm_xcalloc(1, sizeof(*s->virtual_servers));
	Mailmesh__VirtualServer *vs = mm_xmalloc(sizeof(*vs));
	mailmesh__virtual_server__init(vs);
	vs->name = dup("SMTP");
	vs->address = dup("127.0.0.1:25");
	s->virtual_servers[s->n_virtual_servers++] = vs;
	e->servers = mm_xcalloc(1, sizeof(*e->servers));
	e->servers[e->n_servers++] = s;
	mm_entry_canonicalize(e);
	return e;
}

static struct fx_org *org_new(void)
{
	/* fixed seeds: the same certificates in every run */
	static const uint8_t seed[FPKI_SEED_LEN] = "mailmesh xlink fuzz org seed 01";
	static const uint8_t other[FPKI_SEED_LEN] = "mailmesh xlink fuzz stranger 01";
	struct fx_org *o = mm_xcalloc(1, sizeof(*o));
	fpki_init(&o->pki, seed, "Fuzz");
	o->ma = fpki_issue(&o->pki, MM_CERT_MASTER, "MA");
	o->mb = fpki_issue(&o->pki, MM_CERT_MASTER, "MB");
	o->mc = fpki_issue(&o->pki, MM_CERT_MASTER, "MC");
	o->md = fpki_issue(&o->pki, MM_CERT_MASTER, "MD");
	o->rd = fpki_issue(&o->pki, MM_CERT_MASTER, "RD");
	o->server_mb = fpki_issue(&o->pki, MM_CERT_SERVER, "MB");
	fpki_revoke(&o->pki, o->rd);
	/* the same organization's name: only the key tells them apart */
	fpki_init(&o->stranger, other, "Fuzz");
	o->stranger_mb = fpki_issue(&o->stranger, MM_CERT_MASTER, "MB");
	mm_table_init(&o->dir);
	mm_table_merge(&o->dir, group("GA", "SA1", "MA", NULL));
	mm_table_merge(&o->dir, group("GB", "SB1", "MB", NULL));
	mm_table_merge(&o->dir, group("GC", "SC1", "MC", NULL));
	mm_table_merge(&o->dir, group("GD", "SD1", "MD", "RD"));
	return o;
}

const struct fx_org *fx_org(void)
{
	static struct fx_org *o;
	if (o == NULL)
		o = org_new();
	return o;
}

mm_entry *fx_entry(const char *name, uint64_t inc, uint64_t major, const struct fpki_cert *c)
{
	const mm_entry *d = mm_table_find(&fx_org()->dir, name);
	mm_entry *e = d ? mm_entry_clone(d) : group(name, "SZ1", "MZ", NULL);
	e->version->incarnation = inc;
	e->version->major = major;
	if (c)
		fpki_sign(c, e);
	return e;
}

void fx_table(struct mm_table *t)
{
	const struct fx_org *o = fx_org();
	mm_table_init(t);
	for (size_t i = 0; i < o->dir.n; i++)
		mm_table_merge(t, mm_entry_clone(o->dir.entries[i]));
	mm_table_merge(t, fx_entry("GA", 1, 1, o->ma));
	mm_table_merge(t, fx_entry("GB", 1, 1, o->mb));
	mm_table_merge(t, fx_entry("GC", 1, 1, o->mc));
}

const char *fx_group_of(const char *server)
{
	const struct mm_table *t = &fx_org()->dir;
	for (size_t g = 0; g < t->n; g++)
		for (size_t s = 0; s < t->entries[g]->n_servers; s++)
			if (strcmp(t->entries[g]->servers[s]->name, server) == 0)
				return t->entries[g]->name;
	return NULL;
}

/* --- the oracle ------------------------------------------------------------- */

/* DESIGN §5.2's checks 1 to 4, without entrysig.c: true when e may replace
 * what the node holds, as far as its signature goes. */
static bool oracle(const struct fx_node *n, const mm_entry *e)
{
	const struct fx_org *o = n->org;
	if (e->signature.len == 0 || e->signer.len == 0 || e->signer.len > 65536)
		return false;
	const unsigned char *p = e->signer.data;
	X509 *x = d2i_X509(NULL, &p, (long)e->signer.len);
	bool whole = x && p == e->signer.data + e->signer.len;
	const struct fpki_cert *c = NULL;
	for (size_t i = 0; whole && i < o->pki.n && c == NULL; i++)
		if (X509_cmp(x, o->pki.certs[i]->x509) == 0)
			c = o->pki.certs[i];
	X509_free(x);
	ERR_clear_error();
	if (c == NULL || c->kind != MM_CERT_MASTER || (n->crl && c->revoked))
		return false;
	const mm_entry *d = mm_table_find(&o->dir, e->name);
	bool cand = false;
	for (size_t k = 0; d && k < d->n_masters; k++)
		cand |= strcmp(d->masters[k]->name, c->name) == 0;
	if (!cand)
		return false;
	size_t len;
	uint8_t *content = mm_entry_content(e, &len);
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	bool good = mc && EVP_DigestVerifyInit(mc, NULL, NULL, NULL, c->key) == 1 &&
	            EVP_DigestVerify(mc, e->signature.data, e->signature.len, content, len) == 1;
	EVP_MD_CTX_free(mc);
	ERR_clear_error();
	free(content);
	return good;
}

/* --- the environment --------------------------------------------------------- */

static const struct mm_table *env_table(void *ctx)
{
	return mm_member_base(&((struct fx_node *)ctx)->m);
}

static const char *env_group_of(void *ctx, const char *server)
{
	(void)ctx;
	return fx_group_of(server);
}

static void env_log(void *ctx, const char *line)
{
	if (((struct fx_node *)ctx)->verbose)
		fprintf(stderr, "%s\n", line);
	for (const char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			fx_die("a log line with a control character");
}

static bool entry_same(const mm_entry *a, const mm_entry *b)
{
	uint8_t x[MM_DIGEST_LEN], y[MM_DIGEST_LEN];
	mm_entry_digest(a, x);
	mm_entry_digest(b, y);
	return memcmp(x, y, sizeof(x)) == 0;
}

/* What the checks know of one entry before take has it. */
struct pre {
	mm_entry *copy;
	bool first;    /* the first of its group in this transfer */
	bool eligible; /* travels, in the directory, not ours, and newer */
	bool oracle;
};

/* routing_take's part (node/routing.c), and the checks. */
static bool env_take(void *ctx, const char *peer, mm_entry **e, size_t n, uint32_t *taken,
                     uint32_t *dropped, char *why, size_t whylen)
{
	struct fx_node *x = ctx;
	x->takes++;
	const struct mm_table *base = mm_member_base(&x->m), *dir = &x->org->dir;
	struct pre *p = mm_xcalloc(n ? n : 1, sizeof(*p));
	bool seen[FX_GROUPS] = {false};
	for (size_t i = 0; i < n; i++) {
		/* a group the directory lacks is dropped however often it
		 * comes: only the directory's groups need the oracle (a
		 * transfer may hold thousands of tiny entries) */
		const mm_entry *d = mm_table_find(dir, e[i]->name);
		size_t g = 0;
		while (d && dir->entries[g] != d)
			g++;
		p[i].first = d == NULL || !seen[g];
		if (d)
			seen[g] = true;
		const mm_entry *have = mm_table_find(base, e[i]->name);
		int c = have ? mm_version_cmp(e[i]->version, have->version) : 1;
		p[i].eligible = e[i]->version && e[i]->version->incarnation > 0 && d &&
		                strcmp(e[i]->name, x->m.group) != 0 &&
		                (c > 0 || (c == 0 && !entry_same(e[i], have)));
		if (d && e[i]->version && e[i]->version->incarnation > 0) {
			p[i].copy = mm_entry_clone(e[i]);
			p[i].oracle = oracle(x, e[i]);
		}
	}
	enum mm_take *res = mm_xcalloc(n ? n : 1, sizeof(*res));
	if (whylen)
		why[0] = '\0';
	mm_member_take(&x->m, e, n, peer, res, why, whylen);
	*taken = *dropped = 0;
	bool ok = true, refused = false;
	for (size_t i = 0; i < n; i++) {
		const mm_entry *c = p[i].copy;
		*taken += res[i] == MM_TAKE_TAKEN;
		if (c == NULL && res[i] != MM_TAKE_DROPPED)
			fx_die("a baseline or a group the directory lacks taken or refused");
		*dropped += res[i] != MM_TAKE_TAKEN;
		ok &= res[i] != MM_TAKE_REFUSED;
		if (res[i] == MM_TAKE_TAKEN) {
			/* nothing merged unless it passed: the oracle, and
			 * mm_entry_check itself (a hit in its cache by now) */
			char signer[MM_CERT_NAME_MAX + 1];
			if (!p[i].oracle)
				fx_die("an entry taken whose signature the oracle refuses");
			if (mm_entry_check(x->trust, c, mm_table_find(dir, c->name), signer) !=
			    MM_ENTRY_OK)
				fx_die("an entry taken that mm_entry_check refuses");
			if (strcmp(c->name, x->m.group) == 0)
				fx_die("the node's own group taken over X-LINK2STATE");
		}
		if (res[i] == MM_TAKE_REFUSED && p[i].oracle)
			fx_die("an entry refused that the oracle takes");
		/* after the first refusal nothing is judged (the session
		 * ends); a revoked or foreign master's entry is disowned, a
		 * forged one refused */
		enum mm_take want = refused || !p[i].eligible ? MM_TAKE_DROPPED
		                    : p[i].oracle             ? MM_TAKE_TAKEN
		                                              : MM_TAKE_REFUSED;
		bool as_said =
		    res[i] == want || (want == MM_TAKE_REFUSED && res[i] == MM_TAKE_DISOWNED);
		refused |= res[i] == MM_TAKE_REFUSED;
		if (p[i].first && !as_said) {
			fprintf(stderr, "entry %zu: %d, want %d\n", i, res[i], want);
			fx_die("an entry judged otherwise than DESIGN §5.2 says");
		}
		if (c)
			mm_entry_free(p[i].copy);
	}
	if (!ok && (whylen == 0 || why[0] == '\0'))
		fx_die("an entry refused without a reason");
	for (const char *q = why; whylen && *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			fx_die("a reason with a control character (it goes into a reply)");
	free(p);
	free(res);
	x->took += *taken;
	return ok;
}

/* --- the member's environment: never connected -------------------------------- */

static int64_t m_now(void *ctx)
{
	(void)ctx;
	return 1000;
}

static uint32_t m_random(void *ctx)
{
	(void)ctx;
	return 4;
}

static void m_arm(void *ctx, uint64_t key, int64_t at)
{
	(void)ctx, (void)key, (void)at;
}

static void m_cancel(void *ctx, uint64_t key)
{
	(void)ctx, (void)key;
}

static void m_dial(void *ctx, uint32_t conn, const char *address, const char *cand)
{
	(void)ctx, (void)conn, (void)address, (void)cand;
	fx_die("the member dialled: it was never started");
}

static void m_send(void *ctx, uint32_t conn, const uint8_t *bytes, size_t len)
{
	(void)ctx, (void)conn, (void)bytes, (void)len;
	fx_die("the member sent with no connection");
}

static void m_close(void *ctx, uint32_t conn)
{
	(void)ctx, (void)conn;
	fx_die("the member closed a connection it never had");
}

static void m_save(void *ctx, const uint8_t *bytes, size_t len)
{
	struct fx_node *x = ctx;
	struct mm_table t;
	if (!mm_table_decode(bytes, len, 1u << 24, &t))
		fx_die("the saved table does not decode");
	mm_table_digest(&t, x->saved_digest);
	mm_table_free(&t);
	x->saved = true;
}

static void m_log(void *ctx, const char *line)
{
	env_log(ctx, line);
}

void fx_node_init(struct fx_node *n, struct mm_trust *trust, bool crl, size_t limit,
                  const char *self, struct mm_table *table)
{
	*n = (struct fx_node){.org = fx_org(), .trust = trust, .crl = crl};
	n->verbose = getenv("XLINK_FUZZ_LOG") != NULL;
	struct mm_table t;
	if (table) {
		t = *table;
		mm_table_init(table);
	} else {
		fx_table(&t);
	}
	struct mm_member_conf conf = MM_MEMBER_DEFAULTS;
	struct mm_member_env env = {n,      m_now,  m_random, m_arm,  m_cancel,
	                            m_dial, m_send, m_close,  m_save, m_log};
	if (!mm_member_init(&n->m, &conf, &env, self, &t))
		fx_die("self is no server of the table");
	mm_member_trust(&n->m, trust, &n->org->dir);
	n->env = (struct mm_xlink_env){.ctx = n,
	                               .table = env_table,
	                               .group_of = env_group_of,
	                               .take = env_take,
	                               .log = env_log,
	                               .limit = limit};
}

void fx_node_free(struct fx_node *n)
{
	if (n->saved) {
		uint8_t d[MM_DIGEST_LEN];
		fx_digest(n, d);
		if (memcmp(d, n->saved_digest, sizeof(d)) != 0)
			fx_die("the saved table is not the member's base");
	}
	mm_member_free(&n->m);
}

const struct mm_table *fx_base(const struct fx_node *n)
{
	return mm_member_base(&n->m);
}

void fx_digest(const struct fx_node *n, uint8_t d[MM_DIGEST_LEN])
{
	mm_table_digest(fx_base(n), d);
}

/* --- lines ---------------------------------------------------------------------- */

void fx_lines_free(struct fx_lines *l)
{
	if (l->x)
		mailmesh__link_transfer__free_unpacked(l->x, NULL);
	l->x = NULL;
}

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

void fx_check_lines(const char *p, size_t n, bool reply, const struct mm_table *base,
                    const char *peer_group, struct fx_lines *l)
{
	*l = (struct fx_lines){0};
	struct mm_xlink_asm a = {.limit = MM_XLINK_LIMIT_DEFAULT};
	bool done = false;
	if (n > 0 && p[n - 1] != '\n')
		fx_die("output that does not end in CRLF");
	for (size_t off = 0; off < n;) {
		const char *s = p + off, *nl = memchr(s, '\n', n - off);
		size_t len = (size_t)(nl - s) + 1;
		if (len > MM_XLINK_LINE_MAX)
			fx_die("a line over 1,024 octets, CRLF included");
		if (len < 2 || s[len - 2] != '\r')
			fx_die("a line without its CR");
		for (size_t i = 0; i + 2 < len; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				fx_die("a control character in a line");
		off += len;
		l->nlines++;
		const char *text;
		size_t tn;
		bool more = false;
		if (reply) {
			if (len < 6 || !digit(s[0]) || !digit(s[1]) || !digit(s[2]) ||
			    (s[3] != '-' && s[3] != ' '))
				fx_die("a reply line that is not NNN-text or NNN text");
			int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
			if (l->code && code != l->code)
				fx_die("a reply of two codes");
			l->code = code;
			more = s[3] == '-';
			if (more != (off < n))
				fx_die("a reply whose last line is NNN- or an earlier one NNN");
			text = s + 4;
			tn = len - 6;
		} else {
			if (len < 15 || memcmp(s, "X-LINK2STATE ", 13) != 0)
				fx_die("a command that is not X-LINK2STATE");
			text = s + 13;
			tn = len - 15;
		}
		l->last = text;
		l->last_len = tn;
		/* the chunk lines, in the form the peer reads them */
		const char *arg = text;
		size_t an = tn;
		if (reply) {
			if (tn < 13 || strncmp(text, "X-LINK2STATE ", 13) != 0)
				continue;
			arg = text + 13;
			an = tn - 13;
		}
		if (an >= 7 && strncmp(arg, "DIGEST=", 7) == 0)
			continue;
		if (reply && !more)
			fx_die("a reply's last line is a chunk");
		if (done)
			fx_die("a chunk after the transfer's LAST");
		char line[MM_XLINK_LINE_MAX + 1];
		memcpy(line, arg, an);
		line[an] = '\0';
		l->nchunks++;
		enum mm_xlink_chunk r = mm_xlink_asm_feed(&a, line);
		if (r == MM_XCHUNK_DONE)
			done = true;
		else if (r != MM_XCHUNK_MORE)
			fx_die("a chunk line the other side's assembler refuses");
	}
	if (l->nchunks && !done)
		fx_die("a transfer without its LAST");
	if (done) {
		l->x = mm_xlink_decode(&a.data);
		if (l->x == NULL)
			fx_die("a transfer sent that does not decode");
		for (size_t i = 0; i < l->x->n_entries; i++) {
			const mm_entry *e = l->x->entries[i], *have = mm_table_find(base, e->name);
			if (e->signature.len == 0 || e->signer.len == 0)
				fx_die("an unsigned entry sent");
			if (e->version == NULL || e->version->incarnation == 0)
				fx_die("a baseline sent");
			if (peer_group && strcmp(e->name, peer_group) == 0)
				fx_die("the peer's own group sent to it");
			if (have == NULL || !entry_same(e, have) ||
			    e->signature.len != have->signature.len ||
			    memcmp(e->signature.data, have->signature.data, e->signature.len) != 0)
				fx_die("an entry sent that is not the one held");
		}
	}
	mm_xlink_asm_free(&a);
}

/* --- the server side -------------------------------------------------------------- */

enum mm_xlink_result fx_serve(struct fx_node *n, struct mm_xlink_srv *s, const char *arg,
                              struct mm_buf *out)
{
	uint8_t before[MM_DIGEST_LEN], after[MM_DIGEST_LEN];
	fx_digest(n, before);
	uint32_t took = n->took;
	size_t from = out->len;
	enum mm_xlink_result r = mm_xlink_srv_command(s, arg, out);
	fx_digest(n, after);
	if (memcmp(before, after, sizeof(before)) != 0 && n->took == took)
		fx_die("the table changed, and take reported nothing taken");
	struct fx_lines l;
	fx_check_lines(out->p + from, out->len - from, true, fx_base(n), fx_group_of(s->peer), &l);
	if (l.nlines == 0)
		fx_die("a command without a reply");
	if ((r == MM_XLINK_OK) != (l.code == 250) || (r == MM_XLINK_ERROR) != (l.code / 100 == 5) ||
	    (r == MM_XLINK_CLOSE) != (l.code == 421))
		fx_die("a reply whose code is not the result's");
	if (l.code != 250 && (s->in.open || s->in.data.len != 0 || s->differs))
		fx_die("an error that keeps a partial transfer or the exchange");
	if (s->in.data.len > s->in.limit)
		fx_die("a transfer over its limit kept");
	if (l.code == 250 && strncasecmp(arg, "DIGEST=", 7) == 0) {
		char hex[2 * MM_DIGEST_LEN + 1], want[128];
		mm_digest_hex(after, hex);
		bool equal = strcasecmp(arg + 7, hex) == 0;
		snprintf(want, sizeof(want), "2.0.0 X-LINK2STATE DIGEST=%s %s", hex,
		         equal ? "equal" : "differs");
		if (l.last_len != strlen(want) || memcmp(l.last, want, l.last_len) != 0)
			fx_die("a DIGEST answered otherwise than our digest says");
		if (equal != (l.x == NULL) ||
		    (l.x && (l.x->n_entries != 0 || l.x->n_summary != fx_base(n)->n)))
			fx_die("a DIGEST's answer without our summary, or with entries");
	} else if (l.x && l.x->n_summary != 0) {
		fx_die("the server's entries with a summary");
	}
	fx_lines_free(&l);
	return r;
}

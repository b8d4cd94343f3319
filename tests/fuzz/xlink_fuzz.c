/* libFuzzer target: X-LINK2STATE (DESIGN §5.2; node/core/xlink.h) -- the
 * chunk assembler, the server and the client machines, and the checks of
 * signed entries behind them (the node's take: fuzz_xnode.h).
 *
 * Input: one flags byte, then lines (split at LF; a CR before the LF is
 * dropped, as the SMTP machines do; a NUL ends what a machine sees of a
 * line, as it would a C string).
 *   flags bit 0  a transfer limit of 2,048 octets, else 64 KiB
 *         bit 1  the peer is a server the directory does not know (no
 *                group: nothing is held back as the peer's own)
 *         bit 2  the trust has no CRL (the revoked master's entries pass)
 * Every line goes
 *   1. to a chunk assembler alone, once an "NNN-"/"NNN " and an
 *      "X-LINK2STATE " prefix are taken off, checked against a model of
 *      its own: the same result for every line, the transfer it joins equal
 *      to the chunks' base64 decoded afresh, and after every error closed
 *      and empty (MS05-021: a chunk out of order appends to nothing);
 *   2. a reply line "NNN-text", "NNN text" or "NNN": to a client machine
 *      (started: its DIGEST sent), the text in a buffer of exactly its size
 *      (an overread is ASan's); any other line: to a server machine as a
 *      command (an "X-LINK2STATE " prefix taken off) when the line is
 *      within 1,024 octets with its CRLF (the SMTP server machine answers a
 *      longer one itself), until the server closed the session.
 * Server and client each have a node of their own (node SA1 of group GA;
 * the peer SB1 of GB) whose take is the member machine's against a trust
 * and a directory of a fixed seed (fuzz_pki.h). Checks, aborting:
 *   - every line either machine writes: CRLF, at most 1,024 octets, no
 *     control character, chunks that join into a transfer that decodes,
 *     of signed entries only, never the peer's group, each the one held;
 *   - nothing merged unless it passed mm_entry_check and an oracle that
 *     shares no code with entrysig.c; every entry judged as DESIGN §5.2
 *     says (fuzz_xnode.c);
 *   - a table's digest changes only when take reported an entry taken;
 *   - the server: after any reply but 250 its assembler closed and empty;
 *     a DIGEST answered "equal" exactly when it is ours; the reply's code
 *     the result's; a transfer over the limit never kept;
 *   - the client: once done or failed it stays so and writes nothing;
 *     after a failure its assembler closed and empty; a refusal is a
 *     failure; a reply that is not 2xx ends it;
 *   - the saved table is the member's base.
 *
 * Built with -DMM_XLINK_SEED it is the seed writer instead:
 *   xlink_seed DIR [SMTPDIR]
 * writes the seeds of tests/fuzz/corpus/xlink (and into SMTPDIR those of
 * tests/fuzz/corpus/smtp that reach X-LINK2STATE), each run here first
 * and checked against what it is meant to show (an exchange that takes
 * its entries, a hostile one that is refused). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "alloc.h"
#include "fuzz_xnode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_LIMIT 2048u
#define BIG_LIMIT   (64u << 10)
#define PRE         "X-LINK2STATE "
#define PRE_LEN     13
#define SERVER_MAX  (MM_XLINK_LINE_MAX - PRE_LEN - 2) /* an argument within the line */
#define TRACE_MAX   128

/* What a run did: the seed writer checks its seeds with it. */
struct outcome {
	char srv[TRACE_MAX + 1]; /* the server's results in order: O, E, C */
	uint32_t srv_took, cli_took;
	enum mm_xcli_state cli;
	bool cli_refused, cli_equal;
};

/* --- the assembler against a model ----------------------------------------------- */

struct model {
	bool open;
	struct mm_buf data;
	uint32_t chunks;
};

static int b64v(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* RFC 4648 base64, no line breaks, padding only at the end: the octets
 * into out (cap of them at most: -2 when more), -1 when it is not base64 */
static long b64(const char *s, size_t n, uint8_t *out, size_t cap)
{
	if (n == 0 || n % 4 != 0)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t w = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			bool end = i + 4 == n;
			if (s[i + k] == '=' && end && (k == 3 || (k == 2 && s[i + 3] == '='))) {
				pad++;
				w <<= 6;
				continue;
			}
			int v = b64v(s[i + k]);
			if (v < 0)
				return -1;
			w = w << 6 | (uint32_t)v;
		}
		if (o + (size_t)(3 - pad) > cap)
			return -2;
		for (int k = 0; k < 3 - pad; k++)
			out[o++] = (uint8_t)(w >> (16 - 8 * k));
	}
	return (long)o;
}

static bool kw(const char **p, const char *k)
{
	size_t n = strlen(k);
	if (strncasecmp(*p, k, n) != 0 || (*p)[n] != ' ')
		return false;
	*p += n + 1;
	return true;
}

/* The four forms of xlink.h: FIRST, NEXT, LAST, FIRST LAST; a chunk
 * carries what one line can (mm_base64_decode into 1,024 octets, its NUL
 * included) */
static void assemble(struct mm_xlink_asm *a, struct model *m, const char *arg)
{
	enum mm_xlink_chunk r = mm_xlink_asm_feed(a, arg);
	const char *p = arg;
	bool first = kw(&p, "FIRST"), last = kw(&p, "LAST");
	bool next = !first && !last && kw(&p, "NEXT");
	enum mm_xlink_chunk want, alt;
	uint8_t raw[MM_XLINK_LINE_MAX];
	long got = 0;
	if (strncasecmp(p, "CHUNK=", 6) != 0 || !(first || last || next)) {
		want = alt = MM_XCHUNK_SYNTAX;
	} else if (first && m->open) {
		want = alt = MM_XCHUNK_FIRST_AGAIN;
	} else if (!first && !m->open) {
		want = alt = MM_XCHUNK_NO_FIRST;
	} else {
		size_t n = strlen(p + 6), had = first ? 0 : m->data.len;
		got = b64(p + 6, n, raw, MM_XLINK_LINE_MAX - 1);
		if (got < 0) {
			/* which of the two comes first is the assembler's
			 * choice when both hold: a cheap size test first */
			want = alt = MM_XCHUNK_BAD_BASE64;
			if (n % 4 == 0 && had + n / 4 * 3 > a->limit)
				alt = MM_XCHUNK_TOO_BIG;
		} else if (had + (size_t)got > a->limit) {
			want = alt = MM_XCHUNK_TOO_BIG;
		} else {
			want = alt = last ? MM_XCHUNK_DONE : MM_XCHUNK_MORE;
		}
	}
	if (r != want && r != alt) {
		fprintf(stderr, "assembler: %d, want %d for \"%.80s\"\n", r, want, arg);
		fx_die("the assembler's result is not the model's");
	}
	if (r == MM_XCHUNK_MORE || r == MM_XCHUNK_DONE) {
		if (first) {
			mm_buf_reset(&m->data);
			m->chunks = 0;
		}
		mm_buf_add(&m->data, raw, (size_t)got);
		m->chunks++;
		m->open = r == MM_XCHUNK_MORE;
		if (a->data.len != m->data.len ||
		    (m->data.len && memcmp(a->data.p, m->data.p, m->data.len) != 0))
			fx_die("the assembler's transfer is not the chunks decoded");
		if (a->chunks != m->chunks)
			fx_die("the assembler miscounts chunks");
	} else {
		m->open = false;
		m->chunks = 0;
		mm_buf_reset(&m->data);
		if (a->data.len != 0)
			fx_die("an error that keeps a partial transfer");
	}
	if (a->open != m->open)
		fx_die("the assembler open when the model is not, or closed when it is open");
	if (a->data.len > a->limit)
		fx_die("the assembler over its limit");
}

/* --- the client ---------------------------------------------------------------------- */

/* Its commands since from: its DIGEST, or its transfer (summary and what
 * the peer lacks). */
static void check_commands(struct fx_node *n, const struct mm_xlink_cli *c,
                           const struct mm_buf *out, size_t from)
{
	struct fx_lines l;
	fx_check_lines(out->p + from, out->len - from, false, fx_base(n), fx_group_of(c->peer), &l);
	if (l.x && l.x->n_summary != fx_base(n)->n)
		fx_die("the client's transfer without its whole summary");
	if (l.nlines > 0 && l.nchunks == 0) {
		uint8_t d[MM_DIGEST_LEN];
		char want[2 * MM_DIGEST_LEN + 8];
		fx_digest(n, d);
		memcpy(want, "DIGEST=", 7);
		mm_digest_hex(d, want + 7);
		if (l.nlines != 1 || l.last_len != strlen(want) || memcmp(l.last, want, l.last_len))
			fx_die("the client's DIGEST is not its table's");
	}
	fx_lines_free(&l);
}

static void client_line(struct fx_node *n, struct mm_xlink_cli *c, struct mm_buf *out,
                        const char *line, size_t len)
{
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	bool more = len > 3 && line[3] == '-';
	size_t tn = len > 4 ? len - 4 : 0;
	/* exactly the text: reading past it is ASan's to see */
	char *text = mm_xmalloc(tn ? tn : 1);
	if (tn)
		memcpy(text, line + 4, tn);
	enum mm_xcli_state was = c->state;
	uint8_t before[MM_DIGEST_LEN], after[MM_DIGEST_LEN];
	fx_digest(n, before);
	uint32_t took = n->took;
	size_t from = out->len;
	enum mm_xcli_event ev = mm_xlink_cli_line(c, code, text, tn, more, out);
	free(text);
	fx_digest(n, after);
	if (memcmp(before, after, sizeof(before)) != 0 && n->took == took)
		fx_die("the client's table changed, and take reported nothing taken");
	bool over = c->state == MM_XCLI_DONE || c->state == MM_XCLI_FAILED;
	if ((ev == MM_XCLI_END) != over)
		fx_die("the client's event is not its state's");
	if ((was == MM_XCLI_DONE || was == MM_XCLI_FAILED) &&
	    (c->state != was || out->len != from || n->took != took))
		fx_die("the client went on after its end");
	if (was != MM_XCLI_DONE && was != MM_XCLI_FAILED && code / 100 != 2 &&
	    c->state != MM_XCLI_FAILED)
		fx_die("the client went on after a reply that is not 2xx");
	if (c->state == MM_XCLI_FAILED && (c->in.open || c->in.data.len != 0 || c->why[0] == '\0'))
		fx_die("a failed client with a partial transfer or no reason");
	if (c->refused && c->state != MM_XCLI_FAILED)
		fx_die("the client took a refusal for no failure");
	if (c->in.data.len > c->in.limit)
		fx_die("the client's transfer over its limit");
	for (const char *p = c->why; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			fx_die("a control character in the client's reason (it is logged)");
	check_commands(n, c, out, from);
	mm_buf_reset(out);
}

/* --- one input ------------------------------------------------------------------------ */

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

static void trace(struct outcome *o, enum mm_xlink_result r)
{
	size_t k = strlen(o->srv);
	if (k < TRACE_MAX)
		o->srv[k] = r == MM_XLINK_OK ? 'O' : r == MM_XLINK_ERROR ? 'E' : 'C';
}

static void run(const uint8_t *data, size_t size, struct outcome *o)
{
	uint8_t flags = 0;
	if (size > 0) {
		flags = data[0];
		data++;
		size--;
	}
	size_t limit = flags & 1 ? SMALL_LIMIT : BIG_LIMIT;
	bool crl = !(flags & 4);
	const char *peer = flags & 2 ? "SX9" : "SB1";
	struct mm_trust *trust = fpki_trust(&fx_org()->pki, crl);
	struct fx_node *sn = mm_xmalloc(sizeof(*sn)), *cn = mm_xmalloc(sizeof(*cn));
	fx_node_init(sn, trust, crl, limit, "SA1", NULL);
	fx_node_init(cn, trust, crl, limit, "SA1", NULL);
	struct mm_xlink_srv s;
	struct mm_xlink_cli c;
	mm_xlink_srv_init(&s, &sn->env, peer);
	mm_xlink_cli_init(&c, &cn->env, peer);
	struct mm_buf out = {0};
	mm_xlink_cli_start(&c, &out);
	check_commands(cn, &c, &out, 0);
	mm_buf_reset(&out);
	struct mm_xlink_asm a = {.limit = limit};
	struct model m = {0};
	bool closed = false;
	for (size_t off = 0; off < size;) {
		const char *p = (const char *)data + off, *nl = memchr(p, '\n', size - off);
		size_t len = nl ? (size_t)(nl - p) : size - off;
		off += len + (nl != NULL);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		const char *z = memchr(p, '\0', len);
		if (z)
			len = (size_t)(z - p);
		bool reply = len >= 3 && digit(p[0]) && digit(p[1]) && digit(p[2]) &&
		             (len == 3 || p[3] == '-' || p[3] == ' ');
		/* 1. the assembler alone */
		const char *q = p + (reply && len > 4 ? 4 : 0);
		size_t qn = len - (size_t)(q - p);
		if (qn >= PRE_LEN && strncasecmp(q, PRE, PRE_LEN) == 0)
			q += PRE_LEN, qn -= PRE_LEN;
		char *arg = mm_xstrndup(q, qn);
		assemble(&a, &m, arg);
		free(arg);
		/* 2. the client or the server */
		if (reply) {
			client_line(cn, &c, &out, p, len);
			continue;
		}
		q = p;
		qn = len;
		if (qn >= PRE_LEN && strncasecmp(q, PRE, PRE_LEN) == 0)
			q += PRE_LEN, qn -= PRE_LEN;
		if (closed || qn > SERVER_MAX)
			continue;
		arg = mm_xstrndup(q, qn);
		enum mm_xlink_result r = fx_serve(sn, &s, arg, &out);
		free(arg);
		mm_buf_reset(&out);
		closed = r == MM_XLINK_CLOSE;
		if (o)
			trace(o, r);
	}
	if (o) {
		o->srv_took = sn->took;
		o->cli_took = cn->took;
		o->cli = c.state;
		o->cli_refused = c.refused;
		o->cli_equal = c.equal;
	}
	mm_buf_free(&out);
	mm_buf_free(&m.data);
	mm_xlink_asm_free(&a);
	mm_xlink_cli_free(&c);
	mm_xlink_srv_free(&s);
	fx_node_free(sn);
	fx_node_free(cn);
	free(sn);
	free(cn);
	mm_trust_free(trust);
}

#ifndef MM_XLINK_SEED

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size, NULL);
	return 0;
}

#else /* MM_XLINK_SEED */

/* --- seeds ------------------------------------------------------------------------------ */

static void line(struct mm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct mm_buf *b, const char *fmt, ...)
{
	char s[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	mm_buf_adds(b, s);
	mm_buf_adds(b, "\n");
}

/* CRLF lines as the seed's LF lines */
static void add_lines(struct mm_buf *b, const struct mm_buf *crlf)
{
	for (size_t i = 0; i < crlf->len; i++)
		if (crlf->p[i] != '\r')
			mm_buf_add(b, crlf->p + i, 1);
}

static void chunks(struct mm_buf *b, const char *prefix, const uint8_t *x, size_t len)
{
	struct mm_buf c = {0};
	mm_xlink_chunks(&c, prefix, x, len);
	add_lines(b, &c);
	mm_buf_free(&c);
}

static const char zero[] = "0000000000000000000000000000000000000000000000000000000000000000";

/* A peer's client sending entries (and no summary) after a DIGEST that
 * differs: the server's side of a seed. */
static void to_server(struct mm_buf *b, mm_entry *const *e, size_t n)
{
	line(b, "X-LINK2STATE DIGEST=%s", zero);
	size_t len;
	uint8_t *x = mm_xlink_encode(NULL, (const mm_entry *const *)e, n, &len);
	chunks(b, "X-LINK2STATE ", x, len);
	free(x);
}

/* A peer's server answering our client with entries: its summary (of
 * fx_table's, so that our client sends nothing but its summary), a chunk
 * reply for each of our chunks but the last, then the entries. How many
 * chunks our client sends is found by running one. */
static void to_client(struct mm_buf *b, mm_entry *const *e, size_t n)
{
	struct mm_table t;
	fx_table(&t);
	size_t len;
	uint8_t *x = mm_xlink_encode(&t, NULL, 0, &len);
	struct mm_buf r = {0}, out = {0};
	mm_xlink_chunks(&r, "250-X-LINK2STATE ", x, len);
	/* a digest not ours, or the exchange would end "equal" */
	mm_buf_printf(&r, "250 2.0.0 X-LINK2STATE DIGEST=%s differs\r\n", zero);
	free(x);
	struct mm_trust *trust = fpki_trust(&fx_org()->pki, true);
	struct fx_node *cn = mm_xmalloc(sizeof(*cn));
	fx_node_init(cn, trust, true, BIG_LIMIT, "SA1", NULL);
	struct mm_xlink_cli c;
	mm_xlink_cli_init(&c, &cn->env, "SB1");
	mm_xlink_cli_start(&c, &out);
	mm_buf_reset(&out);
	for (size_t off = 0; off < r.len;) {
		const char *p = r.p + off, *nl = memchr(p, '\n', r.len - off);
		size_t k = (size_t)(nl - p) + 1;
		mm_xlink_cli_line(&c, atoi(p), p + 4, k - 6, p[3] == '-', &out);
		off += k;
	}
	size_t sent = 0;
	for (size_t i = 0; i < out.len; i++)
		sent += out.p[i] == '\n';
	if (c.state != MM_XCLI_CHUNKS || sent == 0)
		fx_die("seed: the client sent no transfer");
	add_lines(b, &r);
	for (size_t i = 1; i < sent; i++)
		line(b, "250 2.0.0 X-LINK2STATE chunk %zu, %zu octets", i, i * MM_XLINK_CHUNK_RAW);
	x = mm_xlink_encode(NULL, (const mm_entry *const *)e, n, &len);
	if (n)
		chunks(b, "250-X-LINK2STATE ", x, len);
	line(b, "250 2.0.0 X-LINK2STATE %zu taken, 0 dropped, %u sent", n, c.sent);
	free(x);
	mm_xlink_cli_free(&c);
	fx_node_free(cn);
	free(cn);
	mm_trust_free(trust);
	mm_buf_free(&r);
	mm_buf_free(&out);
	mm_table_free(&t);
}

/* Run the seed here, and check it shows what it is meant to: the server's
 * results (NULL: any), entries the server and the client took, the
 * client's end (-1: any). */
static void put(const char *dir, const char *name, struct mm_buf *b, const char *srv, int srv_took,
                int cli, int cli_took)
{
	struct outcome o = {0};
	run((const uint8_t *)b->p, b->len, &o);
	if ((srv && strcmp(o.srv, srv) != 0) ||
	    (srv_took >= 0 && o.srv_took != (uint32_t)srv_took) ||
	    (cli >= 0 && o.cli != (enum mm_xcli_state)cli) ||
	    (cli_took >= 0 && o.cli_took != (uint32_t)cli_took)) {
		fprintf(stderr,
		        "xlink_seed: %s: server %s took %u, client state %d took %u refused %d; "
		        "want %s %d, %d %d\n",
		        name, o.srv, o.srv_took, o.cli, o.cli_took, o.cli_refused, srv ? srv : "*",
		        srv_took, cli, cli_took);
		exit(1);
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	mm_buf_reset(b);
}

static void flags(struct mm_buf *b, uint8_t f)
{
	mm_buf_reset(b);
	mm_buf_add(b, &f, 1);
}

/* Lines a's machine writes to b's, one command (or reply) at a time, until
 * the client's exchange ends: cmds gets the commands as the server reads
 * them, replies the replies as the client does (LF lines). */
static void exchange(struct fx_node *a, struct fx_node *b, const char *a_name, const char *b_name,
                     struct mm_buf *cmds, struct mm_buf *replies)
{
	struct mm_xlink_cli c;
	struct mm_xlink_srv s;
	mm_xlink_cli_init(&c, &a->env, b_name);
	mm_xlink_srv_init(&s, &b->env, a_name);
	struct mm_buf out = {0}, rep = {0};
	mm_xlink_cli_start(&c, &out);
	enum mm_xcli_event ev = MM_XCLI_MORE;
	while (ev == MM_XCLI_MORE && out.len > 0) {
		struct mm_buf next = {0};
		for (size_t off = 0; off < out.len && ev == MM_XCLI_MORE;) {
			const char *p = out.p + off, *nl = memchr(p, '\n', out.len - off);
			size_t k = (size_t)(nl - p) + 1;
			mm_buf_add(cmds, p, k - 2);
			mm_buf_adds(cmds, "\n");
			char *arg = mm_xstrndup(p + PRE_LEN, k - 2 - PRE_LEN);
			mm_buf_reset(&rep);
			mm_xlink_srv_command(&s, arg, &rep);
			free(arg);
			off += k;
			for (size_t r = 0; r < rep.len && ev == MM_XCLI_MORE;) {
				const char *q = rep.p + r, *e = memchr(q, '\n', rep.len - r);
				size_t m = (size_t)(e - q) + 1;
				mm_buf_add(replies, q, m - 2);
				mm_buf_adds(replies, "\n");
				ev = mm_xlink_cli_line(&c, atoi(q), q + 4, m - 6, q[3] == '-',
				                       &next);
				r += m;
			}
		}
		mm_buf_free(&out);
		out = next;
	}
	if (c.state != MM_XCLI_DONE)
		fx_die("seed: the exchange failed");
	mm_buf_free(&out);
	mm_buf_free(&rep);
	mm_xlink_cli_free(&c);
	mm_xlink_srv_free(&s);
}

/* The peer SB1's table: GB and GD newer than fx_table's (signed by MB
 * and MD), GC only the directory's baseline. */
static void peer_table(struct mm_table *t)
{
	const struct fx_org *o = fx_org();
	mm_table_init(t);
	for (size_t i = 0; i < o->dir.n; i++)
		mm_table_merge(t, mm_entry_clone(o->dir.entries[i]));
	mm_table_merge(t, fx_entry("GA", 1, 1, o->ma));
	mm_table_merge(t, fx_entry("GB", 1, 3, o->mb));
	mm_table_merge(t, fx_entry("GD", 1, 1, o->md));
}

/* A hostile (or harmless) transfer of entries e, to the server and to the
 * client of one seed: the server's result for the last chunk (O, E, C),
 * what each takes, the client's end. */
static void one(const char *dir, const char *name, uint8_t f, mm_entry **e, size_t n, char last,
                int took, int cli)
{
	struct mm_buf b = {0};
	flags(&b, f);
	to_server(&b, e, n);
	/* every command answered 250 but the last chunk's */
	char srv[TRACE_MAX + 1] = "";
	size_t k = 0;
	for (size_t i = 1; i < b.len && k < TRACE_MAX; i++)
		if (b.p[i] == '\n')
			srv[k++] = 'O';
	srv[k - 1] = last;
	to_client(&b, e, n);
	put(dir, name, &b, srv, took, cli, took);
	for (size_t i = 0; i < n; i++)
		mm_entry_free(e[i]);
	mm_buf_free(&b);
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: xlink_seed DIR [SMTPDIR]\n");
		return 64;
	}
	const char *dir = argv[1];
	const struct fx_org *o = fx_org();
	struct mm_buf b = {0};

	/* a whole exchange both ways: the peer SB1 holds GB and GD newer
	 * (signed by MB and MD) and lacks GC; recorded between real
	 * machines: its client to our server, our client to its server */
	struct mm_trust *trust = fpki_trust(&o->pki, true);
	struct mm_table pt;
	struct fx_node *peer = mm_xmalloc(sizeof(*peer)), *us = mm_xmalloc(sizeof(*us));
	struct mm_buf cmds = {0}, replies = {0}, unused = {0};
	peer_table(&pt);
	fx_node_init(peer, trust, true, BIG_LIMIT, "SB1", &pt);
	fx_node_init(us, trust, true, BIG_LIMIT, "SA1", NULL);
	exchange(peer, us, "SB1", "SA1", &cmds, &unused);
	/* both afresh: each run of the target starts from fx_table */
	fx_node_free(us);
	fx_node_free(peer);
	peer_table(&pt);
	fx_node_init(peer, trust, true, BIG_LIMIT, "SB1", &pt);
	fx_node_init(us, trust, true, BIG_LIMIT, "SA1", NULL);
	exchange(us, peer, "SA1", "SB1", &unused, &replies);
	flags(&b, 0);
	mm_buf_add(&b, cmds.p, cmds.len);
	mm_buf_add(&b, replies.p, replies.len);
	struct mm_buf smtp = {0};
	mm_buf_add(&smtp, cmds.p, cmds.len); /* for the SMTP seed */
	put(dir, "exchange", &b, "OOO", 2, MM_XCLI_DONE, 2);
	/* the same with a peer the directory does not know, and with a
	 * transfer limit the exchange fits in */
	flags(&b, 2);
	mm_buf_add(&b, cmds.p, cmds.len);
	mm_buf_add(&b, replies.p, replies.len);
	put(dir, "exchange-unknown-peer", &b, "OOO", 2, -1, -1);
	fx_node_free(peer);
	fx_node_free(us);
	free(peer);
	free(us);
	mm_trust_free(trust);

	/* equal digests: one line each way */
	struct mm_table t;
	fx_table(&t);
	uint8_t d[MM_DIGEST_LEN];
	char hex[2 * MM_DIGEST_LEN + 1];
	mm_table_digest(&t, d);
	mm_digest_hex(d, hex);
	mm_table_free(&t);
	flags(&b, 0);
	line(&b, "X-LINK2STATE DIGEST=%s", hex);
	line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s equal", hex);
	put(dir, "equal", &b, "O", 0, MM_XCLI_DONE, 0);

	/* out of sequence (MS05-021): NEXT and LAST with no FIRST, the LAST
	 * carrying a whole transfer of a good entry; FIRST twice; a chunk
	 * before DIGEST, then the same properly */
	mm_entry *good = fx_entry("GC", 1, 4, o->mc);
	size_t len;
	uint8_t *x = mm_xlink_encode(NULL, (const mm_entry *const *)&good, 1, &len);
	struct mm_buf c1 = {0};
	mm_xlink_chunks(&c1, "", x, len);
	if (memchr(c1.p, '\n', c1.len) != c1.p + c1.len - 1)
		fx_die("seed: the good entry is more than a chunk");
	c1.len -= 2; /* "FIRST LAST CHUNK=...", no CRLF */
	mm_buf_add(&c1, "", 1);
	const char *b64 = strchr(c1.p, '=') + 1;
	flags(&b, 0);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	line(&b, "X-LINK2STATE NEXT CHUNK=%s", b64);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	line(&b, "X-LINK2STATE LAST CHUNK=%s", b64);
	line(&b, "250-X-LINK2STATE LAST CHUNK=%s", b64);
	line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s differs", zero);
	put(dir, "no-first", &b, "OEOE", 0, MM_XCLI_FAILED, 0);
	flags(&b, 0);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	line(&b, "X-LINK2STATE FIRST CHUNK=%s", b64);
	line(&b, "X-LINK2STATE FIRST CHUNK=%s", b64);
	line(&b, "X-LINK2STATE LAST CHUNK=QUJD");
	line(&b, "250-X-LINK2STATE FIRST CHUNK=%s", b64);
	line(&b, "250-X-LINK2STATE FIRST LAST CHUNK=%s", b64);
	line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s differs", zero);
	put(dir, "first-twice", &b, "OOEE", 0, MM_XCLI_FAILED, 0);
	flags(&b, 0);
	line(&b, "X-LINK2STATE %s", c1.p);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	line(&b, "X-LINK2STATE %s", c1.p);
	put(dir, "chunk-before-digest", &b, "EOO", 1, MM_XCLI_DIGEST, 0);
	/* bad base64, a transfer that does not decode, one over the limit
	 * (2,048 octets: three chunks of 735) */
	flags(&b, 0);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	line(&b, "X-LINK2STATE FIRST CHUNK=%s", b64);
	line(&b, "X-LINK2STATE LAST CHUNK=QU!D");
	line(&b, "250-X-LINK2STATE FIRST LAST CHUNK=QUJD=A==");
	line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s differs", zero);
	put(dir, "bad-base64", &b, "OOE", 0, MM_XCLI_FAILED, 0);
	flags(&b, 0);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	line(&b, "X-LINK2STATE FIRST LAST CHUNK=/////w==");
	line(&b, "250-X-LINK2STATE FIRST LAST CHUNK=/////w==");
	line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s differs", zero);
	put(dir, "undecodable", &b, "OE", 0, MM_XCLI_FAILED, 0);
	char big[4 * (MM_XLINK_CHUNK_RAW / 3) + 1];
	memset(big, 'Q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	flags(&b, 1);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	line(&b, "X-LINK2STATE FIRST CHUNK=%s", big);
	line(&b, "X-LINK2STATE NEXT CHUNK=%s", big);
	line(&b, "X-LINK2STATE LAST CHUNK=%s", big);
	line(&b, "250-X-LINK2STATE FIRST CHUNK=%s", big);
	line(&b, "250-X-LINK2STATE NEXT CHUNK=%s", big);
	line(&b, "250-X-LINK2STATE LAST CHUNK=%s", big);
	line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s differs", zero);
	put(dir, "over-size", &b, "OOOE", 0, MM_XCLI_FAILED, 0);
	/* at the limit exactly (taken in, then it does not decode: 554),
	 * and one octet over it: 735 + 735 + 578, or 579 (no padding: over
	 * only once decoded) */
	for (int over = 0; over < 2; over++) {
		uint8_t tail[600];
		char b64t[4 * sizeof(tail) / 3 + 4];
		memset(tail, 0x41, sizeof(tail));
		EVP_EncodeBlock((unsigned char *)b64t, tail, (int)(SMALL_LIMIT - 2 * 735 + over));
		flags(&b, 1);
		line(&b, "X-LINK2STATE DIGEST=%s", zero);
		line(&b, "X-LINK2STATE FIRST CHUNK=%s", big);
		line(&b, "X-LINK2STATE NEXT CHUNK=%s", big);
		line(&b, "X-LINK2STATE LAST CHUNK=%s", b64t);
		line(&b, "250-X-LINK2STATE FIRST CHUNK=%s", big);
		line(&b, "250-X-LINK2STATE NEXT CHUNK=%s", big);
		line(&b, "250-X-LINK2STATE LAST CHUNK=%s", b64t);
		line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s differs", zero);
		put(dir, over ? "limit-plus-one" : "limit-exact", &b, "OOOE", 0, MM_XCLI_FAILED, 0);
	}
	/* a chunk as a reply's last line */
	flags(&b, 0);
	line(&b, "250 X-LINK2STATE FIRST LAST CHUNK=QUJD");
	put(dir, "chunk-last-line", &b, "", 0, MM_XCLI_FAILED, 0);
	/* the same at the real limit, 64 KiB: the 90th chunk of 735 is over
	 * (a seed of 180 KB: written and replayed by ctest, not kept) */
	char trace[TRACE_MAX + 1];
	memset(trace, 'O', 90);
	trace[90] = 'E';
	trace[91] = '\0';
	flags(&b, 0);
	line(&b, "X-LINK2STATE DIGEST=%s", zero);
	for (int i = 0; i < 90; i++)
		line(&b, "X-LINK2STATE %sCHUNK=%s",
		     i == 0    ? "FIRST "
		     : i == 89 ? "LAST "
		               : "NEXT ",
		     big);
	for (int i = 0; i < 90; i++)
		line(&b, "250-X-LINK2STATE %sCHUNK=%s",
		     i == 0    ? "FIRST "
		     : i == 89 ? "LAST "
		               : "NEXT ",
		     big);
	line(&b, "250 2.0.0 X-LINK2STATE DIGEST=%s differs", zero);
	put(dir, "over-size-64k", &b, trace, 0, MM_XCLI_FAILED, 0);
	free(x);
	mm_buf_free(&c1);
	mm_entry_free(good);

	/* entries, one seed each: what a receiver must refuse (421 4.7.0 on
	 * the server, a refusal on the client), drop, or take; a revoked or
	 * another group's master's entry is dropped and the session goes on
	 * (a peer with another CRL or directory relays it in good faith) */
	mm_entry *e[2];
	e[0] = fx_entry("GB", 1, 5, o->mb);
	e[0]->version->major = 6; /* after signing: the content changed */
	one(dir, "bad-signature", 0, e, 1, 'C', 0, MM_XCLI_FAILED);
	e[0] = fx_entry("GB", 1, 5, o->mc);
	one(dir, "wrong-group", 0, e, 1, 'O', 0, MM_XCLI_DONE);
	e[0] = fx_entry("GB", 1, 5, o->server_mb);
	one(dir, "server-key", 0, e, 1, 'C', 0, MM_XCLI_FAILED);
	e[0] = fx_entry("GB", 1, 5, o->stranger_mb);
	one(dir, "stranger-ca", 0, e, 1, 'C', 0, MM_XCLI_FAILED);
	e[0] = fx_entry("GD", 1, 5, o->rd);
	one(dir, "revoked", 0, e, 1, 'O', 0, MM_XCLI_DONE);
	e[0] = fx_entry("GD", 1, 5, o->rd);
	one(dir, "revoked-no-crl", 4, e, 1, 'O', 1, MM_XCLI_DONE);
	e[0] = fx_entry("GB", 1, 5, NULL);
	one(dir, "unsigned", 0, e, 1, 'C', 0, MM_XCLI_FAILED);
	e[0] = fx_entry("GB", 1, 5, NULL);
	e[0]->signature.data = mm_xcalloc(1, 64);
	e[0]->signature.len = 64;
	e[0]->signer.data = mm_xmalloc(200);
	memset(e[0]->signer.data, 0x30, 200);
	e[0]->signer.len = 200;
	one(dir, "garbage-signer", 0, e, 1, 'C', 0, MM_XCLI_FAILED);
	/* the master's certificate, and an octet after it */
	e[0] = fx_entry("GB", 1, 5, o->mb);
	e[0]->signer.data = mm_xrealloc(e[0]->signer.data, e[0]->signer.len + 1, 1);
	e[0]->signer.data[e[0]->signer.len++] = 0;
	one(dir, "signer-trailing", 0, e, 1, 'C', 0, MM_XCLI_FAILED);
	e[0] = fx_entry("GA", 1, 5, o->ma);
	one(dir, "own-group", 0, e, 1, 'O', 0, MM_XCLI_DONE);
	e[0] = fx_entry("GB", 1, 0, o->mb);
	one(dir, "stale", 0, e, 1, 'O', 0, MM_XCLI_DONE);
	e[0] = fx_entry("GZ", 1, 5, o->mb);
	one(dir, "unknown-group", 0, e, 1, 'O', 0, MM_XCLI_DONE);
	e[0] = fx_entry("GB", 1, 1, o->mb);
	e[0]->servers[0]->down = true; /* the same version, other content */
	fpki_sign(o->mb, e[0]);
	one(dir, "conflict", 0, e, 1, 'O', 1, MM_XCLI_DONE);
	/* a good entry, then a forged one: the good one merged, the session
	 * ended */
	e[0] = fx_entry("GC", 1, 4, o->mc);
	e[1] = fx_entry("GB", 1, 5, o->mb);
	e[1]->version->major = 6; /* after signing */
	one(dir, "good-then-forged", 0, e, 2, 'C', 1, MM_XCLI_FAILED);

	/* SMTP: EHLO, AUTH EXTERNAL, the peer's side of the exchange */
	if (argc == 3) {
		static const uint8_t head[9] = {3, 255, 255, 255, 255, 255, 255, 255, 255};
		struct mm_buf s = {0};
		mm_buf_add(&s, head, sizeof(head));
		mm_buf_adds(&s, "EHLO sb1.fuzz.test\r\nAUTH EXTERNAL =\r\n");
		for (size_t i = 0; i < smtp.len; i++) {
			if (smtp.p[i] == '\n')
				mm_buf_add(&s, "\r", 1);
			mm_buf_add(&s, smtp.p + i, 1);
		}
		mm_buf_adds(&s, "QUIT\r\n");
		char path[4096];
		snprintf(path, sizeof(path), "%s/xlink-exchange", argv[2]);
		FILE *f = fopen(path, "wb");
		if (f == NULL || fwrite(s.p, 1, s.len, f) != s.len || fclose(f) != 0) {
			perror(path);
			return 1;
		}
		mm_buf_free(&s);
	}
	mm_buf_free(&smtp);
	mm_buf_free(&cmds);
	mm_buf_free(&replies);
	mm_buf_free(&unused);
	mm_buf_free(&b);
	return 0;
}

#endif

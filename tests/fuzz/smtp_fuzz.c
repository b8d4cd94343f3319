/* libFuzzer target: SMTP bytes from the network, both ways.
 *
 * Input: one flags byte, eight piece sizes, then the bytes. Every stream
 * is fed in pieces of those sizes (cycled), so a CR whose LF comes in the
 * next read, a dot line cut in two, a BDAT chunk split anywhere are the
 * fuzzer's choice. An input shorter than the header is all bytes.
 *
 *   flags bit 0  the session starts with TLS active (mm_smtpd_tls_started):
 *                AUTH PLAIN/LOGIN/EXTERNAL and their base64 are reachable
 *         bit 1  AUTH EXTERNAL succeeds (then, with bit 0, X-LINK2STATE
 *                reaches its parser; without, it is answered 530)
 *         bit 2  the queue answers 451 instead of 250
 *
 * 1. The server machine reads the bytes as commands (with an auth hook, a
 *    recipient hook that canonicalizes in place, and an X-LINK2STATE hook
 *    that runs the real server side, mm_xlink_srv, of a node whose take is
 *    the member machine's with the checks of signed entries: fuzz_xnode.h,
 *    whose fx_serve checks every X-LINK2STATE reply and take); what it
 *    sends and what it submits is checked: replies have no control
 *    character but their CRLF and no line over 1,024 octets, a body has
 *    CRLF line ends only and no line over 1,000 octets, the envelope has no
 *    control character and no recipient twice; the X-LINK2STATE hook is
 *    called only under TLS after AUTH EXTERNAL, outside a transaction, for
 *    a line within 1,024 octets (DESIGN §5.2's order of checks).
 * 2. The client machine reads the bytes as a next hop's replies, relaying
 *    the bytes as a body; its output has CRLF line ends only.
 * 3. Round trip: the bytes as a body go through the client (DATA with
 *    dot-stuffing, and BDAT) into the server, the server's BDAT also in
 *    chunks cut at the piece sizes. The server must submit exactly one
 *    message whose body is the bytes with every line end made CRLF (or
 *    refuse a long line with 500 5.5.6): nothing smuggled, nothing lost.
 * 4. The command parsers on the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fuzz_xnode.h"
#include "smtp_client.h"
#include "smtp_parse.h"
#include "smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 9
#define NPIECE 8

struct input {
	uint8_t flags;
	uint8_t piece[NPIECE];
	const char *p;
	size_t n;
};

struct ctx {
	const struct input *in;
	int submitted;
	struct mm_buf body; /* the last body submitted */
	size_t nrcpt;
	/* X-LINK2STATE: the server machine, and the node behind the hook
	 * (made at the session's first X-LINK2STATE that passes) */
	const struct mm_smtpd *s;
	struct mm_trust *trust;
	struct fx_node *xn;
	struct mm_xlink_srv xs;
};

static void die(const char *what)
{
	fprintf(stderr, "smtp_fuzz: %s\n", what);
	abort();
}

static bool control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Every CR is followed by LF and every LF preceded by CR. */
static bool crlf_only(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
			return false;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return false;
	}
	return true;
}

/* RFC 5321 §4.5.3.1.6: a text line is at most 1,000 octets with its CRLF;
 * a last line without one gets it on the way out. */
static bool long_line(const char *p, size_t n)
{
	size_t line = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
			if (line + 2 > MM_SMTP_TEXT_MAX)
				return true;
			line = 0;
			i++;
		} else {
			line++;
		}
	}
	return line + 2 > MM_SMTP_TEXT_MAX;
}

/* The reference: every line end CRLF (RFC 5321 §2.3.8: a bare CR or LF is
 * none, and the machines store one as CRLF). */
static void canonical(struct mm_buf *out, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' || p[i] == '\n') {
			if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
			mm_buf_add(out, "\r\n", 2);
		} else {
			mm_buf_add(out, p + i, 1);
		}
	}
}

static const char *rcpt(void *c, const struct mm_envelope *env, struct mm_rcpt_args *r)
{
	(void)c, (void)env;
	/* the node's canonical form: lower case */
	for (char *p = r->addr; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return r->addr[0] == 'x' ? "550 5.1.1 <x\r\n>: no" : NULL;
}

static void check_envelope(const struct mm_envelope *env)
{
	for (const char *p = env->helo; *p; p++)
		if (control((unsigned char)*p))
			die("control character in the HELO name");
	for (const char *p = env->mail.envid; *p; p++)
		if (*p < 33 || *p > 126)
			die("ENVID is not xtext");
	for (size_t i = 0; i < env->nrcpt; i++) {
		for (const char *p = env->rcpt[i].orcpt; *p; p++)
			if (*p < 33 || *p > 126)
				die("ORCPT has a character that is not xtext");
		for (size_t k = 0; k < i; k++)
			if (strcmp(env->rcpt[i].addr, env->rcpt[k].addr) == 0)
				die("a recipient twice in the envelope");
	}
}

static void submit(void *c, const struct mm_envelope *env, const struct mm_buf *body)
{
	struct ctx *x = c;
	x->submitted++;
	x->nrcpt = env->nrcpt;
	mm_buf_reset(&x->body);
	mm_buf_add(&x->body, body->p ? body->p : "", body->len);
	if (!crlf_only(x->body.p, x->body.len))
		die("a bare CR or LF in a submitted body");
	if (long_line(x->body.p, x->body.len))
		die("a line over 1,000 octets in a submitted body");
	check_envelope(env);
}

static bool auth(void *c, const char *mech, const char *user, const char *pass)
{
	struct ctx *x = c;
	for (const char *p = user; *p; p++)
		if (control((unsigned char)*p))
			die("a control character in an AUTH user name");
	if (pass == NULL)
		return x->in->flags & 2;
	return strcmp(mech, "LOGIN") == 0 ? strcmp(user, pass) == 0 : user[0] == 'u';
}

/* The X-LINK2STATE hook: a node SA1 of group GA whose peer is SB1 (what
 * the certificate of AUTH EXTERNAL would name), a transfer limit of 64 KiB. */
static enum mm_xlink_result xlink(void *c, const char *arg, struct mm_buf *out)
{
	struct ctx *x = c;
	const struct mm_smtpd *s = x->s;
	if (!s->tls_active || !s->authenticated || strcmp(s->auth_mech, "EXTERNAL") != 0)
		die("X-LINK2STATE reached without TLS and AUTH EXTERNAL");
	if (s->state == MM_SMTPD_MAIL)
		die("X-LINK2STATE reached inside a mail transaction");
	/* "X-LINK2STATE " and the argument, within the line and its LF */
	if (strlen(arg) + 13 > MM_XLINK_LINE_MAX - 1)
		die("X-LINK2STATE reached with a line over 1,024 octets");
	if (x->xn == NULL) {
		x->trust = fpki_trust(&fx_org()->pki, true);
		x->xn = mm_xmalloc(sizeof(*x->xn));
		fx_node_init(x->xn, x->trust, true, 64u << 10, "SA1", NULL);
		mm_xlink_srv_init(&x->xs, &x->xn->env, "SB1");
	}
	return fx_serve(x->xn, &x->xs, arg, out);
}

static void xlink_free(struct ctx *x)
{
	if (x->xn == NULL)
		return;
	mm_xlink_srv_free(&x->xs);
	fx_node_free(x->xn);
	free(x->xn);
	mm_trust_free(x->trust);
	x->xn = NULL;
}

/* Replies: CRLF-terminated lines without control characters, none over
 * 1,024 octets (X-LINK2STATE's; every other reply is shorter). */
static void check_replies(const struct mm_buf *out)
{
	size_t line = 0;
	for (size_t i = 0; i < out->len; i++) {
		unsigned char c = (unsigned char)out->p[i];
		if (c == '\r' && i + 1 < out->len && out->p[i + 1] == '\n') {
			if (line + 2 > MM_XLINK_LINE_MAX)
				die("a reply line over 1,024 octets");
			line = 0;
			i++;
		} else if (control(c)) {
			die("a control character in a reply");
		} else {
			line++;
		}
	}
	if (out->len > 0 && out->p[out->len - 1] != '\n')
		die("a reply without its CRLF");
}

static size_t piece(const struct input *in, size_t k)
{
	return (size_t)in->piece[k % NPIECE] + 1;
}

/* Feed p to the server in pieces, answering submits and the TLS handshake
 * as the node would. */
static void serve(struct mm_smtpd *s, struct ctx *x, const char *p, size_t n)
{
	size_t k = 0;
	for (size_t off = 0; off < n;) {
		size_t step = piece(x->in, k++);
		size_t m = n - off < step ? n - off : step;
		mm_smtpd_feed(s, p + off, m);
		off += m;
		for (int guard = 0; guard < 1000; guard++) {
			if (s->state == MM_SMTPD_TLS) {
				mm_smtpd_tls_started(s, true);
			} else if (s->state == MM_SMTPD_WAIT) {
				mm_smtpd_done(s,
				              x->in->flags & 4 ? "451 4.3.0 a\rb" : "250 2.0.0 Ok");
			} else {
				break;
			}
		}
		check_replies(&s->out);
		check_envelope(&s->env);
		mm_buf_reset(&s->out);
	}
}

static void server_session(const struct input *in)
{
	static const struct mm_smtpd_conf conf = {.fqdn = "fuzz.test",
	                                          .max_size = 4096,
	                                          .max_rcpts = 50,
	                                          .max_hops = 15,
	                                          .max_errors = 1000,
	                                          .starttls = true};
	static const struct mm_smtpd_ops ops = {
	    .rcpt = rcpt, .submit = submit, .auth = auth, .xlink = xlink};
	struct ctx x = {.in = in};
	struct mm_smtpd s;
	mm_smtpd_init(&s, &conf, &ops, &x);
	x.s = &s;
	mm_smtpd_start(&s);
	if (in->flags & 1)
		mm_smtpd_tls_started(&s, true);
	serve(&s, &x, in->p, in->n);
	mm_smtpd_abort(&s, "421 4.3.2 bye");
	check_replies(&s.out);
	mm_smtpd_free(&s);
	mm_buf_free(&x.body);
	xlink_free(&x);
}

static void client_session(const struct input *in)
{
	struct mm_smtpc c;
	const char *rcpts[] = {"a@b.test", "c@d.test"};
	const char *orcpt[] = {"rfc822;a@b.test", ""};
	const uint8_t notify[] = {MM_NOTIFY_FAILURE, 0};
	struct mm_smtpc_result res[2] = {{0}};
	struct mm_smtpc_job job = {.sender = "s@e.test",
	                           .nrcpt = 2,
	                           .rcpt = rcpts,
	                           .body = in->p,
	                           .len = in->n,
	                           .envid = "id+2B1",
	                           .notify = notify,
	                           .orcpt = orcpt,
	                           .res = res};
	mm_smtpc_init(&c, "fuzz.test");
	c.tls_want = in->flags & 3;
	size_t k = 0;
	for (size_t off = 0; off < in->n;) {
		size_t step = piece(in, k++);
		size_t m = in->n - off < step ? in->n - off : step;
		enum mm_smtpc_event ev = mm_smtpc_feed(&c, in->p + off, m);
		off += m;
		if (ev == MM_SMTPC_TLS)
			mm_smtpc_tls_started(&c);
		if (ev == MM_SMTPC_READY || ev == MM_SMTPC_JOB_DONE)
			mm_smtpc_send(&c, &job);
		if (!crlf_only(c.out.p, c.out.len))
			die("a bare CR or LF sent to the next hop");
		for (int i = 0; i < 2; i++)
			for (const char *p = res[i].text; *p; p++)
				if (control((unsigned char)*p))
					die("a control character kept of a reply");
		mm_buf_reset(&c.out);
	}
	mm_smtpc_free(&c);
}

/* What the client sends for body, to a next hop that offers CHUNKING or
 * not, one command at a time. */
static void client_sends(const char *body, size_t n, bool chunking, struct mm_buf *wire)
{
	const char *rcpts[] = {"a@b.test"};
	struct mm_smtpc_result res[1];
	struct mm_smtpc_job job = {
	    .sender = "s@e.test", .nrcpt = 1, .rcpt = rcpts, .body = body, .len = n, .res = res};
	struct mm_smtpc c;
	mm_smtpc_init(&c, "fuzz.test");
	mm_smtpc_feed(&c, "220 x\r\n", 7);
	const char *ehlo = chunking ? "250-x\r\n250 CHUNKING\r\n" : "250 x\r\n";
	if (mm_smtpc_feed(&c, ehlo, strlen(ehlo)) != MM_SMTPC_READY)
		die("client not ready after EHLO");
	mm_smtpc_send(&c, &job);
	mm_smtpc_feed(&c, "250 ok\r\n", 8); /* MAIL */
	mm_buf_reset(&c.out);
	mm_smtpc_feed(&c, "250 ok\r\n", 8); /* RCPT: then BDAT and the body, or DATA */
	if (!chunking) {
		mm_buf_reset(&c.out);
		mm_smtpc_feed(&c, "354 go\r\n", 8);
	}
	mm_buf_add(wire, c.out.p ? c.out.p : "", c.out.len);
	mm_smtpc_free(&c);
}

/* The server's view of what the client sent: exactly one message, the
 * body made canonical, or none for a long line or a NUL. */
static void receive(const struct input *in, const char *start, const struct mm_buf *wire,
                    const struct mm_buf *want, const char *how)
{
	static const struct mm_smtpd_conf conf = {.fqdn = "fuzz.test",
	                                          .max_size = 0,
	                                          .max_rcpts = 5,
	                                          .max_hops = UINT32_MAX,
	                                          .max_errors = 1000};
	static const struct mm_smtpd_ops ops = {.rcpt = rcpt, .submit = submit};
	struct ctx x = {.in = in};
	struct mm_smtpd s;
	mm_smtpd_init(&s, &conf, &ops, &x);
	serve(&s, &x, start, strlen(start));
	serve(&s, &x, wire->p ? wire->p : "", wire->len);
	serve(&s, &x, "QUIT\r\n", 6);
	/* a long line is 500 5.5.6, a NUL octet 554 5.6.0 */
	bool refused = long_line(want->p ? want->p : "", want->len) ||
	               (want->len > 0 && memchr(want->p, '\0', want->len) != NULL);
	if (refused && x.submitted != 0) {
		fprintf(stderr, "%s: a long line or a NUL accepted\n", how);
		abort();
	}
	if (!refused && x.submitted != 1) {
		fprintf(stderr, "%s: %d messages, want 1\n", how, x.submitted);
		abort();
	}
	if (!refused && (x.body.len != want->len ||
	                 (want->len > 0 && memcmp(x.body.p, want->p, want->len) != 0))) {
		fprintf(stderr, "%s: the body changed on the way\n", how);
		abort();
	}
	if (s.state != MM_SMTPD_CLOSED) {
		fprintf(stderr, "%s: the session did not end at QUIT\n", how);
		abort();
	}
	mm_smtpd_free(&s);
	mm_buf_free(&x.body);
}

static void round_trip(const struct input *in)
{
	const char *body = in->p;
	size_t n = in->n;
	struct mm_buf want = {0}, wire = {0};
	canonical(&want, body, n);

	/* DATA: the client dot-stuffs, a last line without a line end gets one */
	if (n > 0 && body[n - 1] != '\r' && body[n - 1] != '\n')
		mm_buf_add(&want, "\r\n", 2);
	client_sends(body, n, false, &wire);
	receive(in, "HELO c\r\nMAIL FROM:<s@e.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\n", &wire,
	        &want, "DATA");

	/* BDAT as the client sends it: one chunk of the canonical body */
	mm_buf_reset(&want);
	canonical(&want, body, n);
	mm_buf_reset(&wire);
	client_sends(body, n, true, &wire);
	const char *chunk = wire.p ? strstr(wire.p, "BDAT ") : NULL;
	if (chunk == NULL || strtoull(chunk + 5, NULL, 10) != want.len)
		die("BDAT announces another size than it sends");
	receive(in, "EHLO c\r\nMAIL FROM:<s@e.test>\r\nRCPT TO:<a@b.test>\r\n", &wire, &want,
	        "BDAT from the client");

	/* BDAT of the raw bytes in chunks cut at the piece sizes: a CR at the
	 * end of one chunk and its LF at the start of the next is one CRLF */
	mm_buf_reset(&wire);
	mm_buf_adds(&wire, "RCPT TO:<a@b.test>\r\n");
	size_t k = 0;
	for (size_t off = 0; off < n || off == 0;) {
		size_t step = piece(in, k) * (in->piece[(k + 3) % NPIECE] % 8 + 1);
		k++;
		size_t m = n - off < step ? n - off : step;
		mm_buf_printf(&wire, "BDAT %zu%s\r\n", m, off + m == n ? " LAST" : "");
		mm_buf_add(&wire, body + off, m);
		off += m;
		if (off == n)
			break;
	}
	receive(in, "EHLO c\r\nMAIL FROM:<s@e.test>\r\n", &wire, &want, "BDAT in chunks");
	mm_buf_free(&want);
	mm_buf_free(&wire);
}

static void parsers(const uint8_t *data, size_t size)
{
	char line[MM_SMTP_CMD_MAX + 1];
	size_t n = size < MM_SMTP_CMD_MAX ? size : MM_SMTP_CMD_MAX;
	memcpy(line, data, n);
	line[n] = '\0';
	struct mm_mail_args m;
	struct mm_rcpt_args r;
	uint64_t bsize;
	bool last;
	if (mm_smtp_parse_mail(line, &m) == NULL)
		for (const char *p = m.envid; *p; p++)
			if (*p < 33 || *p > 126)
				die("parse_mail: ENVID is not xtext");
	if (mm_smtp_parse_rcpt(line, &r) == NULL)
		for (const char *p = r.orcpt; *p; p++)
			if (*p < 33 || *p > 126)
				die("parse_rcpt: ORCPT is not xtext");
	mm_smtp_parse_bdat(line, &bsize, &last);
	unsigned char raw[MM_SMTP_CMD_MAX];
	mm_base64_decode(line, n, raw, sizeof(raw));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {.p = (const char *)data, .n = size};
	memset(in.piece, 0xff, sizeof(in.piece));
	if (size >= HEADER) {
		in.flags = data[0];
		memcpy(in.piece, data + 1, NPIECE);
		in.p += HEADER;
		in.n -= HEADER;
	}
	server_session(&in);
	client_session(&in);
	if (in.n <= 8192)
		round_trip(&in);
	parsers((const uint8_t *)in.p, in.n);
	return 0;
}

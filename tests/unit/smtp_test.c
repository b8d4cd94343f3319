/* Unit tests of the SMTP machines against hostile input.
 *
 * Each test names, in a comment, the mutation of the machine it was seen to
 * fail with (the code broken on purpose once, then restored). The server
 * runs against a fake ops struct that counts submits and keeps the bytes
 * submitted; transcripts are also fed in pieces (split at every point, and
 * one byte at a time) and must come out the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_client.h"
#include "smtp_parse.h"
#include "smtp_server.h"

/* --- the fake node ------------------------------------------------------- */

#define FAKE_RCPTS 8

struct fake {
	int submits;
	struct mm_buf body;    /* the last body submitted */
	struct mm_buf replies; /* every reply, CRLF as "|" */
	size_t nrcpt;          /* of the last envelope submitted */
	char rcpt[FAKE_RCPTS][MM_SMTP_PATH_MAX + 1];
	int auths;              /* calls of ops->auth */
	const char *rcpt_reply; /* what the rcpt callback refuses with */
};

/* Canonicalizes in place (lower case, as the node does for a directory
 * recipient); refuses local parts starting with "unknown". */
static const char *fake_rcpt(void *ctx, const struct mm_envelope *env, struct mm_rcpt_args *r)
{
	struct fake *f = ctx;
	(void)env;
	for (char *p = r->addr; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (strncmp(r->addr, "unknown", 7) == 0)
		return f->rcpt_reply ? f->rcpt_reply : "550 5.1.1 unknown";
	return NULL;
}

static void fake_submit(void *ctx, const struct mm_envelope *env, const struct mm_buf *body)
{
	struct fake *f = ctx;
	f->submits++;
	mm_buf_reset(&f->body);
	mm_buf_add(&f->body, body->p ? body->p : "", body->len);
	f->nrcpt = env->nrcpt;
	for (size_t i = 0; i < env->nrcpt && i < FAKE_RCPTS; i++)
		snprintf(f->rcpt[i], sizeof(f->rcpt[i]), "%s", env->rcpt[i].addr);
}

static bool fake_auth(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct fake *f = ctx;
	f->auths++;
	return strcmp(mech, "PLAIN") == 0 && strcmp(user, "alice") == 0 && pass != NULL &&
	       strcmp(pass, "pw") == 0;
}

static const struct mm_smtpd_conf conf = {
    .fqdn = "mx.test", .max_size = 100000, .max_rcpts = 3, .max_hops = 15, .max_errors = 100};
static const struct mm_smtpd_ops ops = {
    .rcpt = fake_rcpt, .submit = fake_submit, .auth = fake_auth};

/* Bytes in a failure message: CR, LF and control characters visible. */
static const char *show(const char *p, size_t n, char *out, size_t outlen)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 5 < outlen; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r')
			k += (size_t)snprintf(out + k, outlen - k, "\\r");
		else if (c == '\n')
			k += (size_t)snprintf(out + k, outlen - k, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			k += (size_t)snprintf(out + k, outlen - k, "\\x%02x", c);
		else
			out[k++] = (char)c;
	}
	out[k] = '\0';
	return out;
}

/* Move the machine's output into f->replies, CRLF as "|". */
static void collect(struct mm_smtpd *s, struct fake *f)
{
	for (size_t i = 0; i < s->out.len; i++) {
		char c = s->out.p[i];
		if (c == '\r' && i + 1 < s->out.len && s->out.p[i + 1] == '\n')
			continue;
		mm_buf_add(&f->replies, c == '\n' ? "|" : &c, 1);
	}
	mm_buf_reset(&s->out);
}

/* Feed one piece; answer every submit as the node does once the message is
 * durable, which lets the machine go on with pipelined input (where a
 * smuggled command would run). */
static void feed(struct mm_smtpd *s, struct fake *f, const char *p, size_t n)
{
	mm_smtpd_feed(s, p, n);
	while (s->state == MM_SMTPD_WAIT)
		mm_smtpd_done(s, "250 2.0.0 Ok: queued");
	collect(s, f);
}

/* A whole session on a fresh machine: in fed in pieces of `piece` octets
 * (0: at once), or in two pieces cut at `cut` when piece is SIZE_MAX. */
static void session(struct fake *f, bool tls, const char *in, size_t n, size_t piece, size_t cut)
{
	mm_buf_free(&f->body);
	mm_buf_free(&f->replies);
	*f = (struct fake){.rcpt_reply = f->rcpt_reply};
	struct mm_smtpd s;
	mm_smtpd_init(&s, &conf, &ops, f);
	if (tls)
		mm_smtpd_tls_started(&s);
	if (piece == SIZE_MAX) {
		feed(&s, f, in, cut);
		feed(&s, f, in + cut, n - cut);
	} else if (piece == 0) {
		feed(&s, f, in, n);
	} else {
		for (size_t off = 0; off < n; off += piece)
			feed(&s, f, in + off, n - off < piece ? n - off : piece);
	}
	mm_buf_add(&f->replies, "", 0); /* NUL-terminated even when empty */
	mm_smtpd_free(&s);
}

static void fake_free(struct fake *f)
{
	mm_buf_free(&f->body);
	mm_buf_free(&f->replies);
}

/* --- duplicate recipients ------------------------------------------------ */

/* Mutation seen failing: the loop over env.rcpt in rcpt() removed (the
 * envelope then holds a@x.test three times and the limit of 3 refuses c). */
static void test_rcpt_duplicates(void **state)
{
	(void)state;
	static const struct {
		const char *rcpts;   /* RCPT arguments, "|" between them */
		const char *replies; /* want, one per RCPT */
		const char *want[FAKE_RCPTS];
	} rows[] = {
	    {"<a@x.test>|<a@x.test>", "250 2.1.5 Ok|250 2.1.5 Ok|", {"a@x.test"}},
	    /* the callback lower-cases: the same recipient */
	    {"<a@x.test>|<A@X.Test>|<b@x.test>",
	     "250 2.1.5 Ok|250 2.1.5 Ok|250 2.1.5 Ok|",
	     {"a@x.test", "b@x.test"}},
	    /* a duplicate is not a new recipient: it does not meet the limit (3) */
	    {"<a@x.test>|<b@x.test>|<a@x.test>|<A@x.test>|<c@x.test>|<d@x.test>",
	     "250 2.1.5 Ok|250 2.1.5 Ok|250 2.1.5 Ok|250 2.1.5 Ok|250 2.1.5 Ok|"
	     "452 4.5.3 Too many recipients|",
	     {"a@x.test", "b@x.test", "c@x.test"}},
	    /* refused ones are not kept, so not duplicates either */
	    {"<unknown@x.test>|<unknown@x.test>|<a@x.test>",
	     "550 5.1.1 unknown|550 5.1.1 unknown|250 2.1.5 Ok|",
	     {"a@x.test"}},
	    /* the parameters of the first one stay */
	    {"<a@x.test> NOTIFY=NEVER|<a@x.test> NOTIFY=FAILURE",
	     "250 2.1.5 Ok|250 2.1.5 Ok|",
	     {"a@x.test"}},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char in[2048];
		size_t n = (size_t)snprintf(in, sizeof(in), "HELO c\r\nMAIL FROM:<s@y.test>\r\n");
		const char *p = rows[i].rcpts;
		while (*p) {
			size_t w = strcspn(p, "|");
			n +=
			    (size_t)snprintf(in + n, sizeof(in) - n, "RCPT TO:%.*s\r\n", (int)w, p);
			p += w + (p[w] == '|');
		}
		n += (size_t)snprintf(in + n, sizeof(in) - n, "DATA\r\nx\r\n.\r\n");
		struct fake f = {0};
		session(&f, false, in, n, 0, 0);
		char want[1024];
		snprintf(want, sizeof(want),
		         "250 mx.test|250 2.1.0 Ok|%s354 End data with <CR><LF>.<CR><LF>|250 2.0.0 "
		         "Ok: queued|",
		         rows[i].replies);
		char a[2048];
		if (strcmp(f.replies.p, want) != 0)
			fail_msg("%s: got %s, want %s", show(in, n, a, sizeof(a)), f.replies.p,
			         want);
		size_t nwant = 0;
		while (nwant < FAKE_RCPTS && rows[i].want[nwant])
			nwant++;
		if (f.submits != 1 || f.nrcpt != nwant)
			fail_msg("%s: got %d submits of %zu recipients, want 1 of %zu",
			         rows[i].rcpts, f.submits, f.nrcpt, nwant);
		for (size_t k = 0; k < nwant && k < f.nrcpt; k++)
			if (strcmp(f.rcpt[k], rows[i].want[k]) != 0)
				fail_msg("%s: got recipient %zu %s, want %s", rows[i].rcpts, k,
				         f.rcpt[k], rows[i].want[k]);
		fake_free(&f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rcpt_duplicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

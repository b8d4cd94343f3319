#include "smtp_server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

/* A byte that has no place in a reply, a header or a log line. */
static bool control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool has_control(const char *p)
{
	for (; *p; p++)
		if (control((unsigned char)*p))
			return true;
	return false;
}

/* One reply line. Some carry text the node built from peer input (the
 * address in "550 5.1.1 <...>"): whatever it holds, no control character
 * goes out (RFC 5321 §4.2: reply text is HT, SP and printable ASCII; a CR
 * or LF would start a reply line of its own). */
static void reply(struct mm_smtpd *s, const char *line)
{
	size_t from = s->out.len;
	mm_buf_adds(&s->out, line);
	for (size_t i = from; i < s->out.len; i++)
		if (control((unsigned char)s->out.p[i]))
			s->out.p[i] = '?';
	mm_buf_add(&s->out, "\r\n", 2);
}

/* A protocol error: the usual count still ends a session that keeps
 * failing. */
static void count_error(struct mm_smtpd *s)
{
	if (++s->errors >= s->conf->max_errors) {
		reply(s, "421 4.7.0 Too many errors, closing connection");
		s->state = MM_SMTPD_CLOSED;
	}
}

static void fail(struct mm_smtpd *s, const char *line)
{
	reply(s, line);
	count_error(s);
}

static void reset_transaction(struct mm_smtpd *s)
{
	s->env.mail = (struct mm_mail_args){0};
	s->env.nrcpt = 0;
	s->rcpt_tried = 0;
	s->bdat_seen = s->bdat_failed = s->too_big = s->long_line = s->pending_cr = false;
	s->nul = false;
	s->line_len = 0;
	mm_buf_reset(&s->body);
	if (s->state != MM_SMTPD_GREET && s->state != MM_SMTPD_CLOSED)
		s->state = MM_SMTPD_IDLE;
}

void mm_smtpd_init(struct mm_smtpd *s, const struct mm_smtpd_conf *conf,
                   const struct mm_smtpd_ops *ops, void *ctx)
{
	*s = (struct mm_smtpd){.conf = conf, .ops = ops, .ctx = ctx, .state = MM_SMTPD_GREET};
}

void mm_smtpd_free(struct mm_smtpd *s)
{
	mm_buf_free(&s->in);
	mm_buf_free(&s->out);
	mm_buf_free(&s->body);
	free(s->env.rcpt);
}

void mm_smtpd_start(struct mm_smtpd *s)
{
	mm_buf_printf(&s->out, "220 %s ESMTP mailmesh\r\n", s->conf->fqdn);
}

void mm_smtpd_abort(struct mm_smtpd *s, const char *line)
{
	if (s->state == MM_SMTPD_CLOSED)
		return;
	reply(s, line);
	s->state = MM_SMTPD_CLOSED;
}

static void ehlo(struct mm_smtpd *s, const char *arg, bool extended)
{
	if (*arg == '\0') {
		fail(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	/* RFC 5321 §4.1.1.1: the argument is a Domain or an address literal.
	 * It is copied into our Received: header, where a bare CR starts a
	 * header of its own for some parsers: a control character is refused,
	 * and the session goes on as it was. */
	if (has_control(arg)) {
		fail(s, "501 5.5.2 Syntax: EHLO hostname, without control characters");
		return;
	}
	snprintf(s->env.helo, sizeof(s->env.helo), "%s", arg);
	s->esmtp = extended;
	s->state = MM_SMTPD_IDLE;
	reset_transaction(s);
	if (!extended) {
		mm_buf_printf(&s->out, "250 %s\r\n", s->conf->fqdn);
		return;
	}
	mm_buf_printf(&s->out, "250-%s\r\n250-PIPELINING\r\n", s->conf->fqdn);
	if (s->conf->max_size)
		mm_buf_printf(&s->out, "250-SIZE %llu\r\n", (unsigned long long)s->conf->max_size);
	else
		mm_buf_adds(&s->out, "250-SIZE\r\n");
	if (s->conf->starttls && !s->tls_active)
		mm_buf_adds(&s->out, "250-STARTTLS\r\n");
	/* EXTERNAL is offered only to a client that showed a certificate
	 * (RFC 4422 appendix A: without one there is nothing to name it) */
	if (s->tls_active && s->ops->auth)
		mm_buf_adds(&s->out, s->client_cert ? "250-AUTH PLAIN LOGIN EXTERNAL\r\n"
		                                    : "250-AUTH PLAIN LOGIN\r\n");
	/* DESIGN §5.2: in every EHLO reply; usable only once authenticated */
	mm_buf_adds(&s->out, "250-8BITMIME\r\n250-CHUNKING\r\n250-DSN\r\n250-X-LINK2STATE\r\n"
	                     "250 ENHANCEDSTATUSCODES\r\n");
}

static void mail(struct mm_smtpd *s, const char *arg)
{
	if (s->state == MM_SMTPD_GREET) {
		fail(s, "503 5.5.1 Send HELO/EHLO first");
		return;
	}
	if (s->state == MM_SMTPD_MAIL) {
		fail(s, "503 5.5.1 Sender already specified");
		return;
	}
	if (s->conf->require_tls && !s->tls_active) {
		fail(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	struct mm_mail_args m;
	const char *err = mm_smtp_parse_mail(arg, &m);
	if (err != NULL) {
		fail(s, err);
		return;
	}
	if (!s->esmtp && strchr(arg, '>')[1] != '\0') {
		fail(s, "555 5.5.4 Parameters need EHLO");
		return;
	}
	if (m.has_size && s->conf->max_size && m.size > s->conf->max_size) {
		reply(s, "552 5.2.3 Message length exceeds the administrative limit");
		return;
	}
	if (s->ops->mail != NULL && (err = s->ops->mail(s->ctx, &m)) != NULL) {
		fail(s, err);
		return;
	}
	s->env.mail = m;
	s->state = MM_SMTPD_MAIL;
	reply(s, "250 2.1.0 Ok");
}

static void rcpt(struct mm_smtpd *s, const char *arg)
{
	if (s->state != MM_SMTPD_MAIL) {
		fail(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	s->rcpt_tried++;
	struct mm_rcpt_args r;
	const char *err = mm_smtp_parse_rcpt(arg, &r);
	if (err != NULL) {
		fail(s, err);
		return;
	}
	/* the callback may rewrite r.addr to the recipient's canonical form */
	err = s->ops->rcpt(s->ctx, &s->env, &r);
	if (err != NULL) {
		fail(s, err);
		return;
	}
	/* one delivery per recipient: a recipient the envelope already holds
	 * is answered as accepted and not added again (the first one's DSN
	 * parameters stay); so it never meets the recipient limit either */
	for (size_t i = 0; i < s->env.nrcpt; i++) {
		if (strcmp(s->env.rcpt[i].addr, r.addr) == 0) {
			reply(s, "250 2.1.5 Ok");
			return;
		}
	}
	if (s->env.nrcpt >= s->conf->max_rcpts) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	mm_grow(&s->env.rcpt, &s->env.caprcpt, s->env.nrcpt + 1, sizeof(*s->env.rcpt));
	s->env.rcpt[s->env.nrcpt++] = r;
	reply(s, "250 2.1.5 Ok");
}

static bool ready_for_data(struct mm_smtpd *s)
{
	if (s->state != MM_SMTPD_MAIL) {
		fail(s, "503 5.5.1 Need MAIL command");
		return false;
	}
	if (s->env.nrcpt == 0) {
		fail(s, s->rcpt_tried ? "554 5.5.1 No valid recipients"
		                      : "503 5.5.1 Need RCPT command");
		return false;
	}
	return true;
}

static void data(struct mm_smtpd *s, const char *arg)
{
	if (*arg != '\0') {
		fail(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->bdat_seen) {
		fail(s, "503 5.5.1 DATA after BDAT");
		return;
	}
	if (!ready_for_data(s))
		return;
	s->state = MM_SMTPD_DATA;
	s->line_start = s->prev_crlf = true;
	s->line_len = 0;
	s->pending_cr = false;
	s->discarding = false;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* The body is complete: check it and hand it to the queue. */
static void finish_message(struct mm_smtpd *s)
{
	if (s->too_big) {
		reply(s, "552 5.2.3 Message length exceeds the administrative limit");
		reset_transaction(s);
		return;
	}
	if (s->long_line) {
		reply(s, "500 5.5.6 Text line longer than 1000 octets");
		reset_transaction(s);
		return;
	}
	/* RFC 5321 §2.3.8 and RFC 6152: NUL is in neither 7-bit nor 8-bit
	 * text; Maildir readers and next hops take it for an end of string */
	if (s->nul) {
		reply(s, "554 5.6.0 Message contains NUL octets");
		reset_transaction(s);
		return;
	}
	if (mm_count_received(s->body.p ? s->body.p : "", s->body.len) > s->conf->max_hops) {
		reply(s, "554 5.4.6 Too many hops: the message loops");
		reset_transaction(s);
		return;
	}
	s->state = MM_SMTPD_WAIT;
	s->ops->submit(s->ctx, &s->env, &s->body);
}

void mm_smtpd_done(struct mm_smtpd *s, const char *line)
{
	if (s->state != MM_SMTPD_WAIT)
		return;
	reply(s, line);
	s->state = MM_SMTPD_IDLE;
	reset_transaction(s);
	mm_smtpd_feed(s, NULL, 0);
}

static void body_add(struct mm_smtpd *s, const char *p, size_t n)
{
	if (s->too_big)
		return;
	if (!s->nul && memchr(p, '\0', n) != NULL)
		s->nul = true;
	if (s->conf->max_size && s->body.len + n > s->conf->max_size) {
		s->too_big = true;
		mm_buf_free(&s->body);
		return;
	}
	mm_buf_add(&s->body, p, n);
}

static void text_eol(struct mm_smtpd *s)
{
	s->pending_cr = false;
	body_add(s, "\r\n", 2);
	s->line_len = 0;
}

static void text_span(struct mm_smtpd *s, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (s->pending_cr)
		text_eol(s); /* the CR before was a bare one */
	body_add(s, p, n);
	/* RFC 5321 §4.5.3.1.6: 1,000 octets with the CRLF, counted as stored
	 * (a transparency dot is not part of the line) */
	s->line_len += n;
	if (s->line_len + 2 > MM_SMTP_TEXT_MAX)
		s->long_line = true;
}

/* Message text, DATA (unstuffed) or BDAT, stored with canonical line ends:
 * CRLF stays CRLF, and a bare LF or a bare CR is stored as CRLF. RFC 5321
 * §2.3.8 makes neither a line end, but some MTAs take one for one, and a
 * body carrying "\r.\r" or "\n.\n" on to them ends the message early: what
 * follows would be read as commands (SMTP smuggling). A CR at the end of p
 * waits for the next byte, which may be its LF (s->pending_cr). */
static void body_text(struct mm_smtpd *s, const char *p, size_t n)
{
	size_t from = 0;
	while (from < n) {
		/* the next CR or LF, by memchr (most of a body is neither) */
		const char *lf = memchr(p + from, '\n', n - from);
		const char *cr = memchr(p + from, '\r', lf ? (size_t)(lf - (p + from)) : n - from);
		const char *eol = cr ? cr : lf;
		if (eol == NULL)
			break;
		size_t i = (size_t)(eol - p);
		text_span(s, p + from, i - from);
		from = i + 1;
		if (p[i] == '\n') {
			text_eol(s); /* CRLF, or a bare LF */
		} else {
			if (s->pending_cr)
				text_eol(s); /* CR CR: the first is bare */
			s->pending_cr = true;
		}
	}
	text_span(s, p + from, n - from);
}

/* The end of the message text: a CR still waiting had no LF. */
static void body_text_end(struct mm_smtpd *s)
{
	if (s->pending_cr)
		text_eol(s);
}

/* RFC 5321 §4.5.2: the first dot of a line is removed when other characters
 * follow it on the line. Only a line after a CRLF counts; and a dot followed
 * by a bare CR or LF is a line of a single dot that did not end the message
 * (it is not CRLF "." CRLF): content, kept. */
static bool transparency_dot(const struct mm_smtpd *s, const char *q, size_t n)
{
	return s->line_start && s->prev_crlf && n > 1 && q[0] == '.' && q[1] != '\r' &&
	       q[1] != '\n';
}

/* DATA: consume whole lines. Only CRLF "." CRLF of the input ends the
 * message (no SMTP smuggling: a bare LF or bare CR never starts or ends the
 * terminating dot line). Returns the bytes consumed. */
static size_t data_lines(struct mm_smtpd *s, const char *p, size_t n)
{
	size_t pos = 0;
	while (pos < n && s->state == MM_SMTPD_DATA) {
		const char *q = p + pos;
		const char *nl = memchr(q, '\n', n - pos);
		if (nl == NULL) {
			/* A partial line: keep short ones whole (they may be the dot
			 * line); pass long ones on, holding back the last byte (a CR
			 * whose LF is still to come). */
			size_t rem = n - pos;
			if (rem < MM_SMTP_TEXT_MAX)
				break;
			size_t take = rem - 1;
			pos += take;
			if (transparency_dot(s, q, take))
				q++, take--;
			body_text(s, q, take);
			s->line_start = false;
			continue;
		}
		size_t len = (size_t)(nl - q) + 1;
		bool crlf = len >= 2 && q[len - 2] == '\r';
		size_t content = len - (crlf ? 2 : 1);
		pos += len;
		if (s->line_start && s->prev_crlf && crlf && content == 1 && q[0] == '.') {
			finish_message(s);
			break;
		}
		if (transparency_dot(s, q, len))
			q++, len--;
		body_text(s, q, len);
		s->line_start = true;
		s->prev_crlf = crlf;
	}
	return pos;
}

/* RFC 3030: every chunk gets a reply once its bytes are in. */
static void bdat_chunk_end(struct mm_smtpd *s)
{
	s->state = s->chunk_from;
	if (s->chunk_err != NULL) {
		fail(s, s->chunk_err);
		if (s->chunk_last && s->state == MM_SMTPD_MAIL)
			reset_transaction(s);
		return;
	}
	if (s->too_big) {
		reply(s, "552 5.2.3 Message length exceeds the administrative limit");
		if (s->chunk_last)
			reset_transaction(s);
		else
			s->bdat_failed = true;
		return;
	}
	if (s->chunk_last) {
		body_text_end(s);
		finish_message(s);
		return;
	}
	mm_buf_printf(&s->out, "250 2.0.0 %llu octets received\r\n",
	              (unsigned long long)s->body.len);
}

static void bdat(struct mm_smtpd *s, const char *arg)
{
	uint64_t size;
	bool last;
	if (!mm_smtp_parse_bdat(arg, &size, &last)) {
		/* the size is unknown, so the chunk cannot be skipped: close */
		mm_smtpd_abort(s, "501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
		return;
	}
	/* RFC 3030 §2: the chunk's bytes follow whatever the verdict, so they
	 * are read (and dropped) before the error reply */
	s->chunk_err = NULL;
	if (s->state != MM_SMTPD_MAIL)
		s->chunk_err = "503 5.5.1 Need MAIL command";
	else if (s->env.nrcpt == 0)
		s->chunk_err =
		    s->rcpt_tried ? "554 5.5.1 No valid recipients" : "503 5.5.1 Need RCPT command";
	else if (s->bdat_failed)
		s->chunk_err = "552 5.2.3 Message length exceeds the administrative limit";
	if (s->chunk_err == NULL && !s->bdat_seen) {
		s->pending_cr = false;
		s->line_len = 0;
		s->bdat_seen = true;
	}
	s->chunk_left = size;
	s->chunk_last = last;
	s->chunk_from = s->state;
	s->state = MM_SMTPD_BDAT;
	if (size == 0)
		bdat_chunk_end(s);
}

static size_t bdat_bytes(struct mm_smtpd *s, const char *p, size_t n)
{
	size_t take = n < s->chunk_left ? n : (size_t)s->chunk_left;
	if (s->chunk_err == NULL)
		body_text(s, p, take); /* line ends and the line limit as for DATA */
	s->chunk_left -= take;
	if (s->chunk_left == 0)
		bdat_chunk_end(s);
	return take;
}

static void auth_done(struct mm_smtpd *s, bool ok)
{
	s->state = s->auth_from;
	if (ok) {
		s->authenticated = true;
		reply(s, "235 2.7.0 Authentication successful");
	} else {
		fail(s, "535 5.7.8 Authentication credentials invalid");
	}
}

/* PLAIN: authzid NUL authcid NUL password (RFC 4616) */
static void auth_plain(struct mm_smtpd *s, const char *b64)
{
	unsigned char raw[MM_SMTP_CMD_MAX];
	long n = mm_base64_decode(b64, strlen(b64), raw, sizeof(raw));
	const unsigned char *user = n > 0 ? memchr(raw, '\0', (size_t)n) : NULL;
	const unsigned char *pass =
	    user ? memchr(user + 1, '\0', (size_t)(raw + n - user - 1)) : NULL;
	if (pass == NULL) {
		s->state = s->auth_from;
		fail(s, "501 5.5.2 Cannot decode the AUTH PLAIN response");
		return;
	}
	/* the login name is a mail address: one with a control character
	 * matches nobody, and it is not handed on (to be logged) */
	if (has_control((const char *)user + 1)) {
		auth_done(s, false);
		return;
	}
	auth_done(s, s->ops->auth(s->ctx, "PLAIN", (const char *)user + 1, (const char *)pass + 1));
}

static void auth(struct mm_smtpd *s, const char *arg)
{
	if (!s->tls_active || s->ops->auth == NULL) {
		fail(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (s->state == MM_SMTPD_GREET) {
		fail(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->authenticated || s->state == MM_SMTPD_MAIL) {
		fail(s, "503 5.5.1 Already authenticated, or a transaction is in progress");
		return;
	}
	size_t ml = strcspn(arg, " ");
	const char *initial = arg[ml] == ' ' ? arg + ml + 1 : NULL;
	snprintf(s->auth_mech, sizeof(s->auth_mech), "%.*s", (int)(ml < 15 ? ml : 15), arg);
	for (char *p = s->auth_mech; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	s->auth_from = s->state;
	s->auth_user[0] = '\0';
	if (strcmp(s->auth_mech, "PLAIN") == 0) {
		if (initial && strcmp(initial, "=") != 0) {
			auth_plain(s, initial);
			return;
		}
		s->state = MM_SMTPD_AUTH;
		reply(s, "334 ");
	} else if (strcmp(s->auth_mech, "LOGIN") == 0) {
		s->state = MM_SMTPD_AUTH;
		if (initial) {
			unsigned char u[MM_SMTP_CMD_MAX];
			if (mm_base64_decode(initial, strlen(initial), u, sizeof(u)) < 0) {
				s->state = s->auth_from;
				fail(s, "501 5.5.2 Cannot decode the AUTH LOGIN response");
				return;
			}
			snprintf(s->auth_user, sizeof(s->auth_user), "%s", (char *)u);
			reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		} else {
			reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
		}
	} else if (strcmp(s->auth_mech, "EXTERNAL") == 0) {
		/* the identity is the TLS client certificate; an authzid, if
		 * any, is only passed on */
		unsigned char id[MM_SMTP_CMD_MAX] = "";
		if (initial && strcmp(initial, "=") != 0 &&
		    mm_base64_decode(initial, strlen(initial), id, sizeof(id)) < 0) {
			fail(s, "501 5.5.2 Cannot decode the AUTH EXTERNAL response");
			return;
		}
		if (has_control((const char *)id)) {
			auth_done(s, false); /* as for PLAIN */
			return;
		}
		auth_done(s, s->ops->auth(s->ctx, "EXTERNAL", (const char *)id, NULL));
	} else {
		fail(s, "504 5.5.4 Unrecognized authentication type");
	}
}

/* A line of an AUTH exchange: base64, or "*" to cancel. */
static void auth_line(struct mm_smtpd *s, const char *line)
{
	if (strcmp(line, "*") == 0) {
		s->state = s->auth_from;
		fail(s, "501 5.0.0 Authentication aborted");
		return;
	}
	if (strcmp(s->auth_mech, "PLAIN") == 0) {
		auth_plain(s, line);
		return;
	}
	unsigned char v[MM_SMTP_CMD_MAX];
	if (mm_base64_decode(line, strlen(line), v, sizeof(v)) < 0) {
		s->state = s->auth_from;
		fail(s, "501 5.5.2 Cannot decode the AUTH LOGIN response");
		return;
	}
	if (s->auth_user[0] == '\0') {
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", (char *)v);
		if (s->auth_user[0] == '\0') {
			s->state = s->auth_from;
			fail(s, "501 5.5.2 Empty user name");
			return;
		}
		reply(s, "334 UGFzc3dvcmQ6");
		return;
	}
	if (has_control(s->auth_user)) {
		auth_done(s, false); /* as for PLAIN */
		return;
	}
	auth_done(s, s->ops->auth(s->ctx, "LOGIN", s->auth_user, (const char *)v));
}

/* DESIGN §5.2, after the line's length (checked as it was read): an
 * organization server authenticated by its certificate, outside a mail
 * transaction. Nothing a session that failed the first check sends comes
 * near the table. */
static void xlink2state(struct mm_smtpd *s, const char *arg)
{
	if (!s->tls_active || !s->authenticated || strcmp(s->auth_mech, "EXTERNAL") != 0 ||
	    s->ops->xlink == NULL) {
		fail(s, "530 5.7.0 X-LINK2STATE: STARTTLS and AUTH EXTERNAL as an organization "
		        "server first");
		return;
	}
	if (s->state == MM_SMTPD_MAIL) {
		fail(s, "503 5.5.1 X-LINK2STATE inside a mail transaction");
		return;
	}
	switch (s->ops->xlink(s->ctx, arg, &s->out)) {
	case MM_XLINK_OK: break;
	case MM_XLINK_ERROR: count_error(s); break;
	case MM_XLINK_CLOSE: s->state = MM_SMTPD_CLOSED; break;
	}
}

static void command(struct mm_smtpd *s, char *line)
{
	if (s->state == MM_SMTPD_AUTH) {
		auth_line(s, line);
		return;
	}
	const char *arg;
	switch (mm_smtp_verb(line, &arg)) {
	case MM_SMTP_HELO: ehlo(s, arg, false); break;
	case MM_SMTP_EHLO: ehlo(s, arg, true); break;
	case MM_SMTP_MAIL: mail(s, arg); break;
	case MM_SMTP_RCPT: rcpt(s, arg); break;
	case MM_SMTP_DATA: data(s, arg); break;
	case MM_SMTP_BDAT: bdat(s, arg); break;
	case MM_SMTP_RSET:
		reset_transaction(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case MM_SMTP_NOOP: reply(s, "250 2.0.0 Ok"); break;
	case MM_SMTP_QUIT:
		reply(s, "221 2.0.0 Bye");
		s->state = MM_SMTPD_CLOSED;
		break;
	case MM_SMTP_VRFY:
		/* RFC 5321 §3.5.3: disabled, as recommended against harvesting */
		reply(s, "252 2.5.2 Cannot VRFY user, but will accept message for delivery");
		break;
	case MM_SMTP_EXPN: fail(s, "502 5.5.1 EXPN not available"); break;
	case MM_SMTP_HELP: reply(s, "214 2.0.0 See RFC 5321; mailmesh"); break;
	case MM_SMTP_STARTTLS:
		if (!s->conf->starttls || s->tls_active)
			fail(s, "502 5.5.1 STARTTLS not available");
		else if (*arg != '\0')
			fail(s, "501 5.5.4 Syntax: STARTTLS");
		else {
			reply(s, "220 2.0.0 Ready to start TLS");
			s->state = MM_SMTPD_TLS;
		}
		break;
	case MM_SMTP_AUTH: auth(s, arg); break;
	case MM_SMTP_XLINK2STATE: xlink2state(s, arg); break;
	case MM_SMTP_UNKNOWN: fail(s, "500 5.5.2 Command unrecognized"); break;
	}
}

void mm_smtpd_feed(struct mm_smtpd *s, const char *data, size_t n)
{
	if (n > 0 && s->state != MM_SMTPD_CLOSED)
		mm_buf_add(&s->in, data, n);
	size_t pos = 0;
	while (pos < s->in.len) {
		const char *p = s->in.p + pos;
		size_t left = s->in.len - pos;
		if (s->state == MM_SMTPD_CLOSED || s->state == MM_SMTPD_WAIT)
			break;
		if (s->state == MM_SMTPD_TLS) {
			/* CVE-2011-0411: what was pipelined after STARTTLS is
			 * plaintext from before the handshake; drop it */
			pos = s->in.len;
			break;
		}
		if (s->state == MM_SMTPD_DATA) {
			size_t used = data_lines(s, p, left);
			pos += used;
			if (used == 0)
				break;
			continue;
		}
		if (s->state == MM_SMTPD_BDAT) {
			pos += bdat_bytes(s, p, left);
			continue;
		}
		const char *nl = memchr(p, '\n', left);
		/* DESIGN §5.2: an X-LINK2STATE line may have 1,024 octets */
		size_t max = left >= 12 && strncasecmp(p, "X-LINK2STATE", 12) == 0
		                 ? MM_XLINK_LINE_MAX
		                 : MM_SMTP_CMD_MAX;
		if (nl == NULL) {
			if (left >= max) {
				if (!s->discarding)
					fail(s, "500 5.5.2 Line too long");
				s->discarding = true;
				pos = s->in.len;
			}
			break;
		}
		size_t len = (size_t)(nl - p) + 1;
		pos += len;
		if (s->discarding) {
			s->discarding = false;
			continue;
		}
		if (len > max) {
			fail(s, "500 5.5.2 Line too long");
			continue;
		}
		char line[MM_XLINK_LINE_MAX + 1];
		size_t content = len - 1;
		if (content > 0 && p[content - 1] == '\r')
			content--;
		memcpy(line, p, content);
		line[content] = '\0';
		if (memchr(line, '\0', content) != NULL) {
			fail(s, "500 5.5.2 NUL in command");
			continue;
		}
		command(s, line);
	}
	mm_buf_consume(&s->in, pos);
}

void mm_smtpd_tls_started(struct mm_smtpd *s, bool client_cert)
{
	mm_buf_reset(&s->in);
	s->tls_active = true;
	s->client_cert = client_cert;
	s->esmtp = false;
	s->authenticated = false; /* RFC 3207 §4.2: forget what came before */
	s->state = MM_SMTPD_GREET;
	reset_transaction(s);
}

uint32_t mm_count_received(const char *body, size_t n)
{
	uint32_t count = 0;
	size_t pos = 0;
	while (pos < n) {
		const char *line = body + pos;
		const char *nl = memchr(line, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - line) + 1 : n - pos;
		if (len <= 2 && (line[0] == '\r' || line[0] == '\n'))
			break; /* end of the header section */
		if (len >= 9 && strncasecmp(line, "Received:", 9) == 0)
			count++;
		pos += len;
	}
	return count;
}

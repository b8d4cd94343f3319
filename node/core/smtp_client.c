#include "smtp_client.h"

#include "smtp_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void mm_smtpc_init(struct mm_smtpc *c, const char *helo)
{
	*c = (struct mm_smtpc){.state = MM_SMTPC_GREETING, .helo = helo};
}

void mm_smtpc_tls_started(struct mm_smtpc *c)
{
	/* RFC 3207 §4.2: forget what the server said before TLS */
	c->tls_active = true;
	c->pipelining = c->chunking = c->eightbit = c->dsn = c->starttls = c->size = false;
	c->auth_external = c->xlink2state = false;
	c->max_size = 0;
	mm_buf_reset(&c->in);
	mm_buf_printf(&c->out, "EHLO %s\r\n", c->helo);
	c->state = MM_SMTPC_EHLO;
}

void mm_smtpc_free(struct mm_smtpc *c)
{
	mm_buf_free(&c->in);
	mm_buf_free(&c->out);
}

static void set_result(struct mm_smtpc_result *r, int code, const char *text)
{
	r->code = code;
	snprintf(r->text, sizeof(r->text), "%s", text);
}

static enum mm_smtpc_event die(struct mm_smtpc *c, int code, const char *why)
{
	set_result(&c->error, code, why);
	if (c->job != NULL)
		for (uint32_t i = 0; i < c->job->nrcpt; i++)
			if (c->job->res[i].code == 0 || c->job->res[i].code / 100 == 2)
				c->job->res[i] = c->error;
	c->job = NULL;
	c->state = MM_SMTPC_DEAD;
	return MM_SMTPC_FAILED;
}

void mm_smtpc_broken(struct mm_smtpc *c, const char *why)
{
	if (c->state != MM_SMTPC_DEAD)
		die(c, 421, why);
}

static void capability(struct mm_smtpc *c, const char *kw)
{
	if (strcasecmp(kw, "PIPELINING") == 0)
		c->pipelining = true;
	else if (strcasecmp(kw, "CHUNKING") == 0)
		c->chunking = true;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		c->eightbit = true;
	else if (strcasecmp(kw, "DSN") == 0)
		c->dsn = true;
	else if (strcasecmp(kw, "STARTTLS") == 0)
		c->starttls = true;
	else if (strcasecmp(kw, "X-LINK2STATE") == 0)
		c->xlink2state = true;
	else if (strncasecmp(kw, "AUTH ", 5) == 0) {
		for (const char *p = kw + 5; *p;) {
			size_t n = strcspn(p, " ");
			if (n == 8 && strncasecmp(p, "EXTERNAL", 8) == 0)
				c->auth_external = true;
			p += n;
			while (*p == ' ')
				p++;
		}
	} else if (strncasecmp(kw, "SIZE", 4) == 0 && (kw[4] == ' ' || kw[4] == '\0')) {
		unsigned long long v = 0;
		for (const char *p = kw + 5; *p && isdigit((unsigned char)*p) && v < (1ull << 60);
		     p++)
			v = v * 10 + (unsigned long long)(*p - '0');
		c->max_size = v;
		c->size = true;
	}
}

/* The body as it goes out: every line end CRLF (a bare CR or LF becomes
 * one, as the server machine stores them, so a message queued by an older
 * node never carries "\r.\r" or "\n.\n" on to the next hop) and, for DATA,
 * a dot doubled at the start of each line (RFC 5321 §4.5.2). Writes to out
 * when it is not NULL; returns the length. */
/* Every CR is followed by an LF and every LF follows a CR: the body needs
 * no rewriting (what the server stores always is, so this is the common
 * case; two memchr passes instead of a loop over every byte). */
static bool crlf_only(const char *p, size_t n)
{
	size_t crs = 0, lfs = 0;
	for (const char *q = p, *end = p + n; (q = memchr(q, '\r', (size_t)(end - q))) != NULL;
	     q++, crs++)
		if (q + 1 == end || q[1] != '\n')
			return false;
	for (const char *q = p, *end = p + n; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
		lfs++;
	return crs == lfs;
}

static size_t canonical_body(struct mm_buf *out, const char *p, size_t n, bool stuff)
{
	if (!stuff && crlf_only(p, n)) {
		if (out)
			mm_buf_add(out, p, n);
		return n;
	}
	/* line by line: what ends a line is a CRLF, a bare CR or a bare LF,
	 * and each is written as CRLF */
	size_t len = 0, pos = 0;
	while (pos < n) {
		const char *q = p + pos;
		size_t rest = n - pos;
		const char *lf = memchr(q, '\n', rest);
		const char *cr = memchr(q, '\r', lf ? (size_t)(lf - q) : rest);
		const char *eol = cr ? cr : lf;
		size_t content = eol ? (size_t)(eol - q) : rest;
		if (stuff && content > 0 && q[0] == '.') {
			if (out)
				mm_buf_add(out, ".", 1);
			len++;
		}
		if (out)
			mm_buf_add(out, q, content);
		len += content;
		if (eol == NULL)
			break;
		if (out)
			mm_buf_add(out, "\r\n", 2);
		len += 2;
		pos += content + (eol[0] == '\r' && eol + 1 < p + n && eol[1] == '\n' ? 2 : 1);
	}
	return len;
}

static void dot_stuff(struct mm_buf *out, const char *p, size_t n)
{
	canonical_body(out, p, n, true);
	if (n > 0 && p[n - 1] != '\n' && p[n - 1] != '\r')
		mm_buf_add(out, "\r\n", 2);
	mm_buf_add(out, ".\r\n", 3);
}

/* Commands of the job: 0 MAIL, 1..n RCPT, n+1 DATA or BDAT. */
static void send_command(struct mm_smtpc *c, uint32_t k)
{
	struct mm_smtpc_job *j = c->job;
	if (k == 0) {
		mm_buf_printf(&c->out, "MAIL FROM:<%s>", j->sender);
		if (j->body_8bit && c->eightbit)
			mm_buf_adds(&c->out, " BODY=8BITMIME");
		if (c->size) /* RFC 1870: declare it when SIZE is offered */
			mm_buf_printf(&c->out, " SIZE=%zu",
			              canonical_body(NULL, j->body, j->len, false));
		if (c->dsn && j->ret == MM_RET_FULL)
			mm_buf_adds(&c->out, " RET=FULL");
		else if (c->dsn && j->ret == MM_RET_HDRS)
			mm_buf_adds(&c->out, " RET=HDRS");
		if (c->dsn && j->envid && j->envid[0])
			mm_buf_printf(&c->out, " ENVID=%s", j->envid);
		mm_buf_adds(&c->out, "\r\n");
	} else if (k <= j->nrcpt) {
		mm_buf_printf(&c->out, "RCPT TO:<%s>", j->rcpt[k - 1]);
		unsigned nt = c->dsn && j->notify ? j->notify[k - 1] : 0;
		if (nt) {
			/* RFC 3461 §4.1, in its order */
			static const struct {
				unsigned bit;
				const char *name;
			} kw[] = {{MM_NOTIFY_NEVER, "NEVER"},
			          {MM_NOTIFY_SUCCESS, "SUCCESS"},
			          {MM_NOTIFY_FAILURE, "FAILURE"},
			          {MM_NOTIFY_DELAY, "DELAY"}};
			const char *sep = " NOTIFY=";
			for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
				if (nt & kw[i].bit) {
					mm_buf_printf(&c->out, "%s%s", sep, kw[i].name);
					sep = ",";
				}
		}
		if (c->dsn && j->orcpt && j->orcpt[k - 1] && j->orcpt[k - 1][0])
			mm_buf_printf(&c->out, " ORCPT=%s", j->orcpt[k - 1]);
		mm_buf_adds(&c->out, "\r\n");
	} else if (c->chunking) {
		mm_buf_printf(&c->out, "BDAT %zu LAST\r\n",
		              canonical_body(NULL, j->body, j->len, false));
		canonical_body(&c->out, j->body, j->len, false);
		c->body_sent = true;
	} else {
		mm_buf_adds(&c->out, "DATA\r\n");
	}
	c->sent = k + 1;
}

void mm_smtpc_send(struct mm_smtpc *c, struct mm_smtpc_job *job)
{
	c->job = job;
	c->state = MM_SMTPC_TXN;
	c->sent = c->got = c->accepted = 0;
	c->body_sent = false;
	c->mail_res = c->data_res = (struct mm_smtpc_result){0};
	for (uint32_t i = 0; i < job->nrcpt; i++)
		job->res[i] = (struct mm_smtpc_result){0};
	if (c->rset_pending)
		mm_buf_adds(&c->out, "RSET\r\n");
	if (c->pipelining)
		for (uint32_t k = 0; k <= job->nrcpt + 1; k++)
			send_command(c, k);
	else if (!c->rset_pending)
		send_command(c, 0);
}

bool mm_smtpc_xlink_again(struct mm_smtpc *c, struct mm_xlink_cli *x)
{
	/* a session that sent anything while idle is not one to trust with
	 * the next exchange: those lines would be read as its answers */
	if (c->state != MM_SMTPC_IDLE || c->xlink == NULL || x == NULL || c->in.len > 0)
		return false;
	c->xlink = x;
	mm_xlink_cli_start(x, &c->out);
	c->state = MM_SMTPC_XLINK;
	return true;
}

void mm_smtpc_quit(struct mm_smtpc *c)
{
	if (c->state == MM_SMTPC_DEAD)
		return;
	mm_buf_adds(&c->out, "QUIT\r\n");
	c->state = MM_SMTPC_QUIT;
}

/* One whole reply for the transaction. */
static enum mm_smtpc_event txn_reply(struct mm_smtpc *c, const struct mm_smtpc_result *r)
{
	struct mm_smtpc_job *j = c->job;
	if (c->rset_pending) {
		c->rset_pending = false;
		if (!c->pipelining)
			send_command(c, 0);
		return MM_SMTPC_NONE;
	}
	uint32_t k = c->got++;
	uint32_t data_k = j->nrcpt + 1;
	if (k == 0) {
		c->mail_res = *r;
	} else if (k < data_k) {
		j->res[k - 1] = *r;
		if (r->code / 100 == 2 && c->mail_res.code / 100 == 2)
			c->accepted++;
	} else if (k == data_k && !c->body_sent) {
		if (r->code == 354) {
			if (c->accepted > 0)
				dot_stuff(&c->out, j->body, j->len);
			else
				mm_buf_adds(&c->out, ".\r\n"); /* end an empty message */
			c->body_sent = true;
			return MM_SMTPC_NONE; /* the final reply comes next */
		}
		c->data_res = *r;
	} else {
		c->data_res = *r;
	}
	if (!c->pipelining && c->got == c->sent && c->sent <= data_k) {
		/* one command at a time: stop early when nothing can succeed */
		if (c->mail_res.code / 100 != 2 || (c->sent == data_k && c->accepted == 0))
			goto finish;
		send_command(c, c->sent);
		return MM_SMTPC_NONE;
	}
	if (c->got < data_k + 1)
		return MM_SMTPC_NONE;
finish:
	for (uint32_t i = 0; i < j->nrcpt; i++) {
		struct mm_smtpc_result *res = &j->res[i];
		if (c->mail_res.code / 100 != 2)
			*res = c->mail_res;
		else if (res->code / 100 == 2)
			*res = c->data_res.code ? c->data_res : c->mail_res;
		else if (res->code == 0)
			*res = c->mail_res; /* never asked: cannot happen when pipelining */
	}
	c->rset_pending = c->data_res.code / 100 != 2;
	c->job = NULL;
	c->state = MM_SMTPC_IDLE;
	return MM_SMTPC_JOB_DONE;
}

static enum mm_smtpc_event reply(struct mm_smtpc *c, const struct mm_smtpc_result *r)
{
	switch (c->state) {
	case MM_SMTPC_GREETING:
		/* a refused session is never a reason to bounce: another try,
		 * or another next hop, may work */
		if (r->code != 220)
			return die(c, 421, r->text);
		mm_buf_printf(&c->out, "EHLO %s\r\n", c->helo);
		c->state = MM_SMTPC_EHLO;
		return MM_SMTPC_NONE;
	case MM_SMTPC_EHLO:
		if (r->code / 100 != 2) {
			if (c->tls_want == MM_SMTPC_TLS_REQUIRED)
				return die(c, 421,
				           "4.7.4 TLS is required, but the next hop does not "
				           "speak ESMTP");
			mm_buf_printf(&c->out, "HELO %s\r\n", c->helo);
			c->state = MM_SMTPC_HELO;
			return MM_SMTPC_NONE;
		}
		if (!c->tls_active && c->tls_want != MM_SMTPC_TLS_NONE && c->starttls) {
			mm_buf_adds(&c->out, "STARTTLS\r\n");
			c->state = MM_SMTPC_STARTTLS;
			return MM_SMTPC_NONE;
		}
		if (!c->tls_active && c->tls_want == MM_SMTPC_TLS_REQUIRED)
			return die(c, 421,
			           "4.7.4 TLS is required, but the next hop does not offer "
			           "STARTTLS");
		if (c->xlink) {
			/* DESIGN §5.2: the exchange only under TLS, once AUTH
			 * EXTERNAL named us by our certificate */
			if (!c->tls_active || !c->auth_external || !c->xlink2state)
				return die(
				    c, 421,
				    "4.7.0 the peer offers no X-LINK2STATE under TLS with AUTH "
				    "EXTERNAL");
			mm_buf_adds(&c->out, "AUTH EXTERNAL =\r\n");
			c->state = MM_SMTPC_AUTH;
			return MM_SMTPC_NONE;
		}
		c->state = MM_SMTPC_IDLE;
		return MM_SMTPC_READY;
	case MM_SMTPC_STARTTLS:
		if (r->code == 220)
			return MM_SMTPC_TLS;
		if (c->tls_want == MM_SMTPC_TLS_REQUIRED)
			return die(c, 421,
			           "4.7.4 TLS is required, but the next hop refused STARTTLS");
		c->state = MM_SMTPC_IDLE; /* opportunistic: go on in the clear */
		return MM_SMTPC_READY;
	case MM_SMTPC_HELO:
		if (r->code / 100 != 2)
			return die(c, 421, r->text);
		c->state = MM_SMTPC_IDLE;
		return MM_SMTPC_READY;
	case MM_SMTPC_AUTH:
		if (r->code != 235)
			return die(c, 421, r->text);
		mm_xlink_cli_start(c->xlink, &c->out);
		c->state = MM_SMTPC_XLINK;
		return MM_SMTPC_NONE;
	case MM_SMTPC_XLINK: return MM_SMTPC_NONE; /* lines go to the exchange */
	case MM_SMTPC_TXN: return txn_reply(c, r);
	case MM_SMTPC_QUIT: c->state = MM_SMTPC_DEAD; return MM_SMTPC_NONE;
	case MM_SMTPC_IDLE:
		/* an unsolicited reply, e.g. 421 at idle timeout */
		return die(c, 421, r->text);
	case MM_SMTPC_DEAD: break;
	}
	return MM_SMTPC_NONE;
}

enum mm_smtpc_event mm_smtpc_feed(struct mm_smtpc *c, const char *data, size_t n)
{
	enum mm_smtpc_event ev = MM_SMTPC_NONE;
	if (c->state == MM_SMTPC_DEAD)
		return MM_SMTPC_NONE;
	mm_buf_add(&c->in, data, n);
	size_t pos = 0;
	while (c->state != MM_SMTPC_DEAD) {
		const char *p = c->in.p + pos;
		size_t left = c->in.len - pos;
		const char *nl = memchr(p, '\n', left);
		if (nl == NULL) {
			if (left > MM_SMTPC_LINE_MAX)
				ev = die(c, 421, "4.4.2 reply line too long from the next hop");
			break;
		}
		size_t len = (size_t)(nl - p) + 1;
		pos += len;
		if (len > MM_SMTPC_LINE_MAX) {
			ev = die(c, 421, "4.4.2 reply line too long from the next hop");
			break;
		}
		size_t content = len - 1;
		if (content > 0 && p[content - 1] == '\r')
			content--;
		if (content < 3 || !isdigit((unsigned char)p[0]) || p[0] < '2' || p[0] > '5' ||
		    !isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) ||
		    (content > 3 && p[3] != ' ' && p[3] != '-')) {
			ev = die(c, 421, "4.4.2 malformed reply from the next hop");
			break;
		}
		int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		bool more = content > 3 && p[3] == '-';
		if (c->cur_lines > 0 && code != c->cur_code) {
			ev = die(c, 421, "4.4.2 inconsistent multi-line reply from the next hop");
			break;
		}
		if (c->state == MM_SMTPC_XLINK) {
			/* every line to the exchange as it comes: a reply of chunks
			 * may be megabytes, bounded by the exchange's own limit; a
			 * line, CRLF included, by DESIGN §5.2's 1,024 octets */
			if (len > MM_XLINK_LINE_MAX) {
				ev = die(c, 421, "4.4.2 X-LINK2STATE reply line over 1024 octets");
				break;
			}
			c->cur_code = code;
			c->cur_lines = more ? 1 : 0;
			enum mm_xcli_event xe =
			    mm_xlink_cli_line(c->xlink, code, content > 4 ? p + 4 : "",
			                      content > 4 ? content - 4 : 0, more, &c->out);
			if (xe == MM_XCLI_END) {
				c->state = MM_SMTPC_IDLE;
				ev = MM_SMTPC_XLINK_DONE;
				break;
			}
			continue;
		}
		if (++c->cur_lines > MM_SMTPC_LINES_MAX) {
			ev = die(c, 421, "4.4.2 reply with too many lines from the next hop");
			break;
		}
		c->cur_code = code;
		if (c->state == MM_SMTPC_EHLO && c->cur_lines > 1 && content > 4) {
			char kw[128];
			size_t kn = content - 4 < sizeof(kw) - 1 ? content - 4 : sizeof(kw) - 1;
			memcpy(kw, p + 4, kn);
			kw[kn] = '\0';
			capability(c, kw);
		}
		/* the text goes into DSNs (Diagnostic-Code) and the tracking
		 * log: a control character of the next hop's never does (RFC
		 * 5321 §4.2: textstring is HT, SP and printable ASCII) */
		size_t tn = content < sizeof(c->last.text) - 1 ? content : sizeof(c->last.text) - 1;
		for (size_t i = 0; i < tn; i++) {
			unsigned char ch = (unsigned char)p[i];
			c->last.text[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
		}
		c->last.text[tn] = '\0';
		if (more)
			continue;
		c->last.code = code;
		c->cur_lines = 0;
		enum mm_smtpc_event e = reply(c, &c->last);
		if (e != MM_SMTPC_NONE)
			ev = e;
		if (e == MM_SMTPC_FAILED || e == MM_SMTPC_TLS)
			break; /* after 220 to STARTTLS, any byte left is not ours */
	}
	mm_buf_consume(&c->in, pos);
	return ev;
}

/* X-LINK2STATE (xlink.h): the client side, after EHLO and AUTH EXTERNAL
 * on a session the SMTP client machine (smtp_client.c) runs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "logfmt.h"
#include "pbvalid.h"
#include "xlink.h"

#define PRE     "X-LINK2STATE "
#define PRE_LEN (sizeof(PRE) - 1)

void mm_xlink_cli_init(struct mm_xlink_cli *c, const struct mm_xlink_env *env, const char *peer)
{
	*c = (struct mm_xlink_cli){.env = env};
	c->in.limit = env->limit ? env->limit : MM_XLINK_LIMIT_DEFAULT;
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "");
}

void mm_xlink_cli_free(struct mm_xlink_cli *c)
{
	mm_xlink_asm_free(&c->in);
}

void mm_xlink_cli_start(struct mm_xlink_cli *c, struct mm_buf *out)
{
	uint8_t d[MM_DIGEST_LEN];
	char hex[2 * MM_DIGEST_LEN + 1];
	mm_table_digest(c->env->table(c->env->ctx), d);
	mm_digest_hex(d, hex);
	size_t from = out->len;
	mm_buf_printf(out, "X-LINK2STATE DIGEST=%s\r\n", hex);
	c->bytes_out += out->len - from;
	c->state = MM_XCLI_DIGEST;
}

static enum mm_xcli_event failed(struct mm_xlink_cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum mm_xcli_event failed(struct mm_xlink_cli *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->state = MM_XCLI_FAILED;
	mm_xlink_asm_reset(&c->in);
	return MM_XCLI_END;
}

/* "X-LINK2STATE " and a chunk, in a reply line's text: fed to the
 * assembler. False when the line is something else. */
static bool chunk_line(struct mm_xlink_cli *c, const char *text, size_t n, bool *bad)
{
	*bad = false;
	if (n < PRE_LEN || strncasecmp(text, PRE, PRE_LEN) != 0 || memchr(text, '=', n) == NULL ||
	    strncasecmp(text + PRE_LEN, "DIGEST=", 7) == 0)
		return false;
	char line[MM_XLINK_LINE_MAX + 1];
	size_t k = n - PRE_LEN;
	if (k >= sizeof(line)) {
		*bad = true;
		return true;
	}
	memcpy(line, text + PRE_LEN, k);
	line[k] = '\0';
	enum mm_xlink_chunk r = mm_xlink_asm_feed(&c->in, line);
	*bad = r != MM_XCHUNK_MORE && r != MM_XCHUNK_DONE;
	return true;
}

/* The server's summary is in: our transfer -- our summary, and what the
 * server lacks or holds older -- as chunk commands. */
static enum mm_xcli_event send_ours(struct mm_xlink_cli *c, struct mm_buf *out)
{
	bool had = c->in.data.len > 0;
	Mailmesh__LinkTransfer *x = had ? mm_xlink_decode(&c->in.data) : NULL;
	mm_xlink_asm_reset(&c->in);
	if (had && x == NULL)
		return failed(c, "the peer's summary does not decode");
	const mm_entry **newer;
	size_t k =
	    mm_xlink_newer(c->env, x ? (const Mailmesh__EntrySummary *const *)x->summary : NULL,
	                   x ? x->n_summary : 0, c->env->group_of(c->env->ctx, c->peer), &newer);
	size_t len;
	uint8_t *b = mm_xlink_encode(c->env->table(c->env->ctx), newer, k, &len);
	size_t from = out->len;
	mm_xlink_chunks(out, "X-LINK2STATE ", b, len);
	c->bytes_out += out->len - from;
	c->sent = (uint32_t)k;
	/* one reply per chunk; the last one's carries the peer's entries */
	c->acks = (uint32_t)((len + MM_XLINK_CHUNK_RAW - 1) / MM_XLINK_CHUNK_RAW);
	if (c->acks == 0)
		c->acks = 1;
	c->acks--;
	free(b);
	free(newer);
	if (x)
		mailmesh__link_transfer__free_unpacked(x, NULL);
	c->state = MM_XCLI_CHUNKS;
	return MM_XCLI_MORE;
}

/* The last reply is whole: the peer's entries, judged. */
static enum mm_xcli_event take_theirs(struct mm_xlink_cli *c)
{
	if (c->in.data.len == 0) {
		c->state = MM_XCLI_DONE;
		return MM_XCLI_END;
	}
	Mailmesh__LinkTransfer *x = mm_xlink_decode(&c->in.data);
	mm_xlink_asm_reset(&c->in);
	if (x == NULL)
		return failed(c, "the peer's entries do not decode");
	mm_entry **e = x->entries;
	size_t n = x->n_entries;
	x->entries = NULL;
	x->n_entries = 0;
	char why[600] = "";
	bool ok = n == 0 || c->env->take(c->env->ctx, c->peer, e, n, &c->taken, &c->dropped, why,
	                                 sizeof(why));
	free(e);
	mailmesh__link_transfer__free_unpacked(x, NULL);
	if (!ok) {
		c->refused = true;
		return failed(c, "%s", why);
	}
	c->state = MM_XCLI_DONE;
	return MM_XCLI_END;
}

enum mm_xcli_event mm_xlink_cli_line(struct mm_xlink_cli *c, int code, const char *text, size_t n,
                                     bool more, struct mm_buf *out)
{
	char q[600];
	c->bytes_in += n + 6;
	if (c->state == MM_XCLI_DONE || c->state == MM_XCLI_FAILED)
		return MM_XCLI_END;
	c->lines_ok += code / 100 == 2;
	if (code / 100 != 2) {
		size_t k = n < 400 ? n : 400;
		char t[401];
		memcpy(t, text, k);
		t[k] = '\0';
		return failed(c, "the peer answered %d %s", code, mm_logfmt_quote(q, sizeof(q), t));
	}
	bool bad, chunk = chunk_line(c, text, n, &bad);
	/* entries come in the reply to our last chunk only */
	if (chunk && c->state == MM_XCLI_CHUNKS && c->acks > 0)
		return failed(c, "chunks in the reply to one of our chunks");
	if (chunk) {
		if (bad)
			return failed(c,
			              "the peer's chunks are out of order, not base64, or over %zu "
			              "octets",
			              c->in.limit);
		if (!more)
			return failed(c, "a chunk as the last line of a reply");
		return MM_XCLI_MORE;
	}
	if (more) {
		/* a line of text we have no use for; not without end */
		if (++c->text_lines > MM_XLINK_TEXT_LINES)
			return failed(c, "a reply of more than %d lines that are no chunks",
			              MM_XLINK_TEXT_LINES);
		return MM_XCLI_MORE;
	}
	c->text_lines = 0;
	/* the last line of a reply */
	if (c->in.open)
		return failed(c, "the peer's reply ended inside a transfer");
	switch (c->state) {
	case MM_XCLI_DIGEST:
		if (n >= 6 && strncasecmp(text + n - 6, " equal", 6) == 0 && c->in.data.len == 0) {
			c->equal = true;
			c->state = MM_XCLI_DONE;
			return MM_XCLI_END;
		}
		return send_ours(c, out);
	case MM_XCLI_CHUNKS:
		if (c->acks > 0) {
			c->acks--;
			return MM_XCLI_MORE;
		}
		return take_theirs(c);
	default: return MM_XCLI_END;
	}
}

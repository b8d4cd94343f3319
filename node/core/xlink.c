/* X-LINK2STATE (xlink.h): chunks, transfers, and the server side. */
#include "xlink.h"

#include <ctype.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "logfmt.h"
#include "pbvalid.h"
#include "smtp_parse.h"

/* --- chunks ----------------------------------------------------------------- */

void mm_xlink_asm_reset(struct mm_xlink_asm *a)
{
	/* a kept session holds its assembler for hours: not 8 MiB of it */
	if (a->data.cap > (64u << 10))
		mm_buf_free(&a->data);
	mm_buf_reset(&a->data);
	a->open = false;
	a->chunks = 0;
}

void mm_xlink_asm_free(struct mm_xlink_asm *a)
{
	mm_buf_free(&a->data);
	*a = (struct mm_xlink_asm){.limit = a->limit};
}

/* "KEYWORD " at *p, in any case: moves *p past it */
static bool keyword(const char **p, const char *kw)
{
	size_t n = strlen(kw);
	if (strncasecmp(*p, kw, n) != 0 || (*p)[n] != ' ')
		return false;
	*p += n + 1;
	return true;
}

static enum mm_xlink_chunk fail(struct mm_xlink_asm *a, enum mm_xlink_chunk why)
{
	/* MS05-021: a chunk out of order never appends to anything */
	mm_xlink_asm_reset(a);
	return why;
}

enum mm_xlink_chunk mm_xlink_asm_feed(struct mm_xlink_asm *a, const char *arg)
{
	const char *p = arg;
	bool first = keyword(&p, "FIRST");
	bool last = keyword(&p, "LAST");
	bool next = !first && !last && keyword(&p, "NEXT");
	if (strncasecmp(p, "CHUNK=", 6) != 0 || (!first && !last && !next))
		return fail(a, MM_XCHUNK_SYNTAX);
	p += 6;
	if (first && a->open)
		return fail(a, MM_XCHUNK_FIRST_AGAIN);
	if (!first && !a->open)
		return fail(a, MM_XCHUNK_NO_FIRST);
	size_t n = strlen(p);
	if (n == 0 || n % 4 != 0 || n > 4 * ((MM_XLINK_LINE_MAX + 2) / 3))
		return fail(a, MM_XCHUNK_BAD_BASE64);
	size_t raw = n / 4 * 3, had = first ? 0 : a->data.len; /* FIRST starts afresh */
	if (had + raw > a->limit + 2) /* base64 padding makes raw 2 high at most */
		return fail(a, MM_XCHUNK_TOO_BIG);
	unsigned char buf[MM_XLINK_LINE_MAX];
	long got = mm_base64_decode(p, n, buf, sizeof(buf));
	if (got < 0)
		return fail(a, MM_XCHUNK_BAD_BASE64);
	if (had + (size_t)got > a->limit)
		return fail(a, MM_XCHUNK_TOO_BIG);
	if (first) {
		mm_buf_reset(&a->data);
		a->open = true;
		a->chunks = 0;
	}
	mm_buf_add(&a->data, buf, (size_t)got);
	a->chunks++;
	if (!last)
		return MM_XCHUNK_MORE;
	a->open = false;
	return MM_XCHUNK_DONE;
}

void mm_xlink_chunks(struct mm_buf *out, const char *prefix, const uint8_t *data, size_t len)
{
	size_t off = 0;
	do {
		size_t k = len - off < MM_XLINK_CHUNK_RAW ? len - off : MM_XLINK_CHUNK_RAW;
		bool first = off == 0, last = off + k == len;
		unsigned char b64[4 * ((MM_XLINK_CHUNK_RAW + 2) / 3) + 1];
		int n = EVP_EncodeBlock(b64, data + off, (int)k);
		mm_buf_printf(out, "%s%s%s%sCHUNK=%.*s\r\n", prefix, first ? "FIRST " : "",
		              !first && !last ? "NEXT " : "", last ? "LAST " : "", n, b64);
		off += k;
	} while (off < len);
}

uint8_t *mm_xlink_encode(const struct mm_table *t, const mm_entry *const *entries, size_t n,
                         size_t *len)
{
	struct mm_summary sum = {0};
	if (t)
		mm_table_summary(t, &sum);
	Mailmesh__LinkTransfer x = MAILMESH__LINK_TRANSFER__INIT;
	x.n_summary = sum.n;
	x.summary = sum.p;
	x.n_entries = n;
	x.entries = (Mailmesh__GroupEntry **)entries;
	*len = mailmesh__link_transfer__get_packed_size(&x);
	uint8_t *buf = mm_xmalloc(*len ? *len : 1);
	mailmesh__link_transfer__pack(&x, buf);
	if (t)
		mm_summary_free(&sum);
	return buf;
}

/* protobuf-c's allocations for one decode, counted: a transfer of tiny
 * entries or empty lists would decode to some 50 times its size (each a
 * struct of its own); past the budget the decode fails as undecodable.
 * What it hands out is malloc's, freed by free() like any entry. */
struct budget {
	size_t used, limit;
};

static void *budget_alloc(void *data, size_t size)
{
	struct budget *b = data;
	if (size > b->limit - b->used)
		return NULL;
	b->used += size;
	return malloc(size);
}

static void budget_free(void *data, void *p)
{
	(void)data;
	free(p);
}

Mailmesh__LinkTransfer *mm_xlink_decode(const struct mm_buf *b)
{
	struct budget bud = {0, MM_XLINK_DECODE_MAX};
	ProtobufCAllocator a = {budget_alloc, budget_free, &bud};
	Mailmesh__LinkTransfer *x =
	    mailmesh__link_transfer__unpack(&a, b->len, (const uint8_t *)(b->p ? b->p : ""));
	if (x == NULL)
		return NULL;
	bool ok = mm_pb_fields_valid(&x->base);
	for (size_t i = 0; ok && i < x->n_summary; i++)
		ok = x->summary[i]->group[0] != '\0';
	for (size_t i = 0; ok && i < x->n_entries; i++)
		ok = x->entries[i]->name[0] != '\0';
	if (!ok) {
		mailmesh__link_transfer__free_unpacked(x, NULL);
		return NULL;
	}
	return x;
}

size_t mm_xlink_newer(const struct mm_xlink_env *env, const Mailmesh__EntrySummary *const *sum,
                      size_t nsum, const char *peer_group, const mm_entry ***out)
{
	const struct mm_table *t = env->table(env->ctx);
	size_t n = mm_table_delta(t, sum, nsum, out); /* never a baseline */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const mm_entry *e = (*out)[i];
		/* the peer's own group is settled inside its group; and only
		 * what a master signed travels */
		if ((peer_group && strcmp(e->name, peer_group) == 0) || e->signature.len == 0)
			continue;
		(*out)[k++] = e;
	}
	return k;
}

/* --- the server side -------------------------------------------------------- */

void mm_xlink_srv_init(struct mm_xlink_srv *s, const struct mm_xlink_env *env, const char *peer)
{
	*s = (struct mm_xlink_srv){.env = env};
	s->in.limit = env->limit ? env->limit : MM_XLINK_LIMIT_DEFAULT;
	snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "");
}

void mm_xlink_srv_free(struct mm_xlink_srv *s)
{
	mm_xlink_asm_free(&s->in);
}

static void slog(const struct mm_xlink_srv *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void slog(const struct mm_xlink_srv *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->env->log(s->env->ctx, line);
}

static bool parse_digest(const char *p, uint8_t d[MM_DIGEST_LEN])
{
	if (strlen(p) != 2 * MM_DIGEST_LEN)
		return false;
	for (size_t i = 0; i < MM_DIGEST_LEN; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = (char)tolower((unsigned char)p[2 * i + (size_t)k]);
			if (c >= '0' && c <= '9')
				v = v * 16 + (c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (c - 'a' + 10);
			else
				return false;
		}
		d[i] = (uint8_t)v;
	}
	return true;
}

static enum mm_xlink_result digest(struct mm_xlink_srv *s, const char *hex, struct mm_buf *out)
{
	uint8_t theirs[MM_DIGEST_LEN], ours[MM_DIGEST_LEN];
	char mine[2 * MM_DIGEST_LEN + 1];
	mm_xlink_asm_reset(&s->in); /* a DIGEST starts the exchange afresh */
	s->differs = false;
	if (!parse_digest(hex, theirs)) {
		mm_buf_adds(out, "501 5.5.4 Syntax: X-LINK2STATE DIGEST=<64 hex digits>\r\n");
		return MM_XLINK_ERROR;
	}
	const struct mm_table *t = s->env->table(s->env->ctx);
	mm_table_digest(t, ours);
	mm_digest_hex(ours, mine);
	if (memcmp(theirs, ours, MM_DIGEST_LEN) == 0) {
		mm_buf_printf(out, "250 2.0.0 X-LINK2STATE DIGEST=%s equal\r\n", mine);
		return MM_XLINK_OK;
	}
	/* our summary: the client finds what we lack, sends it with its
	 * own summary, and gets back what it lacks */
	size_t len;
	uint8_t *x = mm_xlink_encode(t, NULL, 0, &len);
	size_t from = out->len;
	mm_xlink_chunks(out, "250-X-LINK2STATE ", x, len);
	mm_buf_printf(out, "250 2.0.0 X-LINK2STATE DIGEST=%s differs\r\n", mine);
	s->bytes_out += out->len - from;
	free(x);
	s->differs = true;
	return MM_XLINK_OK;
}

/* The client's transfer is whole: take its entries, send ours back. */
static enum mm_xlink_result transfer(struct mm_xlink_srv *s, struct mm_buf *out)
{
	char q[300];
	s->differs = false;
	Mailmesh__LinkTransfer *x = mm_xlink_decode(&s->in.data);
	mm_xlink_asm_reset(&s->in);
	if (x == NULL) {
		mm_buf_adds(out, "554 5.6.0 X-LINK2STATE: the transfer does not decode; nothing "
		                 "taken\r\n");
		return MM_XLINK_ERROR;
	}
	char why[600] = "";
	s->taken = s->dropped = 0;
	mm_entry **e = x->entries;
	size_t n = x->n_entries;
	x->entries = NULL; /* take() takes them over */
	x->n_entries = 0;
	bool ok = n == 0 || s->env->take(s->env->ctx, s->peer, e, n, &s->taken, &s->dropped, why,
	                                 sizeof(why));
	free(e);
	if (!ok) {
		mailmesh__link_transfer__free_unpacked(x, NULL);
		slog(s, "xlink: from %s: %s; closing the session",
		     mm_logfmt_quote(q, sizeof(q), s->peer), why);
		mm_buf_printf(out, "421 4.7.0 X-LINK2STATE: %s; closing connection\r\n", why);
		return MM_XLINK_CLOSE;
	}
	const mm_entry **newer;
	size_t k = mm_xlink_newer(s->env, (const Mailmesh__EntrySummary *const *)x->summary,
	                          x->n_summary, s->env->group_of(s->env->ctx, s->peer), &newer);
	size_t from = out->len;
	if (k > 0) {
		size_t len;
		uint8_t *b = mm_xlink_encode(NULL, newer, k, &len);
		mm_xlink_chunks(out, "250-X-LINK2STATE ", b, len);
		free(b);
	}
	free(newer);
	mm_buf_printf(out, "250 2.0.0 X-LINK2STATE %u taken, %u dropped, %zu sent\r\n", s->taken,
	              s->dropped, k);
	s->bytes_out += out->len - from;
	if (s->taken || k)
		slog(s, "xlink: from %s: %u taken, %u dropped, %zu sent",
		     mm_logfmt_quote(q, sizeof(q), s->peer), s->taken, s->dropped, k);
	mailmesh__link_transfer__free_unpacked(x, NULL);
	return MM_XLINK_OK;
}

enum mm_xlink_result mm_xlink_srv_command(struct mm_xlink_srv *s, const char *arg,
                                          struct mm_buf *out)
{
	s->bytes_in += strlen(arg) + 15;
	if (strncasecmp(arg, "DIGEST=", 7) == 0)
		return digest(s, arg + 7, out);
	if (!s->differs) {
		/* a chunk before DIGEST (or after an exchange ended) */
		mm_xlink_asm_reset(&s->in);
		mm_buf_adds(out, "503 5.5.1 X-LINK2STATE: DIGEST first\r\n");
		return MM_XLINK_ERROR;
	}
	switch (mm_xlink_asm_feed(&s->in, arg)) {
	case MM_XCHUNK_MORE:
		mm_buf_printf(out, "250 2.0.0 X-LINK2STATE chunk %u, %zu octets\r\n", s->in.chunks,
		              s->in.data.len);
		return MM_XLINK_OK;
	case MM_XCHUNK_DONE: return transfer(s, out);
	case MM_XCHUNK_SYNTAX:
		mm_buf_adds(out, "501 5.5.4 Syntax: X-LINK2STATE DIGEST=<hex> | [FIRST] "
		                 "[NEXT|LAST] CHUNK=<base64>\r\n");
		break;
	case MM_XCHUNK_NO_FIRST:
		mm_buf_adds(out, "503 5.5.1 X-LINK2STATE: a chunk without FIRST; the transfer is "
		                 "dropped\r\n");
		break;
	case MM_XCHUNK_FIRST_AGAIN:
		mm_buf_adds(out, "503 5.5.1 X-LINK2STATE: FIRST inside a transfer; the transfer is "
		                 "dropped\r\n");
		break;
	case MM_XCHUNK_BAD_BASE64:
		mm_buf_adds(out, "501 5.5.2 X-LINK2STATE: bad base64; the transfer is dropped\r\n");
		break;
	case MM_XCHUNK_TOO_BIG:
		mm_buf_printf(out,
		              "552 5.3.4 X-LINK2STATE: a transfer over %zu octets; the transfer is "
		              "dropped\r\n",
		              s->in.limit);
		break;
	}
	s->differs = false; /* the exchange is over: DIGEST again */
	return MM_XLINK_ERROR;
}

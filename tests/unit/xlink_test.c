/* The X-LINK2STATE machines (node/core/xlink.h) alone: the chunk
 * assembler, and the server and client sides talking through buffers, each
 * with a fake node (a table, and a take that merges what is newer). The
 * checks of signed entries are entrysig_test's; here take refuses an entry
 * of group "G000666" as a failed check would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "alloc.h"
#include "synth.h"
#include "xlink.h"

#define BAD_GROUP 666

/* --- a fake node ------------------------------------------------------------ */

struct side {
	struct mm_table t;
	struct mm_xlink_env env;
	int takes;      /* calls of take */
	char log[4096]; /* the last line logged */
};

static const struct mm_table *side_table(void *ctx)
{
	return &((struct side *)ctx)->t;
}

/* servers are "S<g>-<k>": of group G<g> (synth.c's names) */
static const char *side_group_of(void *ctx, const char *server)
{
	struct side *s = ctx;
	unsigned g, k;
	if (sscanf(server, "S%u-%u", &g, &k) != 2)
		return NULL;
	char name[16];
	snprintf(name, sizeof(name), "G%06u", g);
	const mm_entry *e = mm_table_find(&s->t, name);
	return e ? e->name : NULL;
}

static bool side_take(void *ctx, const char *peer, mm_entry **e, size_t n, uint32_t *taken,
                      uint32_t *dropped, char *why, size_t whylen)
{
	struct side *s = ctx;
	(void)peer;
	s->takes++;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(e[i]->name, "G000666") == 0) {
			snprintf(why, whylen, "%s: the signature does not verify", e[i]->name);
			ok = false;
			mm_entry_free(e[i]);
			++*dropped;
			continue;
		}
		if (mm_table_merge(&s->t, e[i]) == MM_MERGE_NEWER)
			++*taken;
		else
			++*dropped;
	}
	return ok;
}

static void side_log(void *ctx, const char *line)
{
	struct side *s = ctx;
	snprintf(s->log, sizeof(s->log), "%s", line);
}

/* An entry of group g at (inc, major), signed (a made-up signature: the
 * machines only look whether there is one) or not. */
static mm_entry *entry(unsigned g, uint64_t inc, uint64_t major, bool sign)
{
	mm_entry *e = synth_group(g, 2);
	e->version->incarnation = inc;
	e->version->major = major;
	if (sign) {
		e->signature.len = 64;
		e->signature.data = mm_xcalloc(1, 64);
		memset(e->signature.data, 0x5a, 64);
	}
	mm_entry_canonicalize(e);
	return e;
}

static void side_init(struct side *s)
{
	*s = (struct side){0};
	mm_table_init(&s->t);
	s->env = (struct mm_xlink_env){.ctx = s,
	                               .table = side_table,
	                               .group_of = side_group_of,
	                               .take = side_take,
	                               .log = side_log};
}

static void put(struct side *s, mm_entry *e)
{
	assert_int_equal(mm_table_merge(&s->t, e), MM_MERGE_NEWER);
}

static uint64_t major_of(const struct side *s, unsigned g)
{
	char name[16];
	snprintf(name, sizeof(name), "G%06u", g);
	const mm_entry *e = mm_table_find(&s->t, name);
	return e ? e->version->major : 0;
}

/* --- the wire between them ---------------------------------------------------- */

struct wire {
	struct side a, b; /* a dials b */
	struct mm_xlink_cli cli;
	struct mm_xlink_srv srv;
	size_t lines_to_b, lines_to_a; /* command and reply lines */
	size_t octets;                 /* both ways */
	enum mm_xlink_result last;     /* the server's last result */
};

/* Every command line in cmds to the server, and its replies to the client,
 * until the client's exchange ends. */
static void run(struct wire *w)
{
	struct mm_buf cmds = {0}, replies = {0};
	mm_xlink_cli_start(&w->cli, &cmds);
	enum mm_xcli_event ev = MM_XCLI_MORE;
	while (ev == MM_XCLI_MORE && cmds.len > 0) {
		struct mm_buf next = {0};
		size_t off = 0;
		while (off < cmds.len && ev == MM_XCLI_MORE) {
			const char *p = cmds.p + off, *nl = memchr(p, '\n', cmds.len - off);
			assert_non_null(nl);
			size_t len = (size_t)(nl - p) + 1;
			assert_true(len <= MM_XLINK_LINE_MAX);
			w->lines_to_b++;
			w->octets += len;
			char line[MM_XLINK_LINE_MAX + 1];
			assert_true(len > 15 && memcmp(p, "X-LINK2STATE ", 13) == 0);
			memcpy(line, p + 13, len - 15);
			line[len - 15] = '\0';
			off += len;
			mm_buf_reset(&replies);
			w->last = mm_xlink_srv_command(&w->srv, line, &replies);
			for (size_t r = 0; r < replies.len && ev == MM_XCLI_MORE;) {
				const char *q = replies.p + r,
				           *e = memchr(q, '\n', replies.len - r);
				assert_non_null(e);
				size_t n = (size_t)(e - q) + 1;
				assert_true(n <= MM_XLINK_LINE_MAX);
				w->lines_to_a++;
				w->octets += n;
				ev = mm_xlink_cli_line(&w->cli, atoi(q), q + 4, n - 6, q[3] == '-',
				                       &next);
				r += n;
			}
		}
		mm_buf_free(&cmds);
		cmds = next;
	}
	mm_buf_free(&cmds);
	mm_buf_free(&replies);
	assert_int_equal(ev, MM_XCLI_END);
}

static void wire_init(struct wire *w)
{
	side_init(&w->a);
	side_init(&w->b);
}

/* peer names: the server the client dialled, and the one the server's
 * AUTH EXTERNAL named */
static void wire_start(struct wire *w, const char *b_name, const char *a_name)
{
	mm_xlink_cli_init(&w->cli, &w->a.env, b_name);
	mm_xlink_srv_init(&w->srv, &w->b.env, a_name);
	w->lines_to_a = w->lines_to_b = w->octets = 0;
}

static void wire_end(struct wire *w)
{
	mm_xlink_cli_free(&w->cli);
	mm_xlink_srv_free(&w->srv);
}

static void wire_free(struct wire *w)
{
	mm_table_free(&w->a.t);
	mm_table_free(&w->b.t);
}

static bool same_digest(const struct side *x, const struct side *y)
{
	uint8_t d1[MM_DIGEST_LEN], d2[MM_DIGEST_LEN];
	mm_table_digest(&x->t, d1);
	mm_table_digest(&y->t, d2);
	return memcmp(d1, d2, sizeof(d1)) == 0;
}

/* --- chunks ------------------------------------------------------------------- */

/* Mutations seen failing: the "no FIRST" test removed from
 * mm_xlink_asm_feed (MS05-021's LAST CHUNK appends to nothing set up:
 * here it is taken as a transfer); a second FIRST allowed; fail() keeping
 * the data (the next FIRST LAST starts with the old bytes). It found the
 * size check counting a finished transfer's bytes against the next FIRST. */
static void test_chunks(void **state)
{
	(void)state;
	struct mm_xlink_asm a = {.limit = 4000};
	assert_int_equal(mm_xlink_asm_feed(&a, "LAST CHUNK=AAAA"), MM_XCHUNK_NO_FIRST);
	assert_int_equal(mm_xlink_asm_feed(&a, "NEXT CHUNK=AAAA"), MM_XCHUNK_NO_FIRST);
	assert_int_equal(a.data.len, 0);
	assert_int_equal(mm_xlink_asm_feed(&a, "FIRST CHUNK=AAAA"), MM_XCHUNK_MORE);
	assert_int_equal(mm_xlink_asm_feed(&a, "FIRST CHUNK=AAAA"), MM_XCHUNK_FIRST_AGAIN);
	assert_false(a.open);
	assert_int_equal(a.data.len, 0);
	assert_int_equal(mm_xlink_asm_feed(&a, "FIRST CHUNK=@@@@"), MM_XCHUNK_BAD_BASE64);
	assert_int_equal(mm_xlink_asm_feed(&a, "FIRST CHUNK=AAA"), MM_XCHUNK_BAD_BASE64);
	assert_int_equal(mm_xlink_asm_feed(&a, "FIRST CHUNK="), MM_XCHUNK_BAD_BASE64);
	assert_int_equal(mm_xlink_asm_feed(&a, "FIRST"), MM_XCHUNK_SYNTAX);
	assert_int_equal(mm_xlink_asm_feed(&a, "CHUNK=AAAA"), MM_XCHUNK_SYNTAX);
	assert_int_equal(mm_xlink_asm_feed(&a, "first last chunk=QUJD"), MM_XCHUNK_DONE);
	assert_int_equal(a.data.len, 3);
	assert_memory_equal(a.data.p, "ABC", 3);
	/* every line within 1,024 octets, and the transfer whole again */
	uint8_t big[3000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	struct mm_buf lines = {0};
	mm_xlink_chunks(&lines, "", big, sizeof(big));
	size_t off = 0, n = 0;
	enum mm_xlink_chunk r = MM_XCHUNK_MORE;
	while (off < lines.len) {
		const char *p = lines.p + off, *nl = memchr(p, '\n', lines.len - off);
		size_t len = (size_t)(nl - p) + 1;
		assert_true(len + 13 <= MM_XLINK_LINE_MAX); /* "X-LINK2STATE " before it */
		char line[MM_XLINK_LINE_MAX];
		memcpy(line, p, len - 2);
		line[len - 2] = '\0';
		r = mm_xlink_asm_feed(&a, line);
		assert_int_equal(r, off + len == lines.len ? MM_XCHUNK_DONE : MM_XCHUNK_MORE);
		off += len;
		n++;
	}
	assert_int_equal(n, 5);
	assert_int_equal(a.data.len, sizeof(big));
	assert_memory_equal(a.data.p, big, sizeof(big));
	/* over the limit: dropped, and nothing of it kept */
	a.limit = 1000;
	mm_buf_reset(&lines);
	mm_xlink_chunks(&lines, "", big, 1470); /* two chunks of 735 */
	char *nl = memchr(lines.p, '\n', lines.len);
	*(nl - 1) = '\0';
	assert_int_equal(mm_xlink_asm_feed(&a, lines.p), MM_XCHUNK_MORE);
	lines.p[lines.len - 2] = '\0';
	assert_int_equal(mm_xlink_asm_feed(&a, nl + 1), MM_XCHUNK_TOO_BIG);
	assert_false(a.open);
	assert_int_equal(mm_xlink_asm_feed(&a, "FIRST LAST CHUNK=QUJD"), MM_XCHUNK_DONE);
	assert_int_equal(a.data.len, 3);
	mm_buf_free(&lines);
	mm_xlink_asm_free(&a);
}

/* --- exchanges ------------------------------------------------------------------ */

/* Each side ends with the newer of every entry, and only those travel.
 * Mutations seen failing: mm_xlink_newer sending the peer's own group
 * (b's G000002 would go back to it); unsigned entries let through (a's
 * G000004). */
static void test_exchange(void **state)
{
	(void)state;
	struct wire w;
	wire_init(&w);
	/* a: of group 1; b: of group 2 */
	put(&w.a, entry(1, 5, 3, true));
	put(&w.a, entry(2, 5, 1, true));  /* older than b's own */
	put(&w.a, entry(3, 5, 7, true));  /* newer than b's */
	put(&w.a, entry(4, 5, 9, false)); /* unsigned: never travels */
	put(&w.b, entry(1, 5, 2, true));
	put(&w.b, entry(2, 5, 4, true));
	put(&w.b, entry(3, 5, 6, true));
	put(&w.b, entry(4, 5, 1, true));
	put(&w.b, entry(5, 0, 1, false)); /* a baseline: never travels */
	put(&w.b, entry(6, 5, 1, true));  /* a lacks it */
	wire_start(&w, "S2-0", "S1-0");
	run(&w);
	assert_int_equal(w.cli.state, MM_XCLI_DONE);
	assert_int_equal(w.last, MM_XLINK_OK);
	/* to b: group 3 only (1 is a's own group: b's is older, but a's is
	 * newer and travels; 2 is b's own; 4 is unsigned) */
	assert_int_equal(major_of(&w.b, 1), 3);
	assert_int_equal(major_of(&w.b, 3), 7);
	assert_int_equal(major_of(&w.b, 2), 4);
	assert_int_equal(major_of(&w.b, 4), 1);
	assert_int_equal(w.cli.sent, 2);
	assert_int_equal(w.srv.taken, 2);
	/* to a: groups 2 and 6 (1 is a's own group; a's summary holds 4
	 * newer, though unsigned; 5 is a baseline) */
	assert_int_equal(major_of(&w.a, 2), 4);
	assert_int_equal(major_of(&w.a, 6), 1);
	assert_null(mm_table_find(&w.a.t, "G000005"));
	assert_int_equal(w.cli.taken, 2);
	wire_end(&w);

	/* the peer's own group: never sent to it, even when newer -- by the
	 * client (b's group 2), nor by the server (a's group 1). Mutation
	 * seen failing: transfer() passing no peer group to mm_xlink_newer */
	put(&w.a, entry(2, 6, 1, true));
	put(&w.b, entry(1, 6, 1, true));
	wire_start(&w, "S2-0", "S1-0");
	run(&w);
	assert_int_equal(major_of(&w.b, 2), 4);
	assert_int_equal(w.cli.sent, 0);
	assert_int_equal(major_of(&w.a, 1), 3);
	assert_int_equal(w.cli.taken, 0);
	wire_end(&w);
	wire_free(&w);
}

/* Equal digests: one line each way, nothing else. Mutation seen failing:
 * the server's "equal" test removed (it sends its summary anyway). */
static void test_quiet_round(void **state)
{
	(void)state;
	struct wire w;
	wire_init(&w);
	for (unsigned g = 1; g <= 3; g++) {
		put(&w.a, entry(g, 5, g, true));
		put(&w.b, entry(g, 5, g, true));
	}
	assert_true(same_digest(&w.a, &w.b));
	wire_start(&w, "S2-0", "S1-0");
	run(&w);
	assert_true(w.cli.equal);
	assert_int_equal(w.lines_to_b, 1);
	assert_int_equal(w.lines_to_a, 1);
	assert_true(w.octets < 200);
	assert_int_equal(w.a.takes + w.b.takes, 0);
	wire_end(&w);
	wire_free(&w);
}

/* Server side, every error: its reply, nothing taken, the exchange able to
 * start again with DIGEST. Mutations seen failing: a chunk accepted before
 * DIGEST ("chunk first"); the refused entry's 421 returning OK (the
 * session would go on). */
static void test_server_errors(void **state)
{
	(void)state;
	struct side b;
	side_init(&b);
	put(&b, entry(1, 5, 1, true));
	put(&b, entry(2, 5, 1, true));
	struct mm_xlink_srv s;
	mm_xlink_srv_init(&s, &b.env, "S1-0");
	s.in.limit = 2000;
	struct mm_buf out = {0};
#define CMD(arg, want, res)                                                 \
	do {                                                                \
		mm_buf_reset(&out);                                         \
		assert_int_equal(mm_xlink_srv_command(&s, arg, &out), res); \
		mm_buf_add(&out, "", 1);                                    \
		if (strstr(out.p, want) == NULL)                            \
			fail_msg("%s: got %s, want %s", arg, out.p, want);  \
	} while (0)
	const char *zero =
	    "DIGEST=0000000000000000000000000000000000000000000000000000000000000000";
	CMD("FIRST CHUNK=AAAA", "503 5.5.1", MM_XLINK_ERROR); /* chunk first */
	CMD("LAST CHUNK=AAAA", "503 5.5.1", MM_XLINK_ERROR);
	CMD("DIGEST=00", "501 5.5.4", MM_XLINK_ERROR);
	CMD("DIGEST=zz00000000000000000000000000000000000000000000000000000000000000", "501 5.5.4",
	    MM_XLINK_ERROR);
	CMD(zero, "250 2.0.0 X-LINK2STATE DIGEST=", MM_XLINK_OK);
	CMD("NEXT CHUNK=AAAA", "503 5.5.1", MM_XLINK_ERROR); /* no FIRST */
	CMD("LAST CHUNK=AAAA", "503 5.5.1", MM_XLINK_ERROR); /* DIGEST again first */
	CMD(zero, "differs", MM_XLINK_OK);
	CMD("FIRST CHUNK=AAAA", "250 2.0.0 X-LINK2STATE chunk 1", MM_XLINK_OK);
	CMD("FIRST CHUNK=AAAA", "503 5.5.1", MM_XLINK_ERROR); /* FIRST again */
	CMD(zero, "differs", MM_XLINK_OK);
	CMD("FIRST LAST CHUNK=!!!!", "501 5.5.2", MM_XLINK_ERROR); /* bad base64 */
	CMD(zero, "differs", MM_XLINK_OK);
	CMD("FIRST LAST CHUNK=/////w==", "554 5.6.0", MM_XLINK_ERROR); /* does not decode */
	CMD(zero, "differs", MM_XLINK_OK);
	CMD("FIRST CHUNK=QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", "250",
	    MM_XLINK_OK);
	char many[1100];
	memcpy(many, "NEXT CHUNK=", 11);
	memset(many + 11, 'Q', 1000);
	many[1011] = '\0';
	CMD(many, "250 2.0.0 X-LINK2STATE chunk 2", MM_XLINK_OK);
	CMD(many, "250 2.0.0 X-LINK2STATE chunk 3", MM_XLINK_OK);
	CMD(many, "552 5.3.4", MM_XLINK_ERROR); /* over 2,000 octets */
	assert_int_equal(b.takes, 0);
	assert_int_equal(major_of(&b, 1), 1);
	/* an entry that fails a check: 421, the session ends */
	CMD(zero, "differs", MM_XLINK_OK);
	mm_entry *bad = entry(BAD_GROUP, 5, 9, true);
	const mm_entry *list[1] = {bad};
	size_t len;
	uint8_t *x = mm_xlink_encode(NULL, list, 1, &len);
	struct mm_buf lines = {0};
	mm_xlink_chunks(&lines, "", x, len);
	lines.p[lines.len - 2] = '\0';
	CMD(lines.p, "421 4.7.0", MM_XLINK_CLOSE);
	assert_non_null(strstr(b.log, "does not verify"));
	assert_null(mm_table_find(&b.t, "G000666"));
#undef CMD
	free(x);
	mm_entry_free(bad);
	mm_buf_free(&lines);
	mm_buf_free(&out);
	mm_xlink_srv_free(&s);
	mm_table_free(&b.t);
}

/* Client side: what a hostile server may answer ends the exchange, nothing
 * taken. Mutation seen failing: chunk_line's failures ignored (the
 * client takes the LAST chunk of a transfer that never had a FIRST). */
static void test_client_errors(void **state)
{
	(void)state;
	struct side a;
	side_init(&a);
	put(&a, entry(1, 5, 1, true));
	static const struct {
		const char *lines[3];
		enum mm_xcli_state want;
	} rows[] = {
	    {{"530 5.7.0 no", NULL}, MM_XCLI_FAILED},
	    {{"250-X-LINK2STATE LAST CHUNK=AAAA", "250 2.0.0 differs", NULL}, MM_XCLI_FAILED},
	    {{"250-X-LINK2STATE FIRST CHUNK=AAAA", "250 2.0.0 differs", NULL}, MM_XCLI_FAILED},
	    {{"250 X-LINK2STATE FIRST LAST CHUNK=AAAA", NULL}, MM_XCLI_FAILED},
	    {{"250-X-LINK2STATE FIRST LAST CHUNK=!!!!", "250 2.0.0 differs", NULL}, MM_XCLI_FAILED},
	    {{"250-X-LINK2STATE FIRST LAST CHUNK=/////w==", "250 2.0.0 differs", NULL},
	     MM_XCLI_FAILED},
	    {{"250 2.0.0 X-LINK2STATE DIGEST=00 equal", NULL}, MM_XCLI_DONE},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mm_xlink_cli c;
		mm_xlink_cli_init(&c, &a.env, "S2-0");
		struct mm_buf out = {0};
		mm_xlink_cli_start(&c, &out);
		enum mm_xcli_event ev = MM_XCLI_MORE;
		for (size_t k = 0; rows[i].lines[k] && ev == MM_XCLI_MORE; k++) {
			const char *l = rows[i].lines[k];
			ev =
			    mm_xlink_cli_line(&c, atoi(l), l + 4, strlen(l) - 4, l[3] == '-', &out);
		}
		if (c.state != rows[i].want)
			fail_msg("row %zu: state %d, want %d (%s)", i, c.state, rows[i].want,
			         c.why);
		assert_int_equal(a.takes, 0);
		mm_buf_free(&out);
		mm_xlink_cli_free(&c);
	}
	/* entries only in the reply to our last chunk: chunks in the reply to
	 * an earlier one end the exchange (mutation seen failing: the test
	 * removed -- they are kept, and taken at the end) */
	for (unsigned g = 2; g <= 12; g++)
		put(&a, entry(g, 5, 1, true));
	struct mm_xlink_cli c;
	mm_xlink_cli_init(&c, &a.env, "S99-0");
	struct mm_buf out = {0};
	mm_xlink_cli_start(&c, &out);
	const char *differs = "250 2.0.0 X-LINK2STATE DIGEST=00 differs";
	assert_int_equal(mm_xlink_cli_line(&c, 250, differs + 4, strlen(differs) - 4, false, &out),
	                 MM_XCLI_MORE);
	assert_true(c.acks > 0);
	const char *sneak = "250-X-LINK2STATE FIRST LAST CHUNK=AAAA";
	assert_int_equal(mm_xlink_cli_line(&c, 250, sneak + 4, strlen(sneak) - 4, true, &out),
	                 MM_XCLI_END);
	assert_int_equal(c.state, MM_XCLI_FAILED);
	mm_buf_free(&out);
	mm_xlink_cli_free(&c);
	mm_table_free(&a.t);
}

/* 8 MiB of the smallest entries there are (a name of one letter, 5 octets
 * each) would unpack to some 250 MB: the decode's budget refuses it, and
 * the same bytes in a small transfer decode. Mutation seen failing: the
 * budget's test in budget_alloc() removed. */
static void test_decode_budget(void **state)
{
	(void)state;
	static const uint8_t tiny[] = {0x12, 0x03, 0x0a, 0x01, 0x61};
	struct mm_buf b = {0};
	for (size_t i = 0; i < (8u << 20) / sizeof(tiny); i++)
		mm_buf_add(&b, tiny, sizeof(tiny));
	assert_null(mm_xlink_decode(&b));
	b.len = 1000 * sizeof(tiny);
	Mailmesh__LinkTransfer *x = mm_xlink_decode(&b);
	assert_non_null(x);
	assert_int_equal(x->n_entries, 1000);
	mailmesh__link_transfer__free_unpacked(x, NULL);
	mm_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chunks),        cmocka_unit_test(test_exchange),
	    cmocka_unit_test(test_quiet_round),   cmocka_unit_test(test_server_errors),
	    cmocka_unit_test(test_client_errors), cmocka_unit_test(test_decode_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

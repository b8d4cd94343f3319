/* Unit tests of meshnode's pure parts: SMTP syntax, the server and client
 * machines fed transcripts, retry backoff, DSN status codes, and the spool
 * (append, done records, recovery, a torn tail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsn.h"
#include "hopstate.h"
#include "queue.h"
#include "smtp_client.h"
#include "smtp_parse.h"
#include "smtp_server.h"
#include "spool.h"

static void test_parse_paths(void **state)
{
	(void)state;
	static const struct {
		const char *arg;
		bool mail;
		const char *want_err; /* prefix, or NULL for success */
		const char *want_addr;
	} rows[] = {
	    {"FROM:<a@b.test>", true, NULL, "a@b.test"},
	    {"FROM:<>", true, NULL, ""},
	    {"FROM: <a@b.test>", true, NULL, "a@b.test"},
	    {"FROM:<@relay.test:a@b.test>", true, NULL, "a@b.test"},
	    {"FROM:<\"odd name\"@b.test>", true, NULL, "\"odd name\"@b.test"},
	    {"FROM:<a@[127.0.0.1]>", true, NULL, "a@[127.0.0.1]"},
	    {"FROM:a@b.test", true, "501 5.1.7", NULL},
	    {"FROM:<a b@c.test>", true, "501 5.1.7", NULL},
	    {"FROM:<a@-b.test>", true, "501 5.1.7", NULL},
	    {"FROM:<a..b@c.test>", true, "501 5.1.7", NULL},
	    {"FROM:<a@b.test> SIZE=12x", true, "501 5.5.4", NULL},
	    {"FROM:<a@b.test> BODY=BINARYMIME", true, "501 5.5.4", NULL},
	    {"FROM:<a@b.test> SMTPUTF8", true, "555 5.5.4", NULL},
	    {"FROM:<a@b.test> ENVID=a=b", true, "501 5.5.4", NULL},
	    {"FROM:<a@b.test> RET=FULL RET=HDRS", true, "501 5.5.4", NULL},
	    {"TO:<>", false, "501 5.1.3", NULL},
	    {"TO:<c@d.test> NOTIFY=NEVER,SUCCESS", false, "501 5.5.4", NULL},
	    {"TO:<c@d.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c+40d.test", false, NULL, "c@d.test"},
	    {"TO:<c@d.test> ORCPT=c@d.test", false, "501 5.5.4", NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mm_mail_args m;
		struct mm_rcpt_args r;
		const char *err = rows[i].mail ? mm_smtp_parse_mail(rows[i].arg, &m)
		                               : mm_smtp_parse_rcpt(rows[i].arg, &r);
		const char *addr = rows[i].mail ? m.addr : r.addr;
		if (rows[i].want_err == NULL && err != NULL)
			fail_msg("%s: got %s, want success", rows[i].arg, err);
		if (rows[i].want_err != NULL &&
		    (err == NULL || strncmp(err, rows[i].want_err, strlen(rows[i].want_err)) != 0))
			fail_msg("%s: got %s, want %s", rows[i].arg, err ? err : "success",
			         rows[i].want_err);
		if (rows[i].want_addr && strcmp(addr, rows[i].want_addr) != 0)
			fail_msg("%s: got address %s, want %s", rows[i].arg, addr,
			         rows[i].want_addr);
	}
}

/* --- server ----------------------------------------------------------- */

struct server_ctx {
	int submitted;
	char body[4096];
	size_t nrcpt;
};

static const char *srv_rcpt(void *ctx, const struct mm_envelope *env, struct mm_rcpt_args *r)
{
	(void)ctx, (void)env;
	return strncmp(r->addr, "unknown", 7) == 0 ? "550 5.1.1 unknown" : NULL;
}

static void srv_submit(void *ctx, const struct mm_envelope *env, const struct mm_buf *body)
{
	struct server_ctx *c = ctx;
	c->submitted++;
	c->nrcpt = env->nrcpt;
	snprintf(c->body, sizeof(c->body), "%.*s", (int)body->len, body->p);
}

static const struct mm_smtpd_conf srv_conf = {
    .fqdn = "mx.test", .max_size = 1000, .max_rcpts = 3, .max_hops = 2, .max_errors = 10};
static const struct mm_smtpd_ops srv_ops = {.rcpt = srv_rcpt, .submit = srv_submit};

/* Feed a transcript; returns the replies, CRLFs as "|". */
static const char *serve(struct mm_smtpd *s, const char *in)
{
	static char out[8192];
	mm_smtpd_feed(s, in, strlen(in));
	size_t k = 0;
	for (size_t i = 0; i < s->out.len && k + 1 < sizeof(out); i++)
		if (s->out.p[i] != '\r')
			out[k++] = s->out.p[i] == '\n' ? '|' : s->out.p[i];
	out[k] = '\0';
	mm_buf_reset(&s->out);
	return out;
}

static void test_server_transcripts(void **state)
{
	(void)state;
	struct server_ctx ctx = {0};
	struct mm_smtpd s;
	mm_smtpd_init(&s, &srv_conf, &srv_ops, &ctx);
	mm_smtpd_start(&s);
	assert_string_equal(serve(&s, ""), "220 mx.test ESMTP mailmesh|");
	assert_string_equal(serve(&s, "MAIL FROM:<a@b.test>\r\n"),
	                    "503 5.5.1 Send HELO/EHLO first|");
	assert_non_null(strstr(serve(&s, "EHLO c\r\n"), "250-CHUNKING|250-DSN|"));
	/* pipelined: the data waits behind the commit */
	const char *r = serve(&s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<unknown@x.test>\r\n"
	                          "RCPT TO:<r@x.test>\r\nDATA\r\nSubject: t\r\n\r\n..dot\r\n"
	                          "bare\nlf\r\n.\r\nNOOP\r\n");
	assert_string_equal(r, "250 2.1.0 Ok|550 5.1.1 unknown|250 2.1.5 Ok|"
	                       "354 End data with <CR><LF>.<CR><LF>|");
	assert_int_equal(ctx.submitted, 1);
	assert_int_equal(ctx.nrcpt, 1);
	assert_string_equal(ctx.body, "Subject: t\r\n\r\n.dot\r\nbare\r\nlf\r\n");
	assert_int_equal(s.state, MM_SMTPD_WAIT);
	assert_string_equal(serve(&s, ""), ""); /* NOOP held back */
	mm_smtpd_done(&s, "250 2.0.0 Ok: queued as X");
	assert_string_equal(serve(&s, ""), "250 2.0.0 Ok: queued as X|250 2.0.0 Ok|");
	/* recipients over the limit */
	r = serve(&s, "MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
	              "RCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\nRSET\r\n");
	assert_string_equal(r, "250 2.1.0 Ok|250 2.1.5 Ok|250 2.1.5 Ok|250 2.1.5 Ok|"
	                       "452 4.5.3 Too many recipients|250 2.0.0 Ok|");
	/* BDAT: bytes are counted, not parsed; too big and too many hops */
	r = serve(&s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r@x.test>\r\nBDAT 4\r\nQUITBDAT 2 LAST\r\n"
	              "\r\n");
	assert_string_equal(r, "250 2.1.0 Ok|250 2.1.5 Ok|250 2.0.0 4 octets received|");
	assert_int_equal(ctx.submitted, 2);
	assert_string_equal(ctx.body, "QUIT\r\n");
	mm_smtpd_done(&s, "250 2.0.0 Ok");
	serve(&s, "");
	r = serve(&s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r@x.test>\r\nDATA\r\nReceived: a\r\n"
	              "Received: b\r\nReceived: c\r\n\r\nx\r\n.\r\n");
	assert_non_null(strstr(r, "554 5.4.6"));
	r = serve(&s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r@x.test>\r\nBDAT 1001 LAST\r\n");
	char big[1001];
	memset(big, 'x', sizeof(big));
	mm_smtpd_feed(&s, big, sizeof(big));
	assert_non_null(strstr(serve(&s, ""), "552 5.2.3"));
	assert_string_equal(serve(&s, "QUIT\r\n"), "221 2.0.0 Bye|");
	assert_int_equal(s.state, MM_SMTPD_CLOSED);
	mm_smtpd_free(&s);
}

static void test_server_starttls_discards(void **state)
{
	(void)state;
	struct mm_smtpd_conf conf = srv_conf;
	conf.starttls = true;
	struct server_ctx ctx = {0};
	struct mm_smtpd s;
	mm_smtpd_init(&s, &conf, &srv_ops, &ctx);
	serve(&s, "EHLO c\r\n");
	/* CVE-2011-0411: the RSET sent with STARTTLS must not be answered */
	assert_string_equal(serve(&s, "STARTTLS\r\nRSET\r\n"), "220 2.0.0 Ready to start TLS|");
	mm_smtpd_tls_started(&s, true);
	assert_string_equal(serve(&s, ""), "");
	assert_string_equal(serve(&s, "MAIL FROM:<a@b.test>\r\n"),
	                    "503 5.5.1 Send HELO/EHLO first|");
	mm_smtpd_free(&s);
}

/* --- client ----------------------------------------------------------- */

static void test_client_pipelined_bdat(void **state)
{
	(void)state;
	struct mm_smtpc c;
	mm_smtpc_init(&c, "me.test");
	assert_int_equal(mm_smtpc_feed(&c, "220 hi\r\n", 8), MM_SMTPC_NONE);
	assert_string_equal(c.out.p, "EHLO me.test\r\n");
	mm_buf_reset(&c.out);
	const char *ehlo = "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 100\r\n";
	assert_int_equal(mm_smtpc_feed(&c, ehlo, strlen(ehlo)), MM_SMTPC_READY);
	const char *rcpts[] = {"a@x.test", "b@x.test"};
	struct mm_smtpc_result res[2];
	struct mm_smtpc_job job = {.sender = "s@y.test",
	                           .nrcpt = 2,
	                           .rcpt = rcpts,
	                           .body = "hi\r\n",
	                           .len = 4,
	                           .res = res};
	mm_smtpc_send(&c, &job);
	assert_string_equal(c.out.p, "MAIL FROM:<s@y.test> SIZE=4\r\nRCPT TO:<a@x.test>\r\n"
	                             "RCPT TO:<b@x.test>\r\nBDAT 4 LAST\r\nhi\r\n");
	mm_buf_reset(&c.out);
	const char *rep = "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 2.0.0 queued\r\n";
	assert_int_equal(mm_smtpc_feed(&c, rep, strlen(rep)), MM_SMTPC_JOB_DONE);
	assert_int_equal(res[0].code, 250);
	assert_string_equal(res[0].text, "250 2.0.0 queued");
	assert_int_equal(res[1].code, 550);
	mm_smtpc_free(&c);
}

static void test_client_data_dotstuff(void **state)
{
	(void)state;
	struct mm_smtpc c;
	mm_smtpc_init(&c, "me.test");
	mm_smtpc_feed(&c, "220 hi\r\n", 8);
	assert_int_equal(mm_smtpc_feed(&c, "250 mx\r\n", 8), MM_SMTPC_READY);
	mm_buf_reset(&c.out);
	const char *rcpts[] = {"a@x.test"};
	struct mm_smtpc_result res[1];
	struct mm_smtpc_job job = {
	    .sender = "", .nrcpt = 1, .rcpt = rcpts, .body = ".a\r\n.\r\nb", .len = 8, .res = res};
	mm_smtpc_send(&c, &job); /* no PIPELINING: one command at a time */
	assert_string_equal(c.out.p, "MAIL FROM:<>\r\n");
	mm_buf_reset(&c.out);
	mm_smtpc_feed(&c, "250 ok\r\n", 8);
	assert_string_equal(c.out.p, "RCPT TO:<a@x.test>\r\n");
	mm_buf_reset(&c.out);
	mm_smtpc_feed(&c, "250 ok\r\n", 8);
	assert_string_equal(c.out.p, "DATA\r\n");
	mm_buf_reset(&c.out);
	mm_smtpc_feed(&c, "354 go\r\n", 8);
	assert_string_equal(c.out.p, "..a\r\n..\r\nb\r\n.\r\n");
	assert_int_equal(mm_smtpc_feed(&c, "451 4.3.0 later\r\n", 17), MM_SMTPC_JOB_DONE);
	assert_int_equal(res[0].code, 451);
	/* a malformed reply ends the session */
	assert_int_equal(mm_smtpc_feed(&c, "25x\r\n", 5), MM_SMTPC_FAILED);
	mm_smtpc_free(&c);
}

/* --- retry, DSN ---------------------------------------------------------- */

static void test_retry_backoff(void **state)
{
	(void)state;
	for (uint32_t f = 1; f < 12; f++) {
		uint64_t base = 1000ull << (f - 1);
		if (base > 60000)
			base = 60000;
		for (uint32_t rnd = 0; rnd < 2000000000u; rnd += 99999989u) {
			uint32_t d = mm_backoff_ms(1000, 60000, 20, f, rnd);
			if (d < base * 80 / 100 || d > base * 120 / 100)
				fail_msg("failures %u: delay %u outside %llu±20%%", f, d,
				         (unsigned long long)base);
		}
	}
}

/* glitch retry, then down with backoff, then up on the first success */
static void test_hopstate(void **state)
{
	(void)state;
	struct mm_hop_conf c = {.retry_min_ms = 1000,
	                        .retry_max_ms = 8000,
	                        .jitter_pct = 0,
	                        .glitch_count = 3,
	                        .glitch_interval_ms = 100};
	struct mm_hopstate h = {0};
	struct mm_hop_actions a;
	int64_t now = 10000;
	static const struct {
		int64_t delay;
		bool down;
	} want[] = {{100, false},  {100, false},  {100, false},  {1000, true},
	            {2000, false}, {4000, false}, {8000, false}, {8000, false}};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_true(mm_hop_may_try(&h, now));
		mm_hop_failed(&h, &c, now, 0, &a);
		if (a.timer_at != now + want[i].delay || a.report_down != want[i].down)
			fail_msg("failure %zu: timer +%lld down %d, want +%lld down %d", i + 1,
			         (long long)(a.timer_at - now), a.report_down,
			         (long long)want[i].delay, want[i].down);
		assert_false(mm_hop_may_try(&h, now + want[i].delay - 1));
		/* a second connection failing at the same time changes nothing */
		mm_hop_failed(&h, &c, now, 0, &a);
		assert_int_equal(a.timer_at, 0);
		now += want[i].delay;
		mm_hop_timer(&h);
	}
	mm_hop_ok(&h, &a);
	assert_true(a.report_up);
	assert_int_equal(h.failures, 0);
	mm_hop_ok(&h, &a);
	assert_false(a.report_up);
}

static void test_dsn_status(void **state)
{
	(void)state;
	char s[16];
	mm_dsn_status_of("550 5.1.1 no such user", s);
	assert_string_equal(s, "5.1.1");
	mm_dsn_status_of("550 no such user", s);
	assert_string_equal(s, "5.0.0");
	mm_dsn_status_of("452 4.5.3 too many", s);
	assert_string_equal(s, "4.5.3");
}

/* --- spool --------------------------------------------------------------- */

struct recovered {
	int n;
	uint64_t ids[8];
	uint8_t done[8][2];
	char body[8][64];
	struct mm_spool *sp;
};

static void on_recover(void *ctx, const struct mm_spool_msg *m)
{
	struct recovered *r = ctx;
	r->ids[r->n] = m->id;
	for (uint32_t i = 0; i < m->nrcpt && i < 2; i++)
		r->done[r->n][i] = m->done[i];
	r->n++;
}

static const struct mm_spool_rcpt two_rcpts[2] = {{"a@x.test", "", 0}, {"b@x.test", "", 0}};

/* Open (or reopen) the spool in dir; what it recovers lands in rec. */
static void spool_open(struct mm_spool *sp, const char *dir, struct recovered *rec)
{
	const char *what;
	*rec = (struct recovered){0};
	assert_int_equal(mm_spool_open(sp, dir, on_recover, rec, &what), 0);
}

/* A new spool in a new directory made from the template dir. */
static void spool_fresh(char *dir, struct mm_spool *sp, struct recovered *rec)
{
	assert_non_null(mkdtemp(dir));
	spool_open(sp, dir, rec);
}

static void remove_dir(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_spool_recovery(void **state)
{
	(void)state;
	char dir[] = "/tmp/mm-spool-test.XXXXXX";
	struct mm_spool sp;
	struct recovered rec;
	spool_fresh(dir, &sp, &rec);
	assert_int_equal(rec.n, 0);
	struct mm_spool_loc loc[3];
	uint64_t lsn = 0;
	for (int i = 0; i < 3; i++) {
		char body[32];
		snprintf(body, sizeof(body), "message %d\r\n", i);
		struct mm_spool_msg m = {.id = mm_spool_new_id(&sp, 1000),
		                         .sender = "s@y.test",
		                         .envid = "",
		                         .helo = "h",
		                         .client = "c",
		                         .nrcpt = 2,
		                         .rcpt = two_rcpts};
		struct iovec iov = {body, strlen(body)};
		assert_int_equal(mm_spool_put(&sp, &m, &iov, 1, &loc[i], &lsn), 0);
		if (i == 0) {
			assert_int_equal(mm_spool_done(&sp, m.id, 0), 0);
			assert_int_equal(mm_spool_done(&sp, m.id, 1), 0);
		}
		if (i == 1)
			assert_int_equal(mm_spool_done(&sp, m.id, 1), 0);
	}
	char back[32] = {0};
	assert_int_equal(mm_spool_read(&sp, &loc[2], back), 0);
	assert_string_equal(back, "message 2\r\n");
	mm_spool_sync(&sp, lsn);
	mm_spool_close(&sp);

	/* a torn record at the end: cut the last message in half */
	char seg[512];
	snprintf(seg, sizeof(seg), "%s/queue/00000001.seg", dir);
	FILE *f = fopen(seg, "r+");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fclose(f);
	assert_int_equal(truncate(seg, size - 10), 0);

	spool_open(&sp, dir, &rec);
	/* message 0 is finished, message 2 was torn: only message 1 is back,
	 * with recipient 1 done */
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.done[0][0], 0);
	assert_int_equal(rec.done[0][1], 1);
	assert_true(rec.ids[0] > 1000ull << 16);
	mm_spool_close(&sp);
	remove_dir(dir);
}

/* A relocated copy (same id, done flags) replaces the first; DONE records
 * after it apply to it. */
static void test_spool_relocation(void **state)
{
	(void)state;
	char dir[] = "/tmp/mm-spool-reloc.XXXXXX";
	struct mm_spool sp;
	struct recovered rec;
	spool_fresh(dir, &sp, &rec);
	struct mm_spool_msg m = {.id = mm_spool_new_id(&sp, 5000),
	                         .sender = "s@y.test",
	                         .envid = "",
	                         .helo = "h",
	                         .client = "c",
	                         .nrcpt = 2,
	                         .rcpt = two_rcpts};
	struct iovec iov = {"body\r\n", 6};
	struct mm_spool_loc loc;
	uint64_t lsn;
	assert_int_equal(mm_spool_put(&sp, &m, &iov, 1, &loc, &lsn), 0);
	assert_int_equal(mm_spool_done(&sp, m.id, 0), 0);
	uint8_t done[2] = {1, 0};
	m.done = done;
	assert_int_equal(mm_spool_put(&sp, &m, &iov, 1, &loc, &lsn), 0);
	assert_int_equal(mm_spool_sync_now(&sp), 0);
	mm_spool_close(&sp);
	spool_open(&sp, dir, &rec);
	assert_int_equal(rec.n, 1); /* one message, not two copies */
	assert_int_equal(rec.done[0][0], 1);
	assert_int_equal(rec.done[0][1], 0);
	assert_int_equal(mm_spool_done(&sp, m.id, 1), 0);
	assert_int_equal(mm_spool_sync_now(&sp), 0);
	mm_spool_close(&sp);
	spool_open(&sp, dir, &rec);
	assert_int_equal(rec.n, 0);
	mm_spool_close(&sp);
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_paths),
	    cmocka_unit_test(test_server_transcripts),
	    cmocka_unit_test(test_server_starttls_discards),
	    cmocka_unit_test(test_client_pipelined_bdat),
	    cmocka_unit_test(test_client_data_dotstuff),
	    cmocka_unit_test(test_retry_backoff),
	    cmocka_unit_test(test_hopstate),
	    cmocka_unit_test(test_dsn_status),
	    cmocka_unit_test(test_spool_recovery),
	    cmocka_unit_test(test_spool_relocation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

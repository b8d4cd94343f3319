/* libFuzzer target: SMTP bytes from the network, both ways. The same input
 * is fed, in pieces whose sizes come from the input, to the server machine
 * (commands, DATA, BDAT, parameters) and to the client machine (replies
 * from a next hop, CVE-2020-8794's ground), then to the path parsers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_client.h"
#include "smtp_parse.h"
#include "smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *rcpt(void *ctx, const struct mm_envelope *env, struct mm_rcpt_args *r)
{
	(void)ctx, (void)env;
	return r->addr[0] == 'x' ? "550 5.1.1 no" : NULL;
}

static void submit(void *ctx, const struct mm_envelope *env, const struct mm_buf *body)
{
	(void)env, (void)body;
	*(int *)ctx = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mm_smtpd_conf conf = {.fqdn = "fuzz.test",
	                                          .max_size = 4096,
	                                          .max_rcpts = 50,
	                                          .max_hops = 15,
	                                          .max_errors = 1000,
	                                          .starttls = true};
	static const struct mm_smtpd_ops ops = {.rcpt = rcpt, .submit = submit};
	const char *p = (const char *)data;
	size_t step = size ? (size_t)data[0] % 64 + 1 : 1;

	int submitted = 0;
	struct mm_smtpd s;
	mm_smtpd_init(&s, &conf, &ops, &submitted);
	mm_smtpd_start(&s);
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		mm_smtpd_feed(&s, p + off, n);
		if (s.state == MM_SMTPD_TLS)
			mm_smtpd_tls_started(&s);
		if (submitted) {
			submitted = 0;
			mm_smtpd_done(&s, "250 2.0.0 Ok");
		}
		mm_buf_reset(&s.out);
	}
	mm_smtpd_free(&s);

	struct mm_smtpc c;
	const char *rcpts[] = {"a@b.test", "c@d.test"};
	struct mm_smtpc_result res[2];
	struct mm_smtpc_job job = {.sender = "s@e.test",
	                           .nrcpt = 2,
	                           .rcpt = rcpts,
	                           .body = "Subject: x\r\n\r\n.hi\r\n",
	                           .len = 19,
	                           .res = res};
	mm_smtpc_init(&c, "fuzz.test");
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		enum mm_smtpc_event ev = mm_smtpc_feed(&c, p + off, n);
		if (ev == MM_SMTPC_READY || ev == MM_SMTPC_JOB_DONE)
			mm_smtpc_send(&c, &job);
		mm_buf_reset(&c.out);
	}
	mm_smtpc_free(&c);

	char line[MM_SMTP_CMD_MAX + 1];
	size_t n = size < MM_SMTP_CMD_MAX ? size : MM_SMTP_CMD_MAX;
	memcpy(line, data, n);
	line[n] = '\0';
	struct mm_mail_args m;
	struct mm_rcpt_args r;
	uint64_t bsize;
	bool last;
	mm_smtp_parse_mail(line, &m);
	mm_smtp_parse_rcpt(line, &r);
	mm_smtp_parse_bdat(line, &bsize, &last);
	return 0;
}

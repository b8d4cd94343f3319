#include "dsn.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"

void mm_dsn_status_of(const char *reply, char *out)
{
	const char *p = reply;
	char cls = isdigit((unsigned char)p[0]) ? p[0] : '4';
	if (strlen(p) > 4 && (p[4] == '2' || p[4] == '4' || p[4] == '5') && p[5] == '.') {
		size_t n = strspn(p + 4, "0123456789.");
		if (n >= 5 && n < 12) {
			memcpy(out, p + 4, n);
			out[n] = '\0';
			return;
		}
	}
	snprintf(out, 16, "%c.0.0", cls);
}

/* The header section of a CRLF message, up to and including the blank line. */
static size_t header_len(const char *p, size_t n)
{
	const char *end = memmem(p, n, "\r\n\r\n", 4);
	return end ? (size_t)(end - p) + 4 : n;
}

/* RFC 3464 §2.3.5: Remote-MTA is an mta-name-type and a name. The next
 * hop is known here by its address ("ip:port", "[ip]:port"): a host's
 * name, if that is what it holds, goes as "dns"; an address as "ip"
 * (RFC 3464 §2.1.2 leaves the type open), without the port, which is
 * part of neither. */
static void remote_mta(struct mm_buf *out, const char *remote)
{
	char host[256];
	const char *p = remote, *end;
	if (*p == '[') {
		p++;
		end = strchr(p, ']');
	} else {
		end = strrchr(p, ':');
		/* an IPv6 address without brackets has several colons: no port */
		if (end && strchr(p, ':') != end)
			end = NULL;
	}
	size_t n = end ? (size_t)(end - p) : strlen(p);
	if (n == 0 || n >= sizeof(host))
		return;
	memcpy(host, p, n);
	host[n] = '\0';
	bool address = strchr(host, ':') != NULL || strspn(host, "0123456789.") == n;
	mm_buf_printf(out, "Remote-MTA: %s; %s\r\n", address ? "ip" : "dns", host);
}

void mm_dsn_build(struct mm_buf *out, const char *fqdn, const char *date, const char *msgid,
                  const struct mm_qmsg *m, const struct mm_dsn_rcpt *r, uint32_t n,
                  const char *orig, size_t orig_len)
{
	char boundary[64];
	snprintf(boundary, sizeof(boundary), "%s/%s", m->idhex, fqdn);
	mm_buf_printf(out,
	              "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	              "To: <%s>\r\n"
	              "Subject: Undelivered Mail Returned to Sender\r\n"
	              "Date: %s\r\n"
	              "Message-ID: <%s@%s>\r\n"
	              "Auto-Submitted: auto-replied\r\n"
	              "MIME-Version: 1.0\r\n"
	              "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	              "\tboundary=\"%s\"\r\n"
	              "\r\n"
	              "This is a MIME-encapsulated message.\r\n"
	              "\r\n"
	              "--%s\r\n"
	              "Content-Type: text/plain; charset=us-ascii\r\n"
	              "\r\n"
	              "This is the mail system at host %s.\r\n"
	              "\r\n"
	              "Your message could not be delivered to one or more recipients.\r\n"
	              "\r\n",
	              fqdn, m->sender, date, msgid, fqdn, boundary, boundary, fqdn);
	for (uint32_t i = 0; i < n; i++)
		mm_buf_printf(out, "<%s>: %s\r\n", m->rcpt[r[i].idx].addr,
		              r[i].diag ? r[i].diag : r[i].status);
	mm_buf_printf(out,
	              "\r\n--%s\r\n"
	              "Content-Type: message/delivery-status\r\n"
	              "\r\n"
	              "Reporting-MTA: dns; %s\r\n",
	              boundary, fqdn);
	if (m->envid && m->envid[0])
		mm_buf_printf(out, "Original-Envelope-Id: %s\r\n", m->envid);
	if (m->client && m->client[0])
		mm_buf_printf(out, "Received-From-MTA: dns; [%s]\r\n", m->client);
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_qrcpt *q = &m->rcpt[r[i].idx];
		mm_buf_printf(out, "\r\nFinal-Recipient: rfc822; %s\r\n", q->addr);
		if (q->orcpt && q->orcpt[0]) /* RFC 3464 §6.3.d: only when ORCPT came */
			mm_buf_printf(out, "Original-Recipient: %s\r\n", q->orcpt);
		mm_buf_printf(out, "Action: failed\r\nStatus: %s\r\n", r[i].status);
		if (r[i].remote)
			remote_mta(out, r[i].remote);
		if (r[i].diag)
			mm_buf_printf(out, "Diagnostic-Code: %s\r\n", r[i].diag);
		mm_buf_printf(out, "Last-Attempt-Date: %s\r\n", date);
	}
	/* RFC 3461 §4.3: the whole message only when RET=FULL */
	bool full = m->ret == MM_RET_FULL;
	size_t len = full ? orig_len : header_len(orig, orig_len);
	mm_buf_printf(out, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
	              full ? "message/rfc822" : "text/rfc822-headers");
	mm_buf_add(out, orig, len);
	if (len > 0 && orig[len - 1] != '\n')
		mm_buf_add(out, "\r\n", 2);
	mm_buf_printf(out, "\r\n--%s--\r\n", boundary);
}

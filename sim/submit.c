/* send N from SERVER to ADDRESS (DESIGN §8): one SMTP session from
 * 127.0.0.1 to the server's first virtual server, no AUTH, each message
 * MAIL FROM:<meshsim@sim.invalid> with Message-ID <SEED.SEQ@meshsim>, one
 * after the other; a message is sent when it is answered 250, refused
 * otherwise (a session that fails refuses what it had not sent). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "world.h"

#define SUBMIT_TIMEOUT_MS 60000

struct conn {
	int fd;
	char buf[8192];
	size_t len;
};

static int dial(const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	if (colon == NULL)
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(colon + 1))};
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = {SUBMIT_TIMEOUT_MS / 1000, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* the last line of the next reply; its code, or -1 */
static int reply(struct conn *c, char *text, size_t cap)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			bool last = n >= 4 && c->buf[3] != '-';
			int code = n >= 3 ? atoi(c->buf) : -1;
			snprintf(text, cap, "%.*s",
			         (int)(n > 0 && c->buf[n - 1] == '\r' ? n - 1 : n), c->buf);
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			if (last || n < 4)
				return code;
			continue;
		}
		if (c->len == sizeof(c->buf))
			return -1;
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

static bool put(struct conn *c, const char *s)
{
	size_t n = strlen(s);
	return send(c->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n;
}

static int cmd(struct conn *c, const char *line, char *text, size_t cap)
{
	return put(c, line) ? reply(c, text, cap) : -1;
}

uint64_t sim_send(struct sim_world *w, struct sim_daemon *d, uint64_t n, const char *rcpt,
                  char *err, size_t errlen)
{
	err[0] = '\0';
	struct conn c = {.fd = dial(d->first_vs)};
	char text[1024] = "", line[1200];
	uint64_t ok = 0;
	bool alive = c.fd >= 0 && reply(&c, text, sizeof(text)) == 220 &&
	             cmd(&c, "EHLO meshsim.invalid\r\n", text, sizeof(text)) == 250;
	if (c.fd < 0)
		snprintf(err, errlen, "%s: cannot connect to %s: %s", d->name, d->first_vs,
		         strerror(errno));
	else if (!alive)
		snprintf(err, errlen, "%s: %s", d->name, text);
	for (uint64_t i = 0; i < n; i++) {
		w->seq++;
		char msgid[128];
		snprintf(msgid, sizeof(msgid), "<%llu.%llu@meshsim>", (unsigned long long)w->seed,
		         (unsigned long long)w->seq);
		bool accepted = false;
		if (alive) {
			snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", rcpt);
			int r1 = cmd(&c, "MAIL FROM:<meshsim@sim.invalid>\r\n", text, sizeof(text));
			int r2 = r1 == 250 ? cmd(&c, line, text, sizeof(text)) : r1;
			int r3 = r2 == 250 ? cmd(&c, "DATA\r\n", text, sizeof(text)) : r2;
			if (r3 == 354) {
				time_t now = time(NULL);
				char date[64];
				strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000",
				         gmtime(&now));
				char msg[1024];
				snprintf(msg, sizeof(msg),
				         "From: <meshsim@sim.invalid>\r\nTo: <%s>\r\nDate: %s\r\n"
				         "Message-ID: %s\r\nSubject: meshsim %s\r\n\r\n"
				         "A message of the simulator.\r\n.\r\n",
				         rcpt, date, msgid, msgid);
				accepted = cmd(&c, msg, text, sizeof(text)) == 250;
			} else if (r3 >= 0 && r3 != 354 && r1 == 250) {
				cmd(&c, "RSET\r\n", text, sizeof(text));
			}
			if (r1 < 0 || r2 < 0 || r3 < 0)
				alive = false;
			if (!accepted && err[0] == '\0')
				snprintf(err, errlen, "%s: %s", d->name, text);
		}
		w->sent = mm_xrealloc(w->sent, w->nsent + 1, sizeof(*w->sent));
		char *lower = mm_xstrdup(rcpt);
		for (char *c = lower; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		w->sent[w->nsent++] = (struct sim_sent){.msgid = mm_xstrdup(msgid),
		                                        .rcpt = lower,
		                                        .server = mm_xstrdup(d->name),
		                                        .accepted = accepted};
		ok += accepted;
		w->refused += !accepted;
	}
	if (c.fd >= 0) {
		if (alive)
			cmd(&c, "QUIT\r\n", text, sizeof(text));
		close(c.fd);
	}
	return ok;
}

/* The SMTP virtual servers: listeners, one libevent bufferevent per
 * session driving the sans-I/O machine of smtp_server.c, the relay rules
 * and categorizer at RCPT time (DESIGN §4.1), and the commit of accepted
 * mail: spool record written, fdatasync by the syncer, then 250. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "node.h"
#include "tls.h"

struct session {
	struct node *n;
	struct vserver *vs;
	struct bufferevent *bev;
	evutil_socket_t fd; /* ours: the bufferevents do not close it */
	SSL *ssl;           /* ours too (libevent frees it only with the fd) */
	struct mm_smtpd smtpd;
	char ip[48];
	struct sockaddr_storage sa;
	bool relay_ok;
	bool waiting; /* a commit holds this session */
	bool gone;    /* the connection closed while waiting */
	bool closing;
	bool tls_switching; /* 220 to STARTTLS sent; the handshake follows */
	bool org_peer;      /* TLS client certificate from the organization's CA */
	char peer_cn[256];
	char reply[600];
	struct session *prev, *next; /* node->sessions */
};

/* --- addresses --------------------------------------------------------- */

bool cidr_parse(const char *s, struct cidr *out)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n >= sizeof(addr))
		return false;
	memcpy(addr, s, n);
	addr[n] = '\0';
	*out = (struct cidr){0};
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		out->bits = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		out->bits = 128;
	} else {
		return false;
	}
	if (slash) {
		char *end;
		unsigned long b = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || slash[1] == '\0' || b > out->bits)
			return false;
		out->bits = (unsigned)b;
	}
	return true;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const unsigned char *a;
	if (sa->sa_family == AF_INET && c->family == AF_INET)
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6 && c->family == AF_INET6)
		a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		return false;
	unsigned full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (c->addr[full] & mask);
}

static bool relay_allowed(struct node *n, struct vserver *vs, const struct sockaddr *sa)
{
	for (size_t i = 0; i < vs->nrelay; i++)
		if (cidr_match(&vs->relay[i], sa))
			return true;
	/* other servers of the organization relay through us (DESIGN §6) */
	for (size_t i = 0; i < n->norg; i++)
		if (cidr_match(&n->org[i], sa))
			return true;
	return false;
}

/* --- per client address session counts --------------------------------- */

static struct ipcount *ip_slot(struct node *n, const char *ip)
{
	for (size_t i = 0; i < n->nips; i++)
		if (strcmp(n->ips[i].ip, ip) == 0)
			return &n->ips[i];
	for (size_t i = 0; i < n->nips; i++)
		if (n->ips[i].n == 0) {
			snprintf(n->ips[i].ip, sizeof(n->ips[i].ip), "%s", ip);
			return &n->ips[i];
		}
	mm_grow(&n->ips, &n->capips, n->nips + 1, sizeof(*n->ips));
	struct ipcount *c = &n->ips[n->nips++];
	*c = (struct ipcount){0};
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	return c;
}

/* --- sessions ---------------------------------------------------------- */

static void session_free(struct session *s)
{
	struct node *n = s->n;
	if (s->bev)
		bufferevent_free(s->bev);
	SSL_free(s->ssl);
	if (s->fd >= 0)
		evutil_closesocket(s->fd);
	ip_slot(n, s->ip)->n--;
	n->nsessions--;
	if (s->prev)
		s->prev->next = s->next;
	else
		n->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	mm_smtpd_free(&s->smtpd);
	free(s);
}

/* The connection is over; a session whose message is being committed
 * stays until the commit resolves. */
static void session_close(struct session *s)
{
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	SSL_free(s->ssl);
	s->ssl = NULL;
	if (s->fd >= 0) {
		evutil_closesocket(s->fd);
		s->fd = -1;
	}
	if (s->waiting)
		s->gone = true;
	else
		session_free(s);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);

/* The 220 to STARTTLS is out: the rest of the session is TLS. Plaintext
 * that came after the STARTTLS line is dropped unread (CVE-2011-0411). */
static void start_tls(struct session *s)
{
	/* the plain bufferevent goes, with whatever it read */
	bufferevent_free(s->bev);
	s->ssl = SSL_new(s->n->tls.server);
	s->bev =
	    bufferevent_openssl_socket_new(s->n->base, s->fd, s->ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
	if (s->bev == NULL) {
		session_close(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	struct bufferevent *f = s->bev;
	bufferevent_setcb(f, read_cb, write_cb, event_cb, s);
	struct timeval idle = {(time_t)s->n->set.idle_timeout_s, 0};
	bufferevent_set_timeouts(f, &idle, &idle);
	bufferevent_enable(f, EV_READ | EV_WRITE);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (s->closing)
		session_close(s);
	else if (s->tls_switching && s->smtpd.state == MM_SMTPD_TLS)
		start_tls(s);
}

/* Send what the machine wrote; close once it is out if the session ended. */
static void flush(struct session *s)
{
	if (s->bev == NULL)
		return;
	if (s->smtpd.out.len > 0) {
		bufferevent_write(s->bev, s->smtpd.out.p, s->smtpd.out.len);
		mm_buf_reset(&s->smtpd.out);
	}
	if (s->smtpd.state == MM_SMTPD_TLS && !s->tls_switching) {
		s->tls_switching = true;
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
			start_tls(s);
		return;
	}
	if (s->smtpd.state == MM_SMTPD_CLOSED && !s->closing) {
		s->closing = true;
		bufferevent_disable(s->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
			session_close(s);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[16384];
	size_t n;
	/* while a message is being committed, input waits in the socket
	 * buffer rather than in memory */
	while (s->bev && !s->closing && s->smtpd.state != MM_SMTPD_WAIT &&
	       s->smtpd.state != MM_SMTPD_TLS && (n = evbuffer_get_length(in)) > 0) {
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		evbuffer_remove(in, chunk, n);
		mm_smtpd_feed(&s->smtpd, chunk, n);
		flush(s);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct session *s = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* the TLS handshake after STARTTLS is done */
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
		s->org_peer = ssl && mm_tls_peer_verified(ssl, s->peer_cn, sizeof(s->peer_cn));
		if (s->org_peer)
			s->relay_ok = true;
		s->tls_switching = false;
		mm_smtpd_tls_started(&s->smtpd);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		mm_smtpd_abort(&s->smtpd, "421 4.4.2 Idle timeout, closing connection");
		flush(s);
		return;
	}
	session_close(s);
}

static const char *rcpt_cb(void *ctx, const struct mm_envelope *env, struct mm_rcpt_args *r)
{
	(void)env;
	struct session *s = ctx;
	struct node *n = s->n;
	const char *home = NULL;
	char domain[256];
	switch (mm_directory_categorize(&n->dir, r->addr, &home, domain)) {
	case MM_CAT_HOME: return NULL;
	case MM_CAT_UNKNOWN:
		snprintf(s->reply, sizeof(s->reply),
		         "550 5.1.1 <%s>: Recipient address rejected: User unknown", r->addr);
		return s->reply;
	case MM_CAT_BAD: return "501 5.1.3 Bad recipient address syntax";
	case MM_CAT_EXTERNAL:
		if (s->relay_ok)
			return NULL;
		snprintf(s->reply, sizeof(s->reply), "550 5.7.1 <%s>: Relay access denied",
		         r->addr);
		return s->reply;
	}
	return "451 4.3.0 Internal error";
}

static bool auth_cb(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct session *s = ctx;
	bool ok = false;
	if (strcmp(mech, "EXTERNAL") == 0) {
		/* an organization server, by its certificate */
		ok = s->org_peer;
	} else {
		char mail[MM_SMTP_CMD_MAX];
		size_t i = 0;
		for (; user[i] && i + 1 < sizeof(mail); i++)
			mail[i] = (char)tolower((unsigned char)user[i]);
		mail[i] = '\0';
		uint32_t r;
		if (mm_strmap_get(&s->n->dir.by_mail, mail, &r))
			ok = mm_password_ok(s->n->dir.recipients[r].password, pass);
	}
	node_log("AUTH %s %s from %s: %s", mech, mech[0] == 'E' ? s->peer_cn : user, s->ip,
	         ok ? "ok" : "refused");
	if (ok)
		s->relay_ok = true;
	return ok;
}

static void rfc5322_date(time_t t, char *out, size_t n)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* RFC 3848: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both) */
static const char *with_protocol(const struct session *s)
{
	if (!s->smtpd.esmtp)
		return "SMTP";
	static const char *names[] = {"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"};
	return names[(s->smtpd.tls_active ? 1 : 0) + (s->smtpd.authenticated ? 2 : 0)];
}

int node_enqueue(struct node *n, struct session *s, const struct mm_spool_msg *sm,
                 const struct iovec *body, int nbody)
{
	struct mm_spool_loc loc;
	uint64_t lsn;
	int e = mm_spool_put(&n->spool, sm, body, nbody, &loc, &lsn);
	if (e != 0)
		return e;
	struct mm_qmsg *m = mm_qmsg_from_spool(sm);
	m->body = loc;
	struct commit *c = mm_xcalloc(1, sizeof(*c));
	*c = (struct commit){.session = s, .msg = m, .lsn = lsn};
	if (n->commits_tail)
		n->commits_tail->next = c;
	else
		n->commits = c;
	n->commits_tail = c;
	if (s)
		s->waiting = true;
	mm_spool_sync(&n->spool, lsn);
	return 0;
}

static void submit_cb(void *ctx, const struct mm_envelope *env, const struct mm_buf *body)
{
	struct session *s = ctx;
	struct node *n = s->n;
	struct mm_spool_rcpt *sr = mm_xcalloc(env->nrcpt, sizeof(*sr));
	for (size_t i = 0; i < env->nrcpt; i++)
		sr[i] = (struct mm_spool_rcpt){env->rcpt[i].addr, env->rcpt[i].orcpt,
		                               (uint8_t)env->rcpt[i].notify};
	struct mm_spool_msg sm = {.id = mm_spool_new_id(&n->spool, node_wall_ms()),
	                          .arrival = time(NULL),
	                          .ret = (uint8_t)env->mail.ret,
	                          .flags = env->mail.body_8bit ? MM_SPOOL_8BIT : 0,
	                          .sender = env->mail.addr,
	                          .envid = env->mail.envid,
	                          .helo = env->helo,
	                          .client = s->ip,
	                          .nrcpt = (uint32_t)env->nrcpt,
	                          .rcpt = sr};
	/* RFC 5321 §4.4: our trace header; it is also what counts hops */
	char date[64], received[1024];
	rfc5322_date((time_t)sm.arrival, date, sizeof(date));
	int rl =
	    snprintf(received, sizeof(received),
	             "Received: from %.255s ([%s])\r\n\tby %s (mailmesh) with %s id %016llx%s%s%s;"
	             "\r\n\t%s\r\n",
	             env->helo, s->ip, s->vs->conf.fqdn, with_protocol(s),
	             (unsigned long long)sm.id, env->nrcpt == 1 ? "\r\n\tfor <" : "",
	             env->nrcpt == 1 ? env->rcpt[0].addr : "", env->nrcpt == 1 ? ">" : "", date);
	if (rl < 0 || (size_t)rl >= sizeof(received))
		rl = 0;
	struct iovec iov[2] = {{received, (size_t)rl}, {body->p, body->len}};
	int e = node_enqueue(n, s, &sm, iov, 2);
	free(sr);
	if (e != 0) {
		node_log("queue write failed: %s", strerror(e));
		mm_smtpd_done(&s->smtpd, e == EFBIG
		                             ? "552 5.3.4 Message too big for the queue"
		                             : "451 4.3.0 Queue write failed, try again later");
		flush(s);
	}
}

void node_commits_durable(struct node *n, uint64_t durable, int err)
{
	if (err != 0) {
		/* after a failed fdatasync the state of the file is unknown
		 * (the page cache may have dropped the data): promise nothing
		 * more, and stop */
		node_log("fdatasync of the queue failed: %s; stopping", strerror(err));
		for (struct commit *c = n->commits; c; c = c->next)
			if (c->session && !c->session->gone) {
				mm_smtpd_done(&c->session->smtpd, "451 4.3.0 Queue write failed");
				flush(c->session);
			}
		event_base_loopexit(n->base, NULL);
		return;
	}
	while (n->commits && n->commits->lsn <= durable) {
		struct commit *c = n->commits;
		n->commits = c->next;
		if (n->commits == NULL)
			n->commits_tail = NULL;
		struct mm_qmsg *m = c->msg;
		track(n, "RECEIVED", m, "from=<%s> client=%s rcpts=%u size=%u", m->sender,
		      m->client, m->nrcpt, m->body.len);
		struct session *s = c->session;
		if (s != NULL) {
			s->waiting = false;
			if (s->gone) {
				session_free(s);
			} else {
				char line[128];
				snprintf(line, sizeof(line), "250 2.0.0 Ok: queued as %s",
				         m->idhex);
				mm_smtpd_done(&s->smtpd, line);
				flush(s);
				if (s->bev)
					read_cb(s->bev, s); /* pipelined input waiting */
			}
		}
		free(c);
		node_route_message(n, m);
	}
}

static const struct mm_smtpd_ops ops = {.rcpt = rcpt_cb, .submit = submit_cb, .auth = auth_cb};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	(void)l;
	struct vserver *vs = arg;
	struct node *n = vs->node;
	char ip[48] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	struct ipcount *cnt = ip_slot(n, ip);
	if (n->stopping || n->nsessions >= n->set.max_sessions ||
	    cnt->n >= n->set.max_sessions_per_ip) {
		static const char busy[] = "421 4.7.0 Too many connections, try again later\r\n";
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	struct session *s = mm_xcalloc(1, sizeof(*s));
	s->n = n;
	s->vs = vs;
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	memcpy(&s->sa, sa, (size_t)socklen < sizeof(s->sa) ? (size_t)socklen : sizeof(s->sa));
	s->relay_ok = relay_allowed(n, vs, sa);
	cnt->n++;
	n->nsessions++;
	s->next = n->sessions;
	if (n->sessions)
		n->sessions->prev = s;
	n->sessions = s;
	/* replies are small and come in bursts: never wait for an ACK */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->fd = fd;
	s->bev = bufferevent_socket_new(n->base, fd, 0);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	struct timeval idle = {(time_t)n->set.idle_timeout_s, 0};
	bufferevent_set_timeouts(s->bev, &idle, &idle);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	mm_smtpd_init(&s->smtpd, &vs->conf, &ops, s);
	mm_smtpd_start(&s->smtpd);
	flush(s);
}

int node_listen(struct node *n)
{
	for (size_t i = 0; i < n->nvs; i++) {
		struct vserver *vs = &n->vs[i];
		struct sockaddr_storage ss;
		int len = sizeof(ss);
		if (evutil_parse_sockaddr_port(vs->bind, (struct sockaddr *)&ss, &len) != 0) {
			node_log("virtual server %s/%s: bad bind address %s", n->self, vs->name,
			         vs->bind);
			return -1;
		}
		vs->listener = evconnlistener_new_bind(n->base, accept_cb, vs,
		                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
		                                       1024, (struct sockaddr *)&ss, len);
		if (vs->listener == NULL) {
			node_log("virtual server %s/%s: cannot listen on %s: %s", n->self, vs->name,
			         vs->bind, strerror(errno));
			return -1;
		}
	}
	return 0;
}

void node_say_goodbye(struct node *n)
{
	for (struct session *s = n->sessions, *next; s; s = next) {
		next = s->next; /* flush may free s */
		if (s->bev == NULL || s->closing)
			continue;
		mm_smtpd_abort(&s->smtpd, "421 4.3.2 System shutting down, try again later");
		flush(s);
	}
}

void node_close_sessions(struct node *n)
{
	while (n->sessions) {
		struct session *s = n->sessions;
		s->waiting = false; /* its commit, if any, is dropped with it */
		session_free(s);
	}
}

void node_stop_listening(struct node *n)
{
	for (size_t i = 0; i < n->nvs; i++)
		if (n->vs[i].listener) {
			evconnlistener_free(n->vs[i].listener);
			n->vs[i].listener = NULL;
		}
}

/* The SMTP virtual servers: listeners, and one libevent bufferevent per
 * session driving the sans-I/O machine of core/smtp_server.c. Here are the
 * session's bounds in time and memory, the categorizer and relay policy at
 * RCPT time (DESIGN §4.1, core/relay.c), and the hand-over of a complete
 * message to the commit pipeline (core/commit.c), whose answer comes back
 * through node_answer_commits. */
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
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "date.h"
#include "logfmt.h"
#include "node.h"
#include "password.h"
#include "tls.h"

struct session {
	struct node *n;
	struct vserver *vs;
	struct bufferevent *bev;
	evutil_socket_t fd; /* ours: the bufferevents do not close it */
	SSL *ssl;           /* ours too (libevent frees it only with the fd) */
	struct mm_smtpd smtpd;
	char ip[48];
	struct mm_relay_client client;
	bool waiting; /* a commit holds this session's reply */
	bool closing;
	bool tls_switching;  /* 220 to STARTTLS sent; the handshake follows */
	bool throttled;      /* too many unsent replies: not read until they drain */
	const char *refusal; /* the message could not be queued: the reply, sent
	                      * once the machine has returned from submit */
	char peer_cn[256];
	/* the organization server the client certificate names, or "" */
	char server_name[MM_CERT_NAME_MAX + 1];
	struct mm_xlink_srv *xlink; /* its X-LINK2STATE exchange, once begun */
	/* who AUTH PLAIN/LOGIN authenticated (lower case), or "" */
	char login[MM_SMTP_CMD_MAX];
	char reply[600];
	/* deadlines (slowloris): a whole command line, a whole transfer */
	struct event *deadline;
	int64_t line_t0;             /* ms: first byte of the pending line; 0: none */
	int64_t data_t0;             /* ms: the transfer began; 0: not in one */
	uint64_t data_bytes;         /* of this transfer */
	struct session *prev, *next; /* node->sessions */
};

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
	if (s->waiting)
		mm_qm_disown(&n->qm, s); /* its message is routed all the same */
	if (s->bev)
		bufferevent_free(s->bev);
	SSL_free(s->ssl);
	if (s->fd >= 0)
		evutil_closesocket(s->fd);
	if (s->deadline)
		event_free(s->deadline);
	ip_slot(n, s->ip)->n--;
	n->nsessions--;
	if (s->prev)
		s->prev->next = s->next;
	else
		n->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	mm_smtpd_free(&s->smtpd);
	xlinks_session_free(s->xlink);
	free(s);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);

/* An organization server, by its certificate: verified against the
 * organization's CA and naming (mailmesh:server:NAME) a server of the
 * directory -- an admin's or a master's certificate earns no relaying. */
static bool org_server_cert(struct session *s, SSL *ssl)
{
	char name[MM_CERT_NAME_MAX + 1];
	enum mm_cert_kind kind;
	bool verified = mm_tls_peer_verified(ssl, s->peer_cn, sizeof(s->peer_cn));
	if (!verified || !mm_tls_peer_identity(ssl, name, sizeof(name), &kind) ||
	    kind != MM_CERT_SERVER)
		return false;
	const struct mm_table *t = &s->n->dir.table;
	for (size_t g = 0; g < t->n; g++)
		for (size_t k = 0; k < t->entries[g]->n_servers; k++)
			if (strcmp(t->entries[g]->servers[k]->name, name) == 0) {
				snprintf(s->server_name, sizeof(s->server_name), "%s", name);
				return true;
			}
	return false;
}

static void set_timeouts(struct session *s)
{
	struct timeval idle = {(time_t)s->n->set.idle_timeout_s, 0};
	bufferevent_set_timeouts(s->bev, &idle, &idle);
	/* libevent stops reading the socket once this much waits unread */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 65536);
	/* write_cb runs when the replies waiting have drained this far */
	bufferevent_setwatermark(s->bev, EV_WRITE, s->n->set.max_reply_backlog / 2, 0);
}

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
		session_free(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	set_timeouts(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	/* the handshake is a command line too: a client that trickles it a
	 * byte at a time (each byte restarts the idle timer) loses it */
	struct timeval tv = {(time_t)s->n->set.command_deadline_s, 0};
	evtimer_add(s->deadline, &tv);
}

static size_t unsent(const struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct session *s = arg;
	if (s->throttled && unsent(s) <= s->n->set.max_reply_backlog / 2) {
		/* the client reads its replies again: so do we */
		s->throttled = false;
		bufferevent_enable(s->bev, EV_READ);
		read_cb(s->bev, s);
		return;
	}
	if (unsent(s) != 0)
		return;
	if (s->closing)
		session_free(s);
	else if (s->tls_switching && s->smtpd.state == MM_SMTPD_TLS)
		start_tls(s);
}

/* Send what the machine wrote; close once it is out if the session ended.
 * Returns false when s is gone. */
static bool flush(struct session *s)
{
	if (s->smtpd.out.len > 0) {
		bufferevent_write(s->bev, s->smtpd.out.p, s->smtpd.out.len);
		mm_buf_reset(&s->smtpd.out);
	}
	if (s->smtpd.state == MM_SMTPD_TLS && !s->tls_switching) {
		s->tls_switching = true;
		if (unsent(s) == 0)
			start_tls(s);
		return false;
	}
	if (s->smtpd.state == MM_SMTPD_CLOSED && !s->closing) {
		s->closing = true;
		bufferevent_disable(s->bev, EV_READ);
		if (unsent(s) == 0) {
			session_free(s);
			return false;
		}
	}
	return true;
}

/* Every per-session time has a bound: a command line must arrive whole
 * within command_deadline_s of its first byte, and a DATA or BDAT transfer
 * within data_deadline_s plus a second for every data_min_rate bytes, so
 * a client that sends a byte a second (which restarts the idle timer every
 * time) still loses its session -- as Postfix's smtpd_per_record_deadline
 * and smtpd_min_data_rate do. */
static void arm_deadline(struct session *s)
{
	const struct mm_settings *set = &s->n->set;
	int64_t now = node_now_ms(), at = 0;
	bool data = s->smtpd.state == MM_SMTPD_DATA || s->smtpd.state == MM_SMTPD_BDAT;
	if (data) {
		if (s->data_t0 == 0)
			s->data_t0 = now, s->data_bytes = 0;
		uint64_t rate = set->data_min_rate ? set->data_min_rate : 1;
		at = s->data_t0 +
		     (int64_t)(set->data_deadline_s * 1000 + s->data_bytes * 1000 / rate);
		s->line_t0 = 0;
	} else {
		s->data_t0 = 0;
		/* a line over the limit is dropped as it comes (discarding):
		 * still one line, still under its deadline */
		if (s->smtpd.in.len == 0 && !s->smtpd.discarding)
			s->line_t0 = 0;
		else if (s->line_t0 == 0)
			s->line_t0 = now;
		if (s->line_t0)
			at = s->line_t0 + (int64_t)set->command_deadline_s * 1000;
		else if (s->smtpd.tls_active)
			/* under TLS a record trickled a byte at a time never
			 * reaches us as a line, yet restarts the idle timer:
			 * the next command must come within idle_timeout_s of
			 * the last bytes we could read */
			at = now + (int64_t)set->idle_timeout_s * 1000;
	}
	if (at == 0) {
		evtimer_del(s->deadline);
		return;
	}
	int64_t d = at > now ? at - now : 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
	evtimer_add(s->deadline, &tv);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct session *s = arg;
	if (s->waiting)
		return;
	node_log("session from %s: %s deadline passed", s->ip,
	         s->tls_switching ? "TLS handshake"
	         : s->data_t0     ? "transfer"
	                          : "command line");
	if (s->tls_switching || s->closing) {
		/* no reply can reach a client that does not finish its
		 * handshake, or does not read the last one */
		session_free(s);
		return;
	}
	mm_smtpd_abort(&s->smtpd, "421 4.4.2 Timeout: too slow, closing connection");
	flush(s);
}

/* A message the spool refused is answered once the machine has returned
 * from submit; the answer feeds pipelined input, which may bring another
 * message and another refusal: settle them all. */
static void settle_refusals(struct session *s)
{
	while (s->refusal) {
		const char *why = s->refusal;
		s->refusal = NULL;
		mm_smtpd_done(&s->smtpd, why);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[16384];
	size_t n;
	/* while a message is being committed, input waits in the socket
	 * buffer rather than in memory; so it does while the client leaves
	 * more than max_reply_backlog of our replies unread */
	while (!s->closing && !s->throttled && s->smtpd.state != MM_SMTPD_WAIT &&
	       s->smtpd.state != MM_SMTPD_TLS && (n = evbuffer_get_length(in)) > 0) {
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		evbuffer_remove(in, chunk, n);
		bool data = s->smtpd.state == MM_SMTPD_DATA || s->smtpd.state == MM_SMTPD_BDAT;
		mm_smtpd_feed(&s->smtpd, chunk, n);
		if (data)
			s->data_bytes += n;
		settle_refusals(s);
		if (!flush(s))
			return;
		if (unsent(s) > s->n->set.max_reply_backlog) {
			s->throttled = true;
			bufferevent_disable(s->bev, EV_READ);
		}
	}
	if (!s->closing)
		arm_deadline(s);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct session *s = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* the TLS handshake after STARTTLS is done */
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
		s->client.org_cert = ssl && org_server_cert(s, ssl);
		s->tls_switching = false;
		s->login[0] = '\0';
		X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
		mm_smtpd_tls_started(&s->smtpd, peer != NULL);
		arm_deadline(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && !s->closing && !s->tls_switching) {
		mm_smtpd_abort(&s->smtpd, "421 4.4.2 Idle timeout, closing connection");
		flush(s);
		return;
	}
	/* the connection is gone; a commit in flight resolves without us */
	session_free(s);
}

/* RCPT: the categorizer (DESIGN §4.1). A directory recipient is written
 * the directory's way (one mailbox however it is spelled); mail for
 * outside the organization is relayed only as core/relay.c allows. */
static const char *rcpt_cb(void *ctx, const struct mm_envelope *env, struct mm_rcpt_args *r)
{
	(void)env;
	struct session *s = ctx;
	struct node *n = s->n;
	const struct mm_recipient *who = NULL;
	char domain[256];
	if (strcasecmp(r->addr, "postmaster") == 0) {
		/* RFC 5321 §4.5.1: <Postmaster> with no domain is accepted */
		const char *d = mm_directory_postmaster_domain(&n->dir, s->vs->conf.fqdn);
		if (d == NULL)
			return "550 5.1.1 <postmaster>: no authoritative domain here";
		if (strlen(d) + 11 >= sizeof(r->addr))
			return "550 5.1.1 <postmaster>: the domain is too long for a path";
		snprintf(r->addr, sizeof(r->addr), "postmaster@%.245s", d);
	}
	switch (mm_directory_categorize(&n->dir, r->addr, &who, domain)) {
	case MM_CAT_HOME: snprintf(r->addr, sizeof(r->addr), "%s", who->mail); return NULL;
	case MM_CAT_POSTMASTER:
		/* as it came, lower case: the domain fit in the path already */
		snprintf(r->addr, sizeof(r->addr), "postmaster@%.245s", domain);
		return NULL;
	case MM_CAT_UNKNOWN:
		snprintf(s->reply, sizeof(s->reply),
		         "550 5.1.1 <%s>: Recipient address rejected: User unknown", r->addr);
		return s->reply;
	case MM_CAT_BAD: return "501 5.1.3 Bad recipient address syntax";
	case MM_CAT_EXTERNAL: break;
	}
	const struct mm_relay_policy p = {s->vs->relay, s->vs->nrelay, n->org, n->norg,
	                                  n->tls.server != NULL};
	s->client.authenticated = s->smtpd.authenticated;
	switch (mm_relay_decide(&p, &s->client)) {
	case MM_RELAY_OK: {
		/* the domain is case-insensitive (RFC 5321 §2.4) */
		char *at = strrchr(r->addr, '@');
		for (char *c = at; c && *c; c++)
			*c = (char)tolower((unsigned char)*c);
		return NULL;
	}
	case MM_RELAY_NEED_CERT:
		return "530 5.7.0 Organization servers relay with their certificate: STARTTLS "
		       "first";
	case MM_RELAY_DENIED: break;
	}
	snprintf(s->reply, sizeof(s->reply), "550 5.7.1 <%s>: Relay access denied", r->addr);
	return s->reply;
}

static bool auth_cb(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct session *s = ctx;
	bool ok = false;
	if (strcmp(mech, "EXTERNAL") == 0) {
		/* an organization server, by its certificate */
		ok = s->client.org_cert;
	} else {
		char mail[MM_SMTP_CMD_MAX];
		size_t i = 0;
		for (; user[i] && i + 1 < sizeof(mail); i++)
			mail[i] = (char)tolower((unsigned char)user[i]);
		mail[i] = '\0';
		uint32_t r;
		if (mm_strmap_get(&s->n->dir.by_mail, mail, &r))
			ok = mm_password_ok(s->n->dir.recipients[r].password, pass);
		if (ok)
			snprintf(s->login, sizeof(s->login), "%s", mail);
	}
	char who[300];
	/* a bridgehead's exchanges authenticate every few seconds: only a
	 * refused certificate is news */
	if (ok && mech[0] == 'E')
		return ok;
	node_log("AUTH %s %s from %s: %s", mech,
	         mm_logfmt_quote(who, sizeof(who), mech[0] == 'E' ? s->peer_cn : user), s->ip,
	         ok ? "ok" : "refused");
	return ok;
}

/* MAIL after AUTH PLAIN/LOGIN: the sender must be an address of the
 * user's own recipient entry (as Postfix's reject_sender_login_mismatch),
 * or any user could send as the chief executive. Servers that showed an
 * organization certificate relay others' mail and are exempt; so is the
 * null sender (a user's program may send a bounce). */
static const char *mail_cb(void *ctx, const struct mm_mail_args *m)
{
	struct session *s = ctx;
	struct node *n = s->n;
	if (!n->set.sender_login_mismatch || !s->smtpd.authenticated || s->login[0] == '\0' ||
	    s->client.org_cert || m->addr[0] == '\0')
		return NULL;
	char sender[MM_SMTP_PATH_MAX + 1];
	size_t i = 0;
	for (; m->addr[i] && i + 1 < sizeof(sender); i++)
		sender[i] = (char)tolower((unsigned char)m->addr[i]);
	sender[i] = '\0';
	uint32_t user, owner;
	if (mm_strmap_get(&n->dir.by_mail, s->login, &user) &&
	    mm_strmap_get(&n->dir.by_mail, sender, &owner) &&
	    n->dir.recipients[user].entry == n->dir.recipients[owner].entry)
		return NULL;
	char who[300];
	node_log("MAIL FROM %s from %s refused: authenticated as %s",
	         mm_logfmt_quote(who, sizeof(who), m->addr), s->ip, s->login);
	snprintf(s->reply, sizeof(s->reply),
	         "553 5.7.1 <%s>: Sender address rejected: not owned by user %.256s", m->addr,
	         s->login);
	return s->reply;
}

/* RFC 3848: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both) */
static const char *with_protocol(const struct session *s)
{
	if (!s->smtpd.esmtp)
		return "SMTP";
	if (s->smtpd.tls_active)
		return s->smtpd.authenticated ? "ESMTPSA" : "ESMTPS";
	return s->smtpd.authenticated ? "ESMTPA" : "ESMTP";
}

static void submit_cb(void *ctx, const struct mm_envelope *env, const struct mm_buf *body)
{
	struct session *s = ctx;
	struct node *n = s->n;
	struct mm_spool_rcpt *sr = mm_xcalloc(env->nrcpt, sizeof(*sr));
	for (size_t i = 0; i < env->nrcpt; i++)
		sr[i] = (struct mm_spool_rcpt){env->rcpt[i].addr, env->rcpt[i].orcpt,
		                               (uint8_t)env->rcpt[i].notify};
	int64_t wall = node_wall_ms();
	struct mm_spool_msg sm = {.id = mm_spool_new_id(&n->spool, (uint64_t)wall),
	                          .arrival = wall / 1000,
	                          .ret = (uint8_t)env->mail.ret,
	                          .flags = env->mail.body_8bit ? MM_SPOOL_8BIT : 0,
	                          .sender = env->mail.addr,
	                          .envid = env->mail.envid,
	                          .helo = env->helo,
	                          .client = s->ip,
	                          .nrcpt = (uint32_t)env->nrcpt,
	                          .rcpt = sr};
	/* RFC 5321 §4.4: our trace header; it is also what counts hops */
	char date[40], received[1024];
	mm_date_rfc5322(sm.arrival, date);
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
	int e = mm_qm_submit(&n->qm, &sm, iov, 2, s);
	free(sr);
	if (e == 0) {
		s->waiting = true;
		return;
	}
	/* nothing of the record stays; the node goes on (a full disk is the
	 * client's cue to try again later, RFC 3463 4.3.1) */
	node_log("queue write failed: %s", strerror(e));
	s->refusal = e == EFBIG ? "552 5.3.4 Message too big for the queue"
	                        : "452 4.3.1 Insufficient system storage, try again later";
}

void node_answer_commits(struct node *n)
{
	struct mm_qm_resolved r;
	while (mm_qm_next_resolved(&n->qm, &r)) {
		struct session *s = r.owner;
		s->waiting = false;
		char line[128];
		if (r.err == 0)
			snprintf(line, sizeof(line), "250 2.0.0 Ok: queued as %s", r.idhex);
		else
			snprintf(line, sizeof(line), "451 4.3.0 Queue write failed");
		mm_smtpd_done(&s->smtpd, line);
		settle_refusals(s);
		if (flush(s))
			read_cb(s->bev, s); /* pipelined input waiting */
	}
}

uint32_t node_receiving(const struct node *n)
{
	uint32_t k = 0;
	for (const struct session *s = n->sessions; s; s = s->next)
		k += s->smtpd.state == MM_SMTPD_DATA || s->smtpd.state == MM_SMTPD_BDAT;
	return k;
}

/* X-LINK2STATE, once the machine's checks passed: AUTH EXTERNAL succeeded,
 * so the certificate named an organization server (org_server_cert). */
static enum mm_xlink_result xlink_cb(void *ctx, const char *arg, struct mm_buf *out)
{
	struct session *s = ctx;
	return xlinks_serve(s->n->xl, &s->xlink, s->server_name, arg, out);
}

static const struct mm_smtpd_ops ops = {
    .rcpt = rcpt_cb, .submit = submit_cb, .auth = auth_cb, .mail = mail_cb, .xlink = xlink_cb};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	(void)l, (void)socklen;
	struct vserver *vs = arg;
	struct node *n = vs->node;
	char ip[48] = "?";
	struct mm_relay_client client = {.family = sa->sa_family};
	if (sa->sa_family == AF_INET) {
		memcpy(client.addr, &((struct sockaddr_in *)sa)->sin_addr, 4);
		inet_ntop(AF_INET, client.addr, ip, sizeof(ip));
	} else if (sa->sa_family == AF_INET6) {
		memcpy(client.addr, &((struct sockaddr_in6 *)sa)->sin6_addr, 16);
		inet_ntop(AF_INET6, client.addr, ip, sizeof(ip));
	}
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
	s->client = client;
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
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
	s->deadline = evtimer_new(n->base, deadline_cb, s);
	s->bev = bufferevent_socket_new(n->base, fd, 0);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	set_timeouts(s);
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

void node_recheck_sessions(struct node *n)
{
	for (struct session *s = n->sessions, *next; s; s = next) {
		next = s->next; /* flush may free s */
		if (!s->client.org_cert || s->ssl == NULL || mm_tls_peer_still_trusted(s->ssl))
			continue;
		/* what the certificate earned goes: relaying, AUTH EXTERNAL,
		 * X-LINK2STATE; and the session, unless a commit holds it */
		char q[300];
		node_log("session from %s: the certificate of %s no longer verifies (revoked?): "
		         "%s",
		         s->ip, mm_logfmt_quote(q, sizeof(q), s->server_name),
		         s->waiting || s->closing ? "no more an organization server's" : "closed");
		s->client.org_cert = false;
		s->server_name[0] = '\0';
		if (s->waiting || s->closing)
			continue;
		mm_smtpd_abort(&s->smtpd,
		               "421 4.7.0 Your certificate is revoked, closing connection");
		flush(s);
	}
}

void node_say_goodbye(struct node *n)
{
	for (struct session *s = n->sessions, *next; s; s = next) {
		next = s->next; /* flush may free s */
		if (s->closing || s->waiting)
			continue;
		mm_smtpd_abort(&s->smtpd, "421 4.3.2 System shutting down, try again later");
		flush(s);
	}
}

void node_close_sessions(struct node *n)
{
	while (n->sessions)
		session_free(n->sessions);
}

void node_stop_listening(struct node *n)
{
	for (size_t i = 0; i < n->nvs; i++)
		if (n->vs[i].listener) {
			evconnlistener_free(n->vs[i].listener);
			n->vs[i].listener = NULL;
		}
}

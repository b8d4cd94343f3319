/* Outgoing SMTP sessions (env.session_* of core/qmgr.h): one connection
 * per session the queue manager numbers, running the sans-I/O machine of
 * core/smtp_client.c over a libevent bufferevent, with STARTTLS per the
 * queue's policy. Connections leave from this server's own address, so the
 * next hop knows an organization server. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "node.h"
#include "smtp_client.h"

struct conn {
	struct node *n;
	uint32_t sid;
	int tls;  /* MM_SMTPC_TLS_* */
	bool org; /* an organization server: its certificate must chain to ours */
	char server[MM_CERT_NAME_MAX + 1]; /* and name it, when known */
	struct bufferevent *bev;
	struct mm_smtpc c;
	bool connected;
	bool tls_pending;   /* the handshake after STARTTLS is running */
	bool has_job;       /* a job of the queue manager is in flight */
	bool ready_told;    /* the queue manager knows the session is up */
	evutil_socket_t fd; /* ours: the bufferevents do not close it */
	SSL *ssl;           /* ours too (libevent frees it only with the fd) */
	char addr[80];
	char why[300];     /* a failure before the connection started */
	struct conn *next; /* node->failed_conns */
};

static void conn_free(struct conn *c)
{
	mm_u64map_del(&c->n->conns, c->sid);
	if (c->bev)
		bufferevent_free(c->bev);
	SSL_free(c->ssl);
	if (c->fd >= 0)
		evutil_closesocket(c->fd);
	mm_smtpc_free(&c->c);
	free(c);
}

static void conn_flush(struct conn *c)
{
	if (c->c.out.len > 0 && c->bev) {
		bufferevent_write(c->bev, c->c.out.p, c->c.out.len);
		mm_buf_reset(&c->c.out);
	}
}

/* The session is over. A job in flight gets its results from the
 * machine (what had no answer fails with the reason) and is settled by
 * mm_qm_session_end: a session that is gone is never given another. */
static void conn_end(struct conn *c, bool failed, const char *why)
{
	struct node *n = c->n;
	uint32_t sid = c->sid;
	bool connected = c->connected;
	char reason[MM_SMTPC_REPLY_MAX];
	snprintf(reason, sizeof(reason), "%s", why ? why : c->c.error.text);
	if (c->has_job && c->c.state != MM_SMTPC_DEAD)
		mm_smtpc_broken(&c->c, reason);
	if (failed && c->fd >= 0) {
		/* abort, not close: bytes of ours still queued in the kernel
		 * (a message whose reply we gave up on) must not reach the peer
		 * after we rerouted it -- through a cut that heals, a graceful
		 * close would deliver them later and make a duplicate */
		struct linger abort_now = {.l_onoff = 1, .l_linger = 0};
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort_now, sizeof(abort_now));
	}
	conn_free(c);
	mm_qm_session_end(&n->qm, sid, failed, connected, reason);
}

static void conn_event(struct bufferevent *bev, short what, void *arg);
static void conn_read(struct bufferevent *bev, void *arg);

/* 220 to our STARTTLS: wrap the connection; conn_event sees the end of
 * the handshake. */
static void start_tls(struct conn *c)
{
	struct node *n = c->n;
	SSL_CTX *ctx = c->tls == MM_SMTPC_TLS_REQUIRED ? n->tls.client_verify : n->tls.client;
	if (ctx == NULL) {
		conn_end(c, true, "4.7.4 TLS is required, but this server has no --tls");
		return;
	}
	c->ssl = SSL_new(ctx);
	bufferevent_free(c->bev);
	c->bev =
	    bufferevent_openssl_socket_new(n->base, c->fd, c->ssl, BUFFEREVENT_SSL_CONNECTING, 0);
	if (c->bev == NULL) {
		conn_end(c, true, "4.7.0 cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	c->tls_pending = true;
	bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
	struct timeval tv = {(time_t)n->set.reply_timeout_s, 0};
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct node *n = c->n;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[8192];
	size_t len;
	while ((len = evbuffer_get_length(in)) > 0) {
		if (len > sizeof(chunk))
			len = sizeof(chunk);
		evbuffer_remove(in, chunk, len);
		uint32_t sid = c->sid;
		switch (mm_smtpc_feed(&c->c, chunk, len)) {
		case MM_SMTPC_NONE: conn_flush(c); break;
		case MM_SMTPC_JOB_DONE:
			c->has_job = false;
			mm_qm_session_result(&n->qm, sid);
			/* the queue manager gave the next job, or asked to close */
			if (mm_u64map_get(&n->conns, sid) == NULL)
				return;
			conn_flush(c);
			break;
		case MM_SMTPC_READY:
			if (!c->ready_told) {
				c->ready_told = true;
				mm_qm_session_ready(&n->qm, sid);
				if (mm_u64map_get(&n->conns, sid) == NULL)
					return;
			}
			conn_flush(c);
			break;
		case MM_SMTPC_FAILED: conn_end(c, true, NULL); return;
		case MM_SMTPC_XLINK_DONE: break; /* never asked of a mail session */
		case MM_SMTPC_TLS:
			conn_flush(c);
			start_tls(c);
			return;
		}
		if (c->c.state == MM_SMTPC_DEAD) {
			conn_end(c, false, NULL);
			return;
		}
	}
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if ((what & BEV_EVENT_CONNECTED) && c->tls_pending) {
		c->tls_pending = false;
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		if (c->tls == MM_SMTPC_TLS_REQUIRED &&
		    (ssl == NULL || !mm_tls_peer_verified(ssl, NULL, 0))) {
			conn_end(c, true,
			         "4.7.5 TLS is required, and the next hop's certificate is not "
			         "trusted");
			return;
		}
		/* the side that dials checks the name it dialled */
		char err[200];
		if (c->org && c->server[0] && c->tls == MM_SMTPC_TLS_REQUIRED &&
		    !mm_tls_expect_peer(ssl, MM_CERT_SERVER, c->server, err, sizeof(err))) {
			char why[300];
			snprintf(why, sizeof(why), "4.7.5 the next hop is not server %s: %s",
			         c->server, err);
			conn_end(c, true, why);
			return;
		}
		mm_smtpc_tls_started(&c->c);
		conn_flush(c);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		c->connected = true;
		struct timeval tv = {(time_t)c->n->set.reply_timeout_s, 0};
		bufferevent_set_timeouts(c->bev, &tv, &tv);
		return;
	}
	if (c->c.state == MM_SMTPC_QUIT || c->c.state == MM_SMTPC_DEAD) {
		conn_end(c, false, NULL);
		return;
	}
	char why[400], err[120];
	if (!c->connected)
		snprintf(why, sizeof(why), "4.4.1 connect to %s failed: %s", c->addr,
		         what & BEV_EVENT_TIMEOUT
		             ? "timed out"
		             : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else if (c->tls_pending && c->tls == MM_SMTPC_TLS_REQUIRED &&
	         mm_tls_verify_failed(c->ssl, err, sizeof(err)))
		/* a verifying context ends the handshake on a bad certificate:
		 * that is a TLS failure (RFC 3463 4.7.5), not a lost connection */
		snprintf(why, sizeof(why),
		         "4.7.5 TLS is required, and the certificate of %s failed verification: %s",
		         c->addr, err);
	else
		snprintf(why, sizeof(why), "4.4.2 %s with %s",
		         what & BEV_EVENT_TIMEOUT ? "timeout" : "lost connection", c->addr);
	conn_end(c, true, why);
}

/* A failure before anything started is told on the next turn of the loop. */
static void fail_later(struct conn *c, const char *why)
{
	snprintf(c->why, sizeof(c->why), "%s", why);
	c->next = c->n->failed_conns;
	c->n->failed_conns = c;
	event_active(c->n->later_ev, 0, 0);
}

void relay_report_failed(struct node *n)
{
	struct conn *c;
	while ((c = n->failed_conns) != NULL) {
		n->failed_conns = c->next;
		char why[300];
		snprintf(why, sizeof(why), "%s", c->why);
		uint32_t sid = c->sid;
		conn_free(c);
		mm_qm_session_end(&n->qm, sid, true, false, why);
	}
}

void relay_open(void *ctx, uint32_t sid, const struct mm_qm_target *t)
{
	struct node *n = ctx;
	struct conn *c = mm_xcalloc(1, sizeof(*c));
	*c = (struct conn){.n = n, .sid = sid, .tls = t->tls, .org = t->org, .fd = -1};
	snprintf(c->addr, sizeof(c->addr), "%s", t->address);
	snprintf(c->server, sizeof(c->server), "%s", t->server ? t->server : "");
	mm_u64map_put(&n->conns, sid, c);
	mm_smtpc_init(&c->c, n->fqdn);
	/* without --tls this server has no TLS client: opportunistic means
	 * clear text, required stays required and fails closed */
	c->c.tls_want =
	    n->tls.client || t->tls == MM_SMTPC_TLS_REQUIRED ? t->tls : MM_SMTPC_TLS_NONE;
	char why[300];
	c->bev = node_dial(n, t->address, conn_read, conn_event, c, &c->fd, why, sizeof(why));
	if (c->bev == NULL)
		fail_later(c, why);
}

void relay_send(void *ctx, uint32_t sid, struct mm_smtpc_job *job)
{
	struct node *n = ctx;
	struct conn *c = mm_u64map_get(&n->conns, sid);
	if (c == NULL)
		return;
	c->has_job = true;
	mm_smtpc_send(&c->c, job);
	conn_flush(c);
}

void relay_close(void *ctx, uint32_t sid)
{
	struct node *n = ctx;
	struct conn *c = mm_u64map_get(&n->conns, sid);
	if (c == NULL)
		return;
	mm_smtpc_quit(&c->c);
	conn_flush(c);
}

void relay_free_all(struct node *n)
{
	while (n->failed_conns) {
		struct conn *c = n->failed_conns;
		n->failed_conns = c->next;
		conn_free(c);
	}
	for (size_t i = 0; i < n->conns.cap; i++) {
		struct conn *c = n->conns.slots[i].value;
		if (c) {
			conn_free(c);
			i = (size_t)-1; /* the map moved under us: start over */
		}
	}
	mm_u64map_free(&n->conns);
}

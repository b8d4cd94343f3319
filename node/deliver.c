/* From the queue to the next hop: categorize and route each recipient
 * (DESIGN §4), local delivery to Maildir, relay over SMTP with the machine
 * of smtp_client.c, retry with backoff, expiry and DSNs (DESIGN §6). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "dsn.h"
#include "dns.h"
#include "maildir.h"
#include "node.h"
#include "smtp_client.h"

struct conn {
	struct node *n;
	struct mm_queue *q;
	struct bufferevent *bev;
	struct mm_smtpc c;
	bool connected, has_job;
	bool tls_pending;   /* the handshake after STARTTLS is running */
	evutil_socket_t fd; /* ours: the bufferevents do not close it */
	SSL *ssl;           /* ours too (libevent frees it only with the fd) */
	struct mm_job *job;
	struct mm_smtpc_job sj;
	char *body;
	const char **rcpts, **orcpts;
	uint8_t *notify;
	struct mm_smtpc_result *res;
	char addr[64];     /* ip:port connected to */
	struct conn *next; /* all connections, for shutdown */
};

static struct conn *conns;

/* The driver's part of a queue: its retry timer and, for delivery by MX,
 * the addresses of the domain's mail exchangers. */
struct qdrv {
	struct event *timer;
	struct node *n;
	struct mm_queue *q;
	char **addrs; /* best MX first */
	size_t naddrs;
	int64_t resolved_at; /* ms; the answer is kept MX_CACHE_MS */
	bool resolving;
	size_t next_addr; /* the exchanger connections go to now */
	size_t tried;     /* exchangers that refused a connection this round */
};

#define MX_CACHE_MS 300000

static void arm_timer_at(struct mm_queue *q, int64_t at)
{
	int64_t d = at - node_now_ms();
	if (d < 0)
		d = 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
	evtimer_add(((struct qdrv *)q->driver)->timer, &tv);
}

static void defer_job(struct node *n, struct mm_queue *q, struct mm_job *j, const char *why);

/* The next hop itself failed (connect, session, DNS): the hop machine says
 * when to try again and whether the path is now down; every job waiting
 * for the hop is deferred with the reason. */
static void hop_failed(struct node *n, struct mm_queue *q, const char *why)
{
	struct mm_hop_conf hc = {(uint32_t)n->set.retry_min_ms, (uint32_t)n->set.retry_max_ms,
	                         (uint32_t)n->set.retry_jitter_pct,
	                         (uint32_t)n->set.glitch_retry_count,
	                         (uint32_t)n->set.glitch_retry_interval_ms};
	struct mm_hop_actions a;
	mm_hop_failed(&q->st, &hc, node_now_ms(), node_random(n), &a);
	free(q->last_error);
	q->last_error = mm_xstrdup(why);
	if (a.timer_at)
		arm_timer_at(q, a.timer_at);
	if (a.report_down)
		node_log("next hop %s (%s) is down after %u failures: %s", q->name,
		         q->target ? q->target : "-", q->st.failures, why);
	struct mm_job *j;
	while ((j = mm_queue_pop(q)) != NULL)
		defer_job(n, q, j, why);
}

static void hop_ok(struct node *n, struct mm_queue *q)
{
	(void)n;
	struct mm_hop_actions a;
	mm_hop_ok(&q->st, &a);
	if (a.report_up)
		node_log("next hop %s (%s) is up again", q->name, q->target ? q->target : "-");
}

/* --- finishing recipients ---------------------------------------------- */

static void msg_release(struct node *n, struct mm_qmsg *m)
{
	if (m->pending == 0) {
		mm_spool_release(&n->spool, m->body.seg);
		mm_qmsg_free(m);
	}
}

static void rcpt_done(struct node *n, struct mm_qmsg *m, uint32_t idx)
{
	if (m->rcpt[idx].done)
		return;
	m->rcpt[idx].done = true;
	m->pending--;
	int e = mm_spool_done(&n->spool, m->id, idx);
	if (e != 0) /* the delivery may repeat after a restart: duplicates, not loss */
		node_log("queue: cannot record the end of %s for %s: %s", m->idhex,
		         m->rcpt[idx].addr, strerror(e));
}

static void rfc5322_now(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Recipients failed for good: one DSN for them (RFC 3464), unless the
 * message is itself a DSN or they asked for none; then they are done. */
static void bounce(struct node *n, struct mm_qmsg *m, const struct mm_dsn_rcpt *r, uint32_t nr)
{
	struct mm_dsn_rcpt *want = mm_xcalloc(nr, sizeof(*want));
	uint32_t nw = 0;
	for (uint32_t i = 0; i < nr; i++) {
		const struct mm_qrcpt *q = &m->rcpt[r[i].idx];
		track(n, "NDR", m, "to=<%s> status=%s reason=\"%s\"", q->addr, r[i].status,
		      r[i].diag ? r[i].diag : "");
		if (q->notify == 0 || (q->notify & MM_NOTIFY_FAILURE))
			want[nw++] = r[i];
	}
	if (nw > 0 && m->sender[0] != '\0') {
		char *orig = mm_xmalloc(m->body.len + 1);
		int e = mm_spool_read(&n->spool, &m->body, orig);
		struct mm_buf dsn = {0};
		char date[64], msgid[64];
		rfc5322_now(date, sizeof(date));
		snprintf(msgid, sizeof(msgid), "%s.dsn", m->idhex);
		mm_dsn_build(&dsn, n->fqdn, date, msgid, m, want, nw, e ? "" : orig,
		             e ? 0 : m->body.len);
		node_inject(n, "", m->sender, dsn.p, dsn.len);
		mm_buf_free(&dsn);
		free(orig);
	} else if (nw > 0) {
		/* never a DSN for a DSN (RFC 3461 §6.2) */
		track(n, "NDR-SUPPRESSED", m, "reason=\"null sender\"");
	}
	free(want);
	for (uint32_t i = 0; i < nr; i++)
		rcpt_done(n, m, r[i].idx);
}

static void bounce_one(struct node *n, struct mm_qmsg *m, uint32_t idx, const char *status,
                       const char *diag)
{
	struct mm_dsn_rcpt r = {idx, status, diag, NULL};
	bounce(n, m, &r, 1);
	msg_release(n, m);
}

static bool expired(struct node *n, const struct mm_qmsg *m)
{
	return (uint64_t)(time(NULL) - m->arrival) >= n->set.expire_s;
}

/* A job that could not go now: wait for the queue's retry, or expire
 * (4.4.7 becomes 5.4.7, with the last error as the diagnostic). */
static void defer_job(struct node *n, struct mm_queue *q, struct mm_job *j, const char *why)
{
	struct mm_qmsg *m = j->msg;
	for (uint32_t i = 0; i < j->n; i++) {
		struct mm_qrcpt *r = &m->rcpt[j->idx[i]];
		free(r->last_error);
		r->last_error = mm_xstrdup(why);
		track(n, "DEFERRED", m, "to=<%s> queue=\"%s\" reason=\"%s\"", r->addr, q->name,
		      why);
	}
	if (expired(n, m)) {
		struct mm_dsn_rcpt *r = mm_xcalloc(j->n, sizeof(*r));
		char diag[600];
		snprintf(diag, sizeof(diag), "X-mailmesh; delivery time expired; last error: %s",
		         why);
		for (uint32_t i = 0; i < j->n; i++)
			r[i] = (struct mm_dsn_rcpt){j->idx[i], "5.4.7", diag, NULL};
		bounce(n, m, r, j->n);
		free(r);
		mm_job_free(j);
		msg_release(n, m);
		return;
	}
	mm_queue_hold(q, j);
	/* held jobs come back with the hop's retry, or after retry_min_ms
	 * when only this job failed (a 4xx to a recipient) */
	struct event *t = ((struct qdrv *)q->driver)->timer;
	if (!evtimer_pending(t, NULL))
		arm_timer_at(q, q->st.retry_at ? q->st.retry_at
		                               : node_now_ms() + (int64_t)n->set.retry_min_ms);
}

/* --- routing ----------------------------------------------------------- */

static void retry_cb(evutil_socket_t fd, short what, void *arg);

struct mm_queue *node_queue(struct node *n, enum mm_queue_kind kind, const char *name,
                            const char *target, int hop)
{
	struct mm_queue *q = mm_queue_get(&n->queues, kind, name, target, hop);
	if (q->driver == NULL) {
		struct qdrv *d = mm_xcalloc(1, sizeof(*d));
		*d = (struct qdrv){.timer = evtimer_new(n->base, retry_cb, d), .n = n, .q = q};
		q->driver = d;
	}
	return q;
}

static bool is_self(struct node *n, const char *target)
{
	for (size_t i = 0; i < n->nvs; i++)
		if (strcmp(n->vs[i].bind, target) == 0)
			return true;
	return false;
}

struct pick {
	struct mm_queue *q;
	struct mm_job *j;
};

/* Categorize and route recipients idx of m, and queue them: one job per
 * next hop. */
static void place(struct node *n, struct mm_qmsg *m, const uint32_t *idx, uint32_t nidx)
{
	struct pick *picks = mm_xcalloc(nidx, sizeof(*picks));
	uint32_t np = 0;
	m->pending++; /* hold the message while its recipients are placed */
	for (uint32_t k = 0; k < nidx; k++) {
		uint32_t i = idx[k];
		struct mm_qrcpt *r = &m->rcpt[i];
		if (r->done)
			continue;
		const char *home = NULL;
		char domain[256], target[300];
		struct mm_queue *q = NULL;
		struct mm_route rt = {0};
		switch (mm_directory_categorize(&n->dir, r->addr, &home, domain)) {
		case MM_CAT_UNKNOWN:
			bounce_one(n, m, i, "5.1.1",
			           "X-mailmesh; no such recipient in the directory");
			continue;
		case MM_CAT_BAD:
			bounce_one(n, m, i, "5.1.3", "X-mailmesh; bad recipient address syntax");
			continue;
		case MM_CAT_HOME:
			if (strcmp(home, n->self) == 0)
				rt.kind = MM_ROUTE_LOCAL;
			else
				mm_route_to_server(&n->router, home, m->idhex, &rt);
			break;
		case MM_CAT_EXTERNAL: mm_route_to_domain(&n->router, domain, m->idhex, &rt); break;
		}
		const struct mm_topo *t = &n->router.topo;
		switch (rt.kind) {
		case MM_ROUTE_LOCAL: q = n->local; break;
		case MM_ROUTE_UNREACHABLE: q = n->unreachable; break;
		case MM_ROUTE_NO_ROUTE:
			bounce_one(n, m, i, "5.4.0",
			           "X-mailmesh; no connector's address space matches the domain");
			continue;
		default:
			if (rt.hop == MM_HOP_VSERVER) {
				const struct mm_topo_vs *vs = &t->vs[rt.hop_vs];
				q = node_queue(n, MM_Q_LINK, t->servers[vs->server].name,
				               vs->address, rt.hop);
			} else if (rt.hop == MM_HOP_SMART_HOST) {
				mm_smart_host_address(rt.smart_host, target, sizeof(target));
				if (is_self(n, target)) {
					bounce_one(
					    n, m, i, "5.3.5",
					    "X-mailmesh; the smart host is this server: mail loops "
					    "back to myself");
					continue;
				}
				q = node_queue(n, MM_Q_LINK,
				               t->conns[rt.conns[rt.nconns - 1]].c->name, target,
				               rt.hop);
			} else {
				q = node_queue(n, MM_Q_LINK, domain, domain, rt.hop);
			}
			break;
		}
		if (q->kind == MM_Q_LINK) {
			/* mmTlsPolicy of the SMTP connector; inside the organization,
			 * TLS whenever both sides have it */
			int policy = MM_SMTPC_TLS_OPPORTUNISTIC;
			if (rt.hop != MM_HOP_VSERVER && rt.nconns > 0) {
				Mailmesh__TlsPolicy p =
				    t->conns[rt.conns[rt.nconns - 1]].c->tls_policy;
				policy = p == MAILMESH__TLS_POLICY__TLS_REQUIRED
				             ? MM_SMTPC_TLS_REQUIRED
				         : p == MAILMESH__TLS_POLICY__TLS_NONE
				             ? MM_SMTPC_TLS_NONE
				             : MM_SMTPC_TLS_OPPORTUNISTIC;
			}
			q->tls = policy;
		}
		track(n, "ROUTED", m, "to=<%s> kind=%s queue=\"%s\"%s%s", r->addr,
		      mm_route_kind_name(rt.kind), q->name, q->target ? " next_hop=" : "",
		      q->target ? q->target : "");
		uint32_t p = 0;
		while (p < np && picks[p].q != q)
			p++;
		if (p == np)
			picks[np++] = (struct pick){q, mm_job_new(m)};
		mm_job_add(picks[p].j, i);
	}
	for (uint32_t k = 0; k < np; k++) {
		mm_queue_push(picks[k].q, picks[k].j);
		node_kick(n, picks[k].q);
	}
	free(picks);
	m->pending--;
	msg_release(n, m);
}

void node_route_message(struct node *n, struct mm_qmsg *m)
{
	uint32_t *all = mm_xcalloc(m->nrcpt, sizeof(*all));
	for (uint32_t i = 0; i < m->nrcpt; i++)
		all[i] = i;
	place(n, m, all, m->nrcpt);
	free(all);
}

void node_reroute(struct node *n)
{
	struct mm_queue *q = n->unreachable;
	struct mm_job *list = NULL, *j;
	mm_queue_release_held(q);
	while ((j = mm_queue_pop(q)) != NULL) {
		j->next = list;
		list = j;
	}
	while ((j = list) != NULL) {
		list = j->next;
		for (uint32_t i = 0; i < j->n; i++)
			track(n, "REROUTED", j->msg, "to=<%s>", j->msg->rcpt[j->idx[i]].addr);
		place(n, j->msg, j->idx, j->n);
		mm_job_free(j);
	}
}

/* --- local delivery ---------------------------------------------------- */

void node_local_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct node *n = arg;
	struct mm_queue *q = n->local;
	for (int batch = 0; batch < 64 && q->head && !q->frozen; batch++) {
		struct mm_job *j = mm_queue_pop(q);
		struct mm_qmsg *m = j->msg;
		char *body = mm_xmalloc(m->body.len + 1);
		int read_err = mm_spool_read(&n->spool, &m->body, body);
		struct mm_job *again = NULL;
		char why[300] = "";
		for (uint32_t i = 0; i < j->n; i++) {
			struct mm_qrcpt *r = &m->rcpt[j->idx[i]];
			int e = read_err;
			if (e == 0) {
				struct mm_buf pre = {0};
				mm_buf_printf(&pre, "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
				              m->sender, r->addr);
				e = mm_maildir_deliver(n->mailstore, r->addr, n->fqdn, pre.p,
				                       pre.len, body, m->body.len);
				mm_buf_free(&pre);
				if (e == 0) {
					track(n, "DELIVERED", m,
					      "to=<%s> queue=\"Local delivery\" "
					      "mailbox=%s/%s",
					      r->addr, n->mailstore, r->addr);
					rcpt_done(n, m, j->idx[i]);
					continue;
				}
			}
			snprintf(why, sizeof(why), "4.3.0 local delivery failed: %s", strerror(e));
			if (again == NULL)
				again = mm_job_new(m);
			mm_job_add(again, j->idx[i]);
		}
		free(body);
		mm_job_free(j);
		if (again)
			defer_job(n, q, again, why);
		msg_release(n, m);
	}
	if (q->head && !q->frozen)
		event_active(n->local_ev, 0, 0);
}

/* --- SMTP relay -------------------------------------------------------- */

static void conn_free(struct conn *c)
{
	for (struct conn **p = &conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->bev)
		bufferevent_free(c->bev);
	SSL_free(c->ssl);
	if (c->fd >= 0)
		evutil_closesocket(c->fd);
	mm_smtpc_free(&c->c);
	free(c->body);
	free(c->rcpts);
	free(c->orcpts);
	free(c->notify);
	free(c->res);
	free(c);
}

static void conn_flush(struct conn *c)
{
	if (c->c.out.len > 0) {
		bufferevent_write(c->bev, c->c.out.p, c->c.out.len);
		mm_buf_reset(&c->c.out);
	}
}

static void job_results(struct conn *c)
{
	struct node *n = c->n;
	struct mm_queue *q = c->q;
	struct mm_job *j = c->job;
	struct mm_qmsg *m = j->msg;
	struct mm_job *again = NULL;
	const char *why = NULL;
	struct mm_dsn_rcpt *fail = mm_xcalloc(j->n, sizeof(*fail));
	char(*status)[16] = mm_xcalloc(j->n, sizeof(*status));
	char **diag = mm_xcalloc(j->n, sizeof(*diag));
	uint32_t nf = 0;
	bool any_ok = false;
	for (uint32_t i = 0; i < j->n; i++) {
		const struct mm_smtpc_result *r = &c->res[i];
		uint32_t idx = j->idx[i];
		if (r->code / 100 == 2) {
			track(n, "DELIVERED", m, "to=<%s> queue=\"%s\" next_hop=%s reply=\"%s\"",
			      m->rcpt[idx].addr, q->name, c->addr, r->text);
			rcpt_done(n, m, idx);
			any_ok = true;
		} else if (r->code / 100 == 5) {
			mm_dsn_status_of(r->text, status[nf]);
			size_t dl = strlen(r->text) + 8;
			diag[nf] = mm_xmalloc(dl);
			snprintf(diag[nf], dl, "smtp; %s", r->text);
			fail[nf] = (struct mm_dsn_rcpt){idx, status[nf], diag[nf], c->addr};
			nf++;
		} else {
			if (again == NULL)
				again = mm_job_new(m);
			mm_job_add(again, idx);
			why = r->text;
		}
	}
	if (nf > 0)
		bounce(n, m, fail, nf);
	for (uint32_t i = 0; i < nf; i++)
		free(diag[i]);
	free(diag);
	free(status);
	free(fail);
	if (any_ok)
		hop_ok(n, q);
	if (again)
		defer_job(n, q, again, why && why[0] ? why : "4.4.2 no reply");
	mm_job_free(j);
	c->job = NULL;
	c->has_job = false;
	q->inflight--;
	free(c->body);
	c->body = NULL;
	msg_release(n, m);
}

/* Give the idle connection its next job, or say goodbye. */
static void conn_next(struct conn *c)
{
	struct mm_queue *q = c->q;
	struct node *n = c->n;
	struct mm_job *j = q->frozen || n->stopping ? NULL : mm_queue_pop(q);
	if (j == NULL) {
		mm_smtpc_quit(&c->c);
		conn_flush(c);
		return;
	}
	struct mm_qmsg *m = j->msg;
	c->job = j;
	c->has_job = true;
	q->inflight++;
	c->body = mm_xmalloc(m->body.len + 1);
	int e = mm_spool_read(&n->spool, &m->body, c->body);
	if (e != 0) {
		char why[128];
		snprintf(why, sizeof(why), "4.3.0 cannot read the queued message: %s", strerror(e));
		c->job = NULL;
		c->has_job = false;
		q->inflight--;
		free(c->body);
		c->body = NULL;
		defer_job(n, q, j, why);
		conn_next(c);
		return;
	}
	c->rcpts = mm_xrealloc(c->rcpts, j->n, sizeof(*c->rcpts));
	c->orcpts = mm_xrealloc(c->orcpts, j->n, sizeof(*c->orcpts));
	c->notify = mm_xrealloc(c->notify, j->n, sizeof(*c->notify));
	c->res = mm_xrealloc(c->res, j->n, sizeof(*c->res));
	for (uint32_t i = 0; i < j->n; i++) {
		c->rcpts[i] = m->rcpt[j->idx[i]].addr;
		c->orcpts[i] = m->rcpt[j->idx[i]].orcpt;
		c->notify[i] = m->rcpt[j->idx[i]].notify;
	}
	c->sj = (struct mm_smtpc_job){.sender = m->sender,
	                              .nrcpt = j->n,
	                              .rcpt = c->rcpts,
	                              .body = c->body,
	                              .len = m->body.len,
	                              .body_8bit = m->flags & MM_SPOOL_8BIT,
	                              .envid = m->envid,
	                              .ret = m->ret,
	                              .notify = c->notify,
	                              .orcpt = c->orcpts,
	                              .res = c->res};
	mm_smtpc_send(&c->c, &c->sj);
	conn_flush(c);
}

/* The connection is over (failed, broken or done). */
static void conn_end(struct conn *c, bool failed)
{
	struct mm_queue *q = c->q;
	struct node *n = c->n;
	if (c->has_job) {
		if (!failed)
			mm_smtpc_broken(&c->c, "4.4.2 connection closed by the next hop");
		job_results(c);
	}
	if (failed && q->hop == MM_HOP_DNS && !c->connected) {
		/* as RFC 5321 §5.1 has it: a mail exchanger that cannot be
		 * reached hands over to the next one at once; only when every
		 * one of them failed does the hop wait for its retry */
		struct qdrv *d = q->driver;
		if (d->tried + 1 < d->naddrs) {
			d->tried++;
			d->next_addr = (d->next_addr + 1) % d->naddrs;
			free(q->last_error);
			q->last_error = mm_xstrdup(c->c.error.text);
			failed = false;
		} else {
			d->next_addr = d->tried = 0; /* next round: the best one first */
		}
	}
	if (failed) {
		/* the next hop itself failed: the whole queue waits for the retry
		 * time, and every waiting recipient learns why */
		hop_failed(n, q, c->c.error.text);
	}
	q->active--;
	conn_free(c);
	node_kick(n, q);
}

static void conn_event(struct bufferevent *bev, short what, void *arg);
static void conn_read(struct bufferevent *bev, void *arg);

/* 220 to our STARTTLS: wrap the connection; conn_event sees the end of
 * the handshake. */
static void start_tls(struct conn *c)
{
	struct node *n = c->n;
	SSL_CTX *ctx = c->q->tls == MM_SMTPC_TLS_REQUIRED ? n->tls.client_verify : n->tls.client;
	if (ctx == NULL) {
		mm_smtpc_broken(&c->c, "4.7.4 TLS is required, but this server has no --tls");
		conn_end(c, true);
		return;
	}
	c->ssl = SSL_new(ctx);
	bufferevent_free(c->bev);
	c->bev =
	    bufferevent_openssl_socket_new(n->base, c->fd, c->ssl, BUFFEREVENT_SSL_CONNECTING, 0);
	if (c->bev == NULL) {
		mm_smtpc_broken(&c->c, "4.7.0 cannot start TLS");
		conn_end(c, true);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	struct bufferevent *f = c->bev;
	c->tls_pending = true;
	bufferevent_setcb(f, conn_read, NULL, conn_event, c);
	struct timeval tv = {(time_t)n->set.reply_timeout_s, 0};
	bufferevent_set_timeouts(f, &tv, &tv);
	bufferevent_enable(f, EV_READ | EV_WRITE);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[8192];
	size_t len;
	while ((len = evbuffer_get_length(in)) > 0) {
		if (len > sizeof(chunk))
			len = sizeof(chunk);
		evbuffer_remove(in, chunk, len);
		switch (mm_smtpc_feed(&c->c, chunk, len)) {
		case MM_SMTPC_NONE: conn_flush(c); break;
		case MM_SMTPC_JOB_DONE:
			job_results(c);
			/* fall through */
		case MM_SMTPC_READY: conn_next(c); break;
		case MM_SMTPC_FAILED:
			if (c->has_job)
				job_results(c);
			conn_end(c, true);
			return;
		case MM_SMTPC_TLS:
			conn_flush(c);
			start_tls(c);
			return;
		}
		if (c->c.state == MM_SMTPC_DEAD) {
			conn_end(c, false);
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
		if (c->q->tls == MM_SMTPC_TLS_REQUIRED &&
		    (ssl == NULL || !mm_tls_peer_verified(ssl, NULL, 0))) {
			mm_smtpc_broken(&c->c, "4.7.5 TLS is required, and the next hop's "
			                       "certificate is not trusted");
			conn_end(c, true);
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
		conn_end(c, false);
		return;
	}
	char why[300];
	if (!c->connected)
		snprintf(why, sizeof(why), "4.4.1 connect to %s failed: %s", c->addr,
		         what & BEV_EVENT_TIMEOUT
		             ? "timed out"
		             : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		snprintf(why, sizeof(why), "4.4.2 %s with %s",
		         what & BEV_EVENT_TIMEOUT ? "timeout" : "lost connection", c->q->target);
	mm_smtpc_broken(&c->c, why);
	conn_end(c, true);
}

static void addrs_free(struct qdrv *d)
{
	for (size_t i = 0; i < d->naddrs; i++)
		free(d->addrs[i]);
	free(d->addrs);
	d->addrs = NULL;
	d->naddrs = 0;
}

/* Every job of the queue, ready or held, fails for good with status. */
static void bounce_queue(struct node *n, struct mm_queue *q, const char *status, const char *diag)
{
	mm_queue_release_held(q);
	struct mm_job *j;
	while ((j = mm_queue_pop(q)) != NULL) {
		struct mm_dsn_rcpt *r = mm_xcalloc(j->n, sizeof(*r));
		for (uint32_t i = 0; i < j->n; i++)
			r[i] = (struct mm_dsn_rcpt){j->idx[i], status, diag, NULL};
		struct mm_qmsg *m = j->msg;
		bounce(n, m, r, j->n);
		free(r);
		mm_job_free(j);
		msg_release(n, m);
	}
}

static void mx_resolved(void *arg, enum mm_dns_status st, const char *const *addrs, size_t na,
                        const char *why)
{
	struct qdrv *d = arg;
	struct mm_queue *q = d->q;
	struct node *n = d->n;
	d->resolving = false;
	char status[16], diag[400];
	switch (st) {
	case MM_DNS_OK:
		addrs_free(d);
		d->addrs = mm_xcalloc(na, sizeof(*d->addrs));
		for (size_t i = 0; i < na; i++) {
			if (is_self(n, addrs[i])) {
				snprintf(diag, sizeof(diag),
				         "X-mailmesh; mail for %s loops back to myself (MX %s)",
				         q->name, addrs[i]);
				addrs_free(d);
				bounce_queue(n, q, "5.3.5", diag);
				return;
			}
			d->addrs[d->naddrs++] = mm_xstrdup(addrs[i]);
		}
		d->resolved_at = node_now_ms();
		d->next_addr = d->tried = 0;
		node_kick(n, q);
		return;
	case MM_DNS_TEMP: hop_failed(n, q, why); return;
	default:
		snprintf(status, sizeof(status), "%.*s", (int)strcspn(why, " "), why);
		snprintf(diag, sizeof(diag), "X-mailmesh; %s", why);
		bounce_queue(n, q, status, diag);
		return;
	}
}

static void conn_open(struct node *n, struct mm_queue *q)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	const char *addr = q->target;
	if (q->hop == MM_HOP_DNS) {
		struct qdrv *d = q->driver;
		if (d->naddrs == 0 || node_now_ms() - d->resolved_at > MX_CACHE_MS) {
			if (!d->resolving && n->dns) {
				d->resolving = true;
				mm_dns_mx(n->dns, q->target, mx_resolved, d);
			}
			return;
		}
		addr = d->addrs[d->next_addr % d->naddrs];
	}
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &len) != 0) {
		/* a smart host given by name: names go through MX resolution
		 * only; say so and wait */
		hop_failed(n, q, "4.4.3 the next hop is not an IP address");
		return;
	}
	/* from this server's own address, so that the next hop knows an
	 * organization server (relay rules), and without Nagle */
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		char why[128];
		snprintf(why, sizeof(why), "4.3.0 no socket for the next hop: %s", strerror(errno));
		struct mm_job *j;
		while ((j = mm_queue_pop(q)) != NULL)
			defer_job(n, q, j, why);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ss.ss_family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (n->src_len > 0 && n->src.ss_family == ss.ss_family &&
	    bind(fd, (struct sockaddr *)&n->src, (socklen_t)n->src_len) != 0)
		node_log("cannot bind the source address of a connection: %s", strerror(errno));
	struct conn *c = mm_xcalloc(1, sizeof(*c));
	c->n = n;
	c->q = q;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->next = conns;
	conns = c;
	mm_smtpc_init(&c->c, n->fqdn);
	/* without --tls this server has no TLS client: opportunistic means
	 * clear text, required stays required and fails closed */
	c->c.tls_want =
	    n->tls.client || q->tls == MM_SMTPC_TLS_REQUIRED ? q->tls : MM_SMTPC_TLS_NONE;
	c->fd = fd;
	c->bev = bufferevent_socket_new(n->base, fd, 0);
	bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
	struct timeval tv = {(time_t)(n->set.connect_timeout_ms / 1000),
	                     (suseconds_t)(n->set.connect_timeout_ms % 1000) * 1000};
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	q->active++;
	/* a failure found at once is reported through conn_event, deferred;
	 * -1 means no callback will come */
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) != 0)
		conn_event(c->bev, BEV_EVENT_ERROR, c);
}

void node_kick(struct node *n, struct mm_queue *q)
{
	if (n->stopping || q->frozen)
		return;
	if (q == n->local) {
		event_active(n->local_ev, 0, 0);
		return;
	}
	if (q->kind != MM_Q_LINK || !mm_hop_may_try(&q->st, node_now_ms()))
		return;
	/* one more connection while the ready jobs outnumber the open ones */
	while (q->head && q->active < n->set.dest_concurrency && q->active < q->njobs) {
		uint32_t before = q->active;
		conn_open(n, q);
		if (q->active == before)
			break; /* waiting for DNS, or nothing left to try */
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct qdrv *d = arg;
	mm_hop_timer(&d->q->st);
	mm_queue_release_held(d->q);
	node_kick(d->n, d->q);
}

/* --- injection and recovery -------------------------------------------- */

void node_inject(struct node *n, const char *sender, const char *rcpt, const char *body, size_t len)
{
	struct mm_spool_rcpt sr = {rcpt, "", 0};
	struct mm_spool_msg sm = {.id = mm_spool_new_id(&n->spool, node_wall_ms()),
	                          .arrival = time(NULL),
	                          .sender = sender,
	                          .envid = "",
	                          .helo = n->fqdn,
	                          .client = "",
	                          .nrcpt = 1,
	                          .rcpt = &sr};
	struct iovec iov = {(void *)body, len};
	int e = node_enqueue(n, NULL, &sm, &iov, 1);
	if (e != 0)
		node_log("queue: cannot write a DSN to <%s>: %s", rcpt, strerror(e));
}

void node_recovered(void *ctx, const struct mm_spool_msg *sm)
{
	struct node *n = ctx;
	struct mm_qmsg *m = mm_qmsg_from_spool(sm);
	/* routed once the node is up */
	mm_grow(&n->recovered, &n->caprecovered, n->nrecovered + 1, sizeof(*n->recovered));
	n->recovered[n->nrecovered++] = m;
	track(n, "RECOVERED", m, "from=<%s> pending=%u", m->sender, m->pending);
}

/* Once a second: messages waiting for a path expire in time. */
void node_tick(struct node *n)
{
	struct mm_queue *q = n->unreachable;
	struct mm_job *keep = NULL, *keep_tail = NULL, *j;
	while ((j = mm_queue_pop(q)) != NULL) {
		if (expired(n, j->msg)) {
			defer_job(n, q, j, "4.4.7 no path to the destination is up");
			continue;
		}
		j->next = NULL;
		if (keep_tail)
			keep_tail->next = j;
		else
			keep = j;
		keep_tail = j;
	}
	while (keep) {
		j = keep;
		keep = j->next;
		mm_queue_push(q, j);
	}
}

/* Spool compaction: the messages still queued from the oldest segment
 * (older than compact_after_s) are written again into the current one,
 * made durable, and only then let go of the old segment, so a message
 * that waits for days does not keep every later segment on disk. */
static void relocate(struct node *n, struct mm_qmsg *m, struct mm_spool_loc *loc, int *err)
{
	char *body = mm_xmalloc(m->body.len + 1);
	struct mm_spool_rcpt *sr = mm_xcalloc(m->nrcpt, sizeof(*sr));
	uint8_t *done = mm_xcalloc(m->nrcpt, 1);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		sr[i] =
		    (struct mm_spool_rcpt){m->rcpt[i].addr, m->rcpt[i].orcpt, m->rcpt[i].notify};
		done[i] = m->rcpt[i].done;
	}
	struct mm_spool_msg sm = {.id = m->id,
	                          .arrival = m->arrival,
	                          .ret = m->ret,
	                          .flags = m->flags,
	                          .sender = m->sender,
	                          .envid = m->envid,
	                          .helo = "",
	                          .client = m->client,
	                          .nrcpt = m->nrcpt,
	                          .rcpt = sr,
	                          .done = done};
	*err = mm_spool_read(&n->spool, &m->body, body);
	if (*err == 0) {
		struct iovec iov = {body, m->body.len};
		uint64_t lsn;
		*err = mm_spool_put(&n->spool, &sm, &iov, 1, loc, &lsn);
	}
	free(done);
	free(sr);
	free(body);
}

void node_compact(struct node *n)
{
	const struct mm_seg *seg =
	    mm_spool_oldest(&n->spool, (int64_t)n->set.compact_after_s * 1000);
	if (seg == NULL)
		return;
	uint32_t seq = seg->seq;
	size_t nm = 0, cap = 0;
	struct mm_qmsg **msgs = NULL;
	struct mm_spool_loc *locs = NULL;
	for (struct conn *c = conns; c; c = c->next)
		if (c->has_job && !c->job->msg->marked && c->job->msg->body.seg == seq) {
			c->job->msg->marked = true;
			mm_grow(&msgs, &cap, nm + 1, sizeof(*msgs));
			msgs[nm++] = c->job->msg;
		}
	for (size_t i = 0; i < n->queues.n; i++) {
		struct mm_queue *q = n->queues.q[i];
		for (int list = 0; list < 2; list++)
			for (struct mm_job *j = list ? q->held : q->head; j; j = j->next)
				if (!j->msg->marked && j->msg->body.seg == seq) {
					j->msg->marked = true;
					mm_grow(&msgs, &cap, nm + 1, sizeof(*msgs));
					msgs[nm++] = j->msg;
				}
	}
	locs = mm_xcalloc(nm, sizeof(*locs));
	size_t moved = 0;
	int err = 0;
	while (moved < nm && err == 0) {
		relocate(n, msgs[moved], &locs[moved], &err);
		if (err == 0)
			moved++;
	}
	if (moved > 0 && (err = mm_spool_sync_now(&n->spool)) != 0)
		moved = 0; /* not durable: the old copies stay in charge */
	for (size_t i = 0; i < nm; i++) {
		msgs[i]->marked = false;
		if (i < moved) {
			uint32_t old = msgs[i]->body.seg;
			msgs[i]->body = locs[i];
			mm_spool_release(&n->spool, old);
		}
	}
	if (err)
		node_log("spool compaction of segment %08x stopped: %s", seq, strerror(err));
	else if (nm > 0)
		node_log("spool: %zu queued message(s) moved out of segment %08x", nm, seq);
	free(locs);
	free(msgs);
}

static void mark(struct mm_qmsg *m, struct mm_qmsg ***msgs, size_t *nm, size_t *cap)
{
	if (m->freeing)
		return;
	m->freeing = true;
	mm_grow(msgs, cap, *nm + 1, sizeof(**msgs));
	(*msgs)[(*nm)++] = m;
}

void node_deliver_free(struct node *n)
{
	/* every message still queued or in flight: free each once */
	size_t nm = 0, cap = 0;
	struct mm_qmsg **msgs = NULL;
	while (conns) {
		struct conn *c = conns;
		if (c->has_job) {
			mark(c->job->msg, &msgs, &nm, &cap);
			mm_job_free(c->job);
			c->has_job = false;
		}
		c->q->active--;
		conn_free(c);
	}
	for (size_t i = 0; i < n->queues.n; i++) {
		struct mm_queue *q = n->queues.q[i];
		for (int list = 0; list < 2; list++)
			for (struct mm_job *j = list ? q->held : q->head; j; j = j->next)
				mark(j->msg, &msgs, &nm, &cap);
		struct qdrv *d = q->driver;
		if (d) {
			addrs_free(d);
			event_free(d->timer);
			free(d);
			q->driver = NULL;
		}
	}
	for (size_t i = 0; i < nm; i++)
		mm_qmsg_free(msgs[i]);
	free(msgs);
}

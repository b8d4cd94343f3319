/* The queue manager's environment in meshnode (core/qmgr.h): the clocks,
 * randomness, timers on the libevent loop, the node log and the tracking
 * log, local delivery into Maildir and MX lookups through c-ares.
 *
 * No answer reaches the queue manager from inside one of its own calls:
 * timers fire on a later turn of the loop, and DNS answers (which c-ares
 * may give at once) wait in a list for node_later. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "maildir.h"
#include "node.h"

struct timer {
	struct node *n;
	uint64_t key;
	struct event *ev;
};

struct mx_answer {
	uint32_t qnum;
	enum mm_mx_status st;
	char **addrs;
	size_t naddrs;
	char *why;
	struct mx_answer *next;
};

static int64_t now_ms(void *ctx)
{
	(void)ctx;
	return node_now_ms();
}

static int64_t wall_ms(void *ctx)
{
	(void)ctx;
	return node_wall_ms();
}

static uint32_t rnd(void *ctx)
{
	return node_random(ctx);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct timer *t = arg;
	mm_qm_timer(&t->n->qm, t->key);
}

static void timer_arm(void *ctx, uint64_t key, int64_t at_ms)
{
	struct node *n = ctx;
	struct timer *t = mm_u64map_get(&n->timers, key);
	if (t == NULL) {
		t = mm_xcalloc(1, sizeof(*t));
		*t = (struct timer){.n = n, .key = key};
		t->ev = evtimer_new(n->base, timer_cb, t);
		mm_u64map_put(&n->timers, key, t);
	}
	int64_t d = at_ms - node_now_ms();
	if (d < 0)
		d = 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
	evtimer_add(t->ev, &tv);
}

static void timer_cancel(void *ctx, uint64_t key)
{
	struct node *n = ctx;
	struct timer *t = mm_u64map_del(&n->timers, key);
	if (t) {
		event_free(t->ev);
		free(t);
	}
}

static void log_line(void *ctx, const char *line)
{
	(void)ctx;
	node_log("%s", line);
}

static int deliver_local(void *ctx, const char *mailbox, const char *prefix, size_t plen,
                         const char *body, size_t len)
{
	struct node *n = ctx;
	return mm_maildir_deliver(n->mailstore, mailbox, n->fqdn, prefix, plen, body, len);
}

static void answer_free(struct mx_answer *a)
{
	for (size_t i = 0; i < a->naddrs; i++)
		free(a->addrs[i]);
	free(a->addrs);
	free(a->why);
	free(a);
}

static void mx_cb(void *arg, uint32_t qnum, enum mm_mx_status st, const char *const *addrs,
                  size_t na, const char *why)
{
	struct node *n = arg;
	struct mx_answer *a = mm_xcalloc(1, sizeof(*a));
	*a = (struct mx_answer){.qnum = qnum, .st = st, .naddrs = na};
	a->addrs = mm_xcalloc(na, sizeof(*a->addrs));
	for (size_t i = 0; i < na; i++)
		a->addrs[i] = mm_xstrdup(addrs[i]);
	a->why = why ? mm_xstrdup(why) : NULL;
	/* in arrival order */
	struct mx_answer **p = &n->answers;
	while (*p)
		p = &(*p)->next;
	*p = a;
	event_active(n->later_ev, 0, 0);
}

static void resolve_mx(void *ctx, uint32_t qnum, const char *domain)
{
	struct node *n = ctx;
	if (n->dns)
		mm_dns_mx(n->dns, domain, mx_cb, n, qnum);
}

void node_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct node *n = arg;
	relay_report_failed(n);
	struct mx_answer *a;
	while ((a = n->answers) != NULL) {
		n->answers = a->next;
		mm_qm_mx_answer(&n->qm, a->qnum, a->st, (const char *const *)a->addrs, a->naddrs,
		                a->why);
		answer_free(a);
	}
}

void node_env(struct node *n, struct mm_qm_env *env)
{
	*env = (struct mm_qm_env){.ctx = n,
	                          .now_ms = now_ms,
	                          .wall_ms = wall_ms,
	                          .random = rnd,
	                          .timer_arm = timer_arm,
	                          .timer_cancel = timer_cancel,
	                          .session_open = relay_open,
	                          .session_send = relay_send,
	                          .session_close = relay_close,
	                          .resolve_mx = resolve_mx,
	                          .deliver_local = deliver_local,
	                          .link_result = routing_link_result,
	                          .log = log_line,
	                          .track = track_line,
	                          .spool = node_spool_ops(),
	                          .spool_ctx = &n->spool};
}

void node_env_free(struct node *n)
{
	for (size_t i = 0; i < n->timers.cap; i++) {
		struct timer *t = n->timers.slots[i].value;
		if (t) {
			event_free(t->ev);
			free(t);
		}
	}
	mm_u64map_free(&n->timers);
	struct mx_answer *a;
	while ((a = n->answers) != NULL) {
		n->answers = a->next;
		answer_free(a);
	}
}

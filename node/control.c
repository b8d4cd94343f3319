/* The queue view (DESIGN §7): SPOOL/control.sock, a Unix socket that only
 * the spool's owner can reach. One request line, one JSON answer:
 *   queues | queue NAME | retry NAME | freeze NAME | thaw NAME
 * meshctl --spool DIR queues|queue|retry|freeze|thaw talks to it; the same
 * JSON will travel over 691 once the routing engine carries queries. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "json.h"
#include "node.h"

struct control {
	struct evconnlistener *listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static const char *kind_name(enum mm_queue_kind k)
{
	static const char *names[] = {"presubmit", "directory",   "routing", "local",
	                              "link",      "unreachable", "reroute"};
	return names[k];
}

/* The oldest arrival among q's messages; 0 when empty. */
static int64_t oldest_arrival(const struct mm_queue *q)
{
	int64_t oldest = 0;
	for (int list = 0; list < 2; list++)
		for (struct mm_job *jb = list ? q->held : q->head; jb; jb = jb->next)
			if (oldest == 0 || jb->msg->arrival < oldest)
				oldest = jb->msg->arrival;
	return oldest;
}

/* Listing order: local delivery, the link queues, then unreachable. */
static bool listed_in_pass(const struct mm_queue *q, int pass)
{
	static const enum mm_queue_kind order[] = {MM_Q_LOCAL, MM_Q_LINK, MM_Q_UNREACHABLE};
	return q->kind == order[pass];
}

static uint32_t messages(const struct mm_queue *q)
{
	return q->njobs + q->nheld + q->inflight;
}

static void queue_summary(struct json *j, struct node *n, const char *name, const char *kind,
                          const char *state, uint64_t msgs, uint64_t rcpts,
                          const struct mm_queue *q)
{
	json_begin_obj(j);
	json_key(j, "name");
	json_str(j, name);
	json_key(j, "kind");
	json_str(j, kind);
	json_key(j, "state");
	json_str(j, state);
	json_key(j, "messages");
	json_u64(j, msgs);
	json_key(j, "recipients");
	json_u64(j, rcpts);
	json_key(j, "oldest_age_s");
	int64_t oldest = q ? oldest_arrival(q) : 0;
	time_t now = time(NULL);
	if (oldest)
		json_u64(j, (uint64_t)(now - oldest));
	else
		json_null(j);
	json_key(j, "next_hop");
	json_str(j, q ? q->target : NULL);
	json_key(j, "next_retry_s");
	int64_t ms = node_now_ms();
	if (q && !mm_hop_may_try(&q->st, ms))
		json_u64(j, (uint64_t)(q->st.retry_at - ms + 999) / 1000);
	else
		json_null(j);
	json_key(j, "last_error");
	json_str(j, q ? q->last_error : NULL);
	json_end_obj(j);
	(void)n;
}

static void show_queues(struct node *n, struct json *j)
{
	json_begin_obj(j);
	json_key(j, "server");
	json_str(j, n->self);
	json_key(j, "queues");
	json_begin_arr(j);
	uint64_t routing = 0;
	for (struct commit *c = n->commits; c; c = c->next)
		routing++;
	queue_summary(j, n, "Pre-submission", "presubmit", n->nsessions ? "Active" : "Ready",
	              n->nsessions, 0, NULL);
	queue_summary(j, n, "Messages awaiting directory lookup", "directory", "Ready", 0, 0, NULL);
	queue_summary(j, n, "Messages waiting to be routed", "routing",
	              routing ? "Active" : "Ready", routing, 0, NULL);
	int64_t now = node_now_ms();
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < n->queues.n; i++) {
			struct mm_queue *q = n->queues.q[i];
			if (listed_in_pass(q, pass))
				queue_summary(j, n, q->name, kind_name(q->kind),
				              mm_queue_state_name(mm_queue_state(q, now)),
				              messages(q), q->nrcpt, q);
		}
	}
	queue_summary(j, n, "Messages pending reroute", "reroute", "Ready", 0, 0, NULL);
	json_end_arr(j);
	json_end_obj(j);
}

static void show_queue(struct node *n, struct json *j, struct mm_queue *q)
{
	time_t now = time(NULL);
	json_begin_obj(j);
	json_key(j, "server");
	json_str(j, n->self);
	json_key(j, "name");
	json_str(j, q->name);
	json_key(j, "state");
	json_str(j, mm_queue_state_name(mm_queue_state(q, node_now_ms())));
	json_key(j, "messages");
	json_begin_arr(j);
	for (int list = 0; list < 2; list++)
		for (struct mm_job *jb = list ? q->held : q->head; jb; jb = jb->next) {
			const struct mm_qmsg *m = jb->msg;
			json_begin_obj(j);
			json_key(j, "id");
			json_str(j, m->idhex);
			json_key(j, "sender");
			json_str(j, m->sender);
			json_key(j, "size");
			json_u64(j, m->body.len);
			json_key(j, "age_s");
			json_u64(j, (uint64_t)(now - m->arrival));
			json_key(j, "recipients");
			json_begin_arr(j);
			for (uint32_t i = 0; i < jb->n; i++) {
				const struct mm_qrcpt *r = &m->rcpt[jb->idx[i]];
				json_begin_obj(j);
				json_key(j, "address");
				json_str(j, r->addr);
				json_key(j, "last_error");
				json_str(j, r->last_error);
				json_end_obj(j);
			}
			json_end_arr(j);
			json_end_obj(j);
		}
	json_end_arr(j);
	json_end_obj(j);
}

/* Text for people: the same facts as the JSON, one queue per line. */
static void text_queues(struct node *n, FILE *out)
{
	int64_t ms = node_now_ms();
	time_t now = time(NULL);
	uint64_t routing = 0;
	for (struct commit *c = n->commits; c; c = c->next)
		routing++;
	fprintf(out, "%-42s %-7s %8s %10s %8s  %s\n", "QUEUE", "STATE", "MESSAGES", "RECIPIENTS",
	        "OLDEST", "NEXT HOP / LAST ERROR");
	fprintf(out, "%-42s %-7s %8u %10u %8s\n", "Pre-submission",
	        n->nsessions ? "Active" : "Ready", n->nsessions, 0u, "-");
	fprintf(out, "%-42s %-7s %8u %10u %8s\n", "Messages awaiting directory lookup", "Ready", 0u,
	        0u, "-");
	fprintf(out, "%-42s %-7s %8llu %10u %8s\n", "Messages waiting to be routed",
	        routing ? "Active" : "Ready", (unsigned long long)routing, 0u, "-");
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < n->queues.n; i++) {
			struct mm_queue *q = n->queues.q[i];
			if (!listed_in_pass(q, pass))
				continue;
			int64_t oldest = oldest_arrival(q);
			char age[32] = "-";
			if (oldest)
				snprintf(age, sizeof(age), "%llds", (long long)(now - oldest));
			fprintf(out, "%-42s %-7s %8u %10u %8s  %s%s%s\n", q->name,
			        mm_queue_state_name(mm_queue_state(q, ms)), messages(q), q->nrcpt,
			        age, q->target ? q->target : "", q->last_error ? "  " : "",
			        q->last_error ? q->last_error : "");
		}
	fprintf(out, "%-42s %-7s %8u %10u %8s\n", "Messages pending reroute", "Ready", 0u, 0u, "-");
}

static void text_queue(struct node *n, FILE *out, struct mm_queue *q)
{
	time_t now = time(NULL);
	fprintf(out, "%s: %s\n", q->name, mm_queue_state_name(mm_queue_state(q, node_now_ms())));
	for (int list = 0; list < 2; list++)
		for (struct mm_job *jb = list ? q->held : q->head; jb; jb = jb->next) {
			const struct mm_qmsg *m = jb->msg;
			fprintf(out, "%s  %6us  %8u bytes  from <%s>\n", m->idhex,
			        (unsigned)(now - m->arrival), m->body.len, m->sender);
			for (uint32_t i = 0; i < jb->n; i++) {
				const struct mm_qrcpt *r = &m->rcpt[jb->idx[i]];
				fprintf(out, "    to <%s>%s%s\n", r->addr,
				        r->last_error ? "  " : "",
				        r->last_error ? r->last_error : "");
			}
		}
	(void)n;
}

static void error(struct json *j, const char *what, const char *name)
{
	json_begin_obj(j);
	json_key(j, "error");
	json_str(j, what);
	json_key(j, "queue");
	json_str(j, name);
	json_end_obj(j);
}

/* A request is "[text ]VERB [QUEUE]"; errors start with {"error" or "error:". */
static void answer(struct node *n, const char *line, FILE *out)
{
	struct json j;
	json_init(&j, out);
	bool text = strncmp(line, "text ", 5) == 0;
	if (text)
		line += 5;
	const char *arg = strchr(line, ' ');
	size_t vl = arg ? (size_t)(arg - line) : strlen(line);
	arg = arg ? arg + 1 : "";
	if (vl == 6 && strncmp(line, "queues", 6) == 0) {
		if (text)
			text_queues(n, out);
		else
			show_queues(n, &j);
		return;
	}
	struct mm_queue *q = mm_queue_find(&n->queues, arg);
	if (q == NULL) {
		if (text)
			fprintf(out, "error: no such queue: %s", arg);
		else
			error(&j, "no such queue", arg);
		return;
	}
	if (vl == 5 && strncmp(line, "queue", 5) == 0) {
		if (text)
			text_queue(n, out, q);
		else
			show_queue(n, &j, q);
		return;
	}
	if (vl == 5 && strncmp(line, "retry", 5) == 0) {
		/* now, not at the retry time */
		mm_hop_timer(&q->st);
		mm_queue_release_held(q);
		q->frozen = false;
		node_kick(n, q);
	} else if (vl == 6 && strncmp(line, "freeze", 6) == 0) {
		q->frozen = true;
	} else if (vl == 4 && strncmp(line, "thaw", 4) == 0) {
		q->frozen = false;
		node_kick(n, q);
	} else {
		if (text)
			fprintf(out, "error: unknown request: %s", line);
		else
			error(&j, "unknown request", line);
		return;
	}
	if (text) {
		fprintf(out, "%s: %s\n", q->name,
		        mm_queue_state_name(mm_queue_state(q, node_now_ms())));
		return;
	}
	json_begin_obj(&j);
	json_key(&j, "queue");
	json_str(&j, q->name);
	json_key(&j, "state");
	json_str(&j, mm_queue_state_name(mm_queue_state(q, node_now_ms())));
	json_end_obj(&j);
}

static void ctl_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct node *n = arg;
	size_t len;
	char *line = evbuffer_readln(bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF);
	if (line == NULL) {
		if (evbuffer_get_length(bufferevent_get_input(bev)) > 1024)
			bufferevent_free(bev);
		return;
	}
	char *text = NULL;
	size_t tl = 0;
	FILE *out = open_memstream(&text, &tl);
	answer(n, line, out);
	if (strncmp(line, "text ", 5) != 0)
		fputc('\n', out);
	fclose(out);
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, ctl_write_cb, NULL, n);
	bufferevent_write(bev, text, tl);
	free(text);
}

static void ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what, (void)arg;
	bufferevent_free(bev);
}

static void ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                       int socklen, void *arg)
{
	(void)l, (void)sa, (void)socklen;
	struct node *n = arg;
	struct bufferevent *bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, ctl_read_cb, NULL, ctl_event_cb, n);
	struct timeval tv = {10, 0};
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

int control_open(struct node *n)
{
	struct control *c = mm_xcalloc(1, sizeof(*c));
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int len = snprintf(c->path, sizeof(c->path), "%s/control.sock", n->spool_dir);
	if (len < 0 || (size_t)len >= sizeof(c->path)) {
		node_log("%s/control.sock: path too long for a Unix socket", n->spool_dir);
		free(c);
		return -1;
	}
	memcpy(sun.sun_path, c->path, (size_t)len + 1);
	unlink(c->path);
	mode_t old = umask(0077);
	c->listener = evconnlistener_new_bind(n->base, ctl_accept, n, LEV_OPT_CLOSE_ON_FREE, 16,
	                                      (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (c->listener == NULL) {
		node_log("%s: %s", c->path, strerror(errno));
		free(c);
		return -1;
	}
	n->control = c;
	return 0;
}

void control_close(struct node *n)
{
	if (n->control == NULL)
		return;
	evconnlistener_free(n->control->listener);
	unlink(n->control->path);
	free(n->control);
	n->control = NULL;
}

/* The queue view (DESIGN §7): SPOOL/control.sock, a Unix socket that only
 * the spool's owner can reach. One request line,
 *   [text ]queues | queue Q | retry Q | freeze Q | thaw Q
 * where Q is a queue's id (q7) or its name; one answer: a line with the
 * exit status meshctl should give (sysexits: 0, 64 when Q names several
 * queues, 65 when it names none), then the text or JSON. The node renders
 * both, so the two never disagree; the same rendering answers the queue
 * queries on TCP 691 (query.c, control_render). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "json.h"
#include "node.h"

struct control {
	struct evconnlistener *listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* What one line of the view shows. */
struct row {
	const struct mm_queue *q;
	const char *state;
	uint32_t messages, recipients;
	int64_t oldest; /* unix seconds; 0: none */
	const char *next_hop, *last_error;
	int64_t next_retry_s; /* -1: none */
};

static struct row row_of(struct node *n, const struct mm_queue *q)
{
	int64_t ms = node_now_ms();
	struct row r = {.q = q,
	                .state = mm_queue_state_name(mm_queue_state(q, ms)),
	                .messages = mm_qm_queue_messages(&n->qm, q),
	                .recipients = q->nrcpt,
	                .oldest = mm_qm_queue_oldest(q),
	                .next_hop = q->target,
	                .last_error = q->last_error,
	                .next_retry_s = -1};
	if (!mm_hop_may_try(&q->st, ms))
		r.next_retry_s = (q->st.retry_at - ms + 999) / 1000;
	if (q->kind == MM_Q_PRESUBMIT) {
		/* being received, or written and waiting for its fdatasync */
		r.messages = node_receiving(n) + mm_qm_committing(&n->qm, &r.recipients);
		r.state = r.messages ? "Active" : "Ready";
	}
	return r;
}

/* Listing order: the fixed queues as the reference texts list them, the
 * link queues in the middle, unreachable and reroute last. */
static int pass_of(const struct mm_queue *q)
{
	switch (q->kind) {
	case MM_Q_PRESUBMIT:
	case MM_Q_DIRECTORY:
	case MM_Q_ROUTING:
	case MM_Q_LOCAL: return 0;
	case MM_Q_LINK: return 1;
	case MM_Q_UNREACHABLE:
	case MM_Q_REROUTE: return 2;
	}
	return 2;
}

static void json_row(struct json *j, const struct row *r)
{
	json_begin_obj(j);
	json_key(j, "id");
	json_str(j, r->q->id);
	json_key(j, "name");
	json_str(j, r->q->name);
	json_key(j, "kind");
	json_str(j, mm_queue_kind_name(r->q->kind));
	json_key(j, "state");
	json_str(j, r->state);
	json_key(j, "messages");
	json_u64(j, r->messages);
	json_key(j, "recipients");
	json_u64(j, r->recipients);
	json_key(j, "oldest_age_s");
	if (r->oldest)
		json_u64(j, (uint64_t)(node_wall_ms() / 1000 - r->oldest));
	else
		json_null(j);
	json_key(j, "next_hop");
	json_str(j, r->next_hop);
	json_key(j, "connector");
	json_str(j, r->q->connector);
	json_key(j, "next_retry_s");
	if (r->next_retry_s >= 0)
		json_u64(j, (uint64_t)r->next_retry_s);
	else
		json_null(j);
	json_key(j, "last_error");
	json_str(j, r->last_error);
	json_end_obj(j);
}

static void show_queues(struct node *n, FILE *out, bool text)
{
	struct json j;
	json_init(&j, out);
	if (text)
		fprintf(out, "%-4s %-42s %-7s %8s %10s %8s  %s\n", "ID", "QUEUE", "STATE",
		        "MESSAGES", "RECIPIENTS", "OLDEST", "NEXT HOP / LAST ERROR");
	else {
		json_begin_obj(&j);
		json_key(&j, "server");
		json_str(&j, n->self);
		json_key(&j, "queues");
		json_begin_arr(&j);
	}
	int64_t now = node_wall_ms() / 1000;
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < n->qm.queues.n; i++) {
			const struct mm_queue *q = n->qm.queues.q[i];
			if (pass_of(q) != pass)
				continue;
			struct row r = row_of(n, q);
			if (!text) {
				json_row(&j, &r);
				continue;
			}
			char age[32] = "-";
			if (r.oldest)
				snprintf(age, sizeof(age), "%llds", (long long)(now - r.oldest));
			fprintf(out, "%-4s %-42s %-7s %8u %10u %8s  %s%s%s\n", q->id, q->name,
			        r.state, r.messages, r.recipients, age,
			        r.next_hop ? r.next_hop : "", r.last_error ? "  " : "",
			        r.last_error ? r.last_error : "");
		}
	if (!text) {
		json_end_arr(&j);
		json_end_obj(&j);
	}
}

static void show_queue(struct node *n, FILE *out, bool text, const struct mm_queue *q)
{
	int64_t now = node_wall_ms() / 1000;
	const char *state = mm_queue_state_name(mm_queue_state(q, node_now_ms()));
	struct json j;
	json_init(&j, out);
	if (text) {
		fprintf(out, "%s %s: %s\n", q->id, q->name, state);
	} else {
		json_begin_obj(&j);
		json_key(&j, "server");
		json_str(&j, n->self);
		json_key(&j, "id");
		json_str(&j, q->id);
		json_key(&j, "name");
		json_str(&j, q->name);
		json_key(&j, "state");
		json_str(&j, state);
		json_key(&j, "messages");
		json_begin_arr(&j);
	}
	/* one entry per job: a message with two jobs here shows twice, each
	 * with its own recipients */
	const struct mm_job *lists[3] = {q->head, q->held, q->busy};
	for (int l = 0; l < 3; l++)
		for (const struct mm_job *jb = lists[l]; jb; jb = jb->next) {
			const struct mm_qmsg *m = jb->msg;
			if (text)
				fprintf(out, "%s  %6llds  %8u bytes  from <%s>%s\n", m->idhex,
				        (long long)(now - m->arrival), m->body.len, m->sender,
				        l == 2 ? "  (in delivery)" : "");
			else {
				json_begin_obj(&j);
				json_key(&j, "id");
				json_str(&j, m->idhex);
				json_key(&j, "sender");
				json_str(&j, m->sender);
				json_key(&j, "size");
				json_u64(&j, m->body.len);
				json_key(&j, "age_s");
				json_u64(&j, (uint64_t)(now - m->arrival));
				json_key(&j, "recipients");
				json_begin_arr(&j);
			}
			for (uint32_t i = 0; i < jb->n; i++) {
				const struct mm_qrcpt *r = &m->rcpt[jb->idx[i]];
				if (text) {
					fprintf(out, "    to <%s>%s%s\n", r->addr,
					        r->last_error ? "  " : "",
					        r->last_error ? r->last_error : "");
					continue;
				}
				json_begin_obj(&j);
				json_key(&j, "address");
				json_str(&j, r->addr);
				json_key(&j, "last_error");
				json_str(&j, r->last_error);
				json_end_obj(&j);
			}
			if (!text) {
				json_end_arr(&j);
				json_end_obj(&j);
			}
		}
	if (!text) {
		json_end_arr(&j);
		json_end_obj(&j);
	}
}

static int refuse(FILE *out, bool text, const char *what, const char *name, struct mm_queue **match,
                  size_t nmatch)
{
	if (text) {
		fprintf(out, "error: %s: %s\n", what, name);
		for (size_t i = 0; i < nmatch; i++)
			fprintf(out, "  %s  %s  %s\n", match[i]->id, match[i]->name,
			        match[i]->target ? match[i]->target : "");
		return nmatch ? EX_USAGE : EX_DATAERR;
	}
	struct json j;
	json_init(&j, out);
	json_begin_obj(&j);
	json_key(&j, "error");
	json_str(&j, what);
	json_key(&j, "queue");
	json_str(&j, name);
	if (nmatch) {
		json_key(&j, "matches");
		json_begin_arr(&j);
		for (size_t i = 0; i < nmatch; i++) {
			json_begin_obj(&j);
			json_key(&j, "id");
			json_str(&j, match[i]->id);
			json_key(&j, "name");
			json_str(&j, match[i]->name);
			json_key(&j, "next_hop");
			json_str(&j, match[i]->target);
			json_end_obj(&j);
		}
		json_end_arr(&j);
	}
	json_end_obj(&j);
	fputc('\n', out);
	return nmatch ? EX_USAGE : EX_DATAERR;
}

/* Answers one request into out; returns the exit status for meshctl. */
static int answer(struct node *n, bool text, const char *verb, const char *arg, FILE *out)
{
	if (strcmp(verb, "queues") == 0) {
		show_queues(n, out, text);
		return EX_OK;
	}
	struct mm_queue *match[16];
	size_t nm = mm_qm_find(&n->qm, arg, match, 16);
	if (nm == 0)
		return refuse(out, text, "no such queue", arg, NULL, 0);
	if (nm > 1)
		return refuse(out, text, "the name matches several queues; give the id", arg, match,
		              nm < 16 ? nm : 16);
	struct mm_queue *q = match[0];
	if (strcmp(verb, "queue") == 0) {
		show_queue(n, out, text, q);
		return EX_OK;
	}
	if (strcmp(verb, "retry") == 0)
		mm_qm_retry(&n->qm, q);
	else if (strcmp(verb, "freeze") == 0)
		mm_qm_freeze(&n->qm, q);
	else if (strcmp(verb, "thaw") == 0)
		mm_qm_thaw(&n->qm, q);
	else
		return refuse(out, text, "unknown request", verb, NULL, 0);
	const char *state = mm_queue_state_name(mm_queue_state(q, node_now_ms()));
	if (text) {
		fprintf(out, "%s %s: %s\n", q->id, q->name, state);
		return EX_OK;
	}
	struct json j;
	json_init(&j, out);
	json_begin_obj(&j);
	json_key(&j, "id");
	json_str(&j, q->id);
	json_key(&j, "queue");
	json_str(&j, q->name);
	json_key(&j, "state");
	json_str(&j, state);
	json_end_obj(&j);
	return EX_OK;
}

int control_render(struct node *n, bool text, const char *verb, const char *arg, FILE *out)
{
	int status = answer(n, text, verb, arg, out);
	if (!text && status == EX_OK)
		fputc('\n', out);
	return status;
}

/* The test hook of the convergence bench (only with --set test_hooks=1,
 * only on this socket, never on 691): "test-report down|up CONNECTOR
 * VSERVER" reports this server's bridgehead as the detector would. */
static int test_report(struct node *n, const char *operand, FILE *out)
{
	char state[8], conn[128], vs[128];
	if (!n->set.test_hooks) {
		fprintf(out, "test hooks are off (--set test_hooks=1)\n");
		return EX_USAGE;
	}
	if (sscanf(operand, "%7s %127s %127s", state, conn, vs) != 3 ||
	    (strcmp(state, "down") != 0 && strcmp(state, "up") != 0)) {
		fprintf(out, "want: test-report down|up CONNECTOR VSERVER\n");
		return EX_USAGE;
	}
	if (!routing_test_report(n, conn, vs, strcmp(state, "down") == 0)) {
		fprintf(out, "the routing engine is not running\n");
		return EX_UNAVAILABLE;
	}
	fprintf(out, "reported\n");
	return EX_OK;
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
	char *body = NULL;
	size_t bl = 0;
	FILE *out = open_memstream(&body, &bl);
	/* [text ]VERB[ ARG] */
	bool text = strncmp(line, "text ", 5) == 0;
	char *verb = line + (text ? 5 : 0);
	char *sp = strchr(verb, ' ');
	const char *operand = "";
	if (sp) {
		*sp = '\0';
		operand = sp + 1;
	}
	int status = strcmp(verb, "test-report") == 0 ? test_report(n, operand, out)
	                                              : control_render(n, text, verb, operand, out);
	fclose(out);
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, ctl_write_cb, NULL, n);
	char head[16];
	int hl = snprintf(head, sizeof(head), "%d\n", status);
	bufferevent_write(bev, head, (size_t)hl);
	bufferevent_write(bev, body, bl);
	free(body);
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

/* The accounting of DESIGN §8, message by message: each (Message-ID,
 * recipient) the simulator sent (answered 250) is
 *   delivered  a copy with its Message-ID in the recipient's Maildir on a
 *              server, or, for an external recipient, at a smart host's sink;
 *   bounced    else, an NDR line for it in a server's tracking log;
 *   queued     else, in a server's spool: a running server's queues (asked
 *              over 691), a stopped server's recipients its tracking log
 *              routed and never settled;
 *   lost       else.
 * The tracking log ties a server's queue id to the Message-ID (RECEIVED
 * ... message_id=). A queued recipient whose id the log does not name yet
 * (the log is written once a second; a SIGKILL takes its last second) is
 * counted as queued for one unsettled message of that recipient, so that
 * the lag cannot make a message look lost. A duplicate is every copy of a
 * (Message-ID, recipient) after the first. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "mailstore.h"
#include "strmap.h"
#include "world.h"

#define SENDER "meshsim@sim.invalid"

/* a set of strings, counted: the map holds pointers into keys */
struct bag {
	struct mm_strmap map;
	size_t n;
	char **keys;
};

static uint32_t bag_get(const struct bag *b, const char *key)
{
	uint32_t n = 0;
	return mm_strmap_get(&b->map, key, &n) ? n : 0;
}

static void bag_add(struct bag *b, const char *key, uint32_t by)
{
	uint32_t n = 0;
	if (mm_strmap_get(&b->map, key, &n)) {
		mm_strmap_put(&b->map, key, n + by);
		return;
	}
	b->keys = mm_xrealloc(b->keys, b->n + 1, sizeof(*b->keys));
	b->keys[b->n] = mm_xstrdup(key);
	mm_strmap_put(&b->map, b->keys[b->n++], by);
}

/* one fewer of key (there is one) */
static void bag_take(struct bag *b, const char *key)
{
	mm_strmap_put(&b->map, key, bag_get(b, key) - 1);
}

static void bag_free(struct bag *b)
{
	mm_strmap_free(&b->map);
	for (size_t i = 0; i < b->n; i++)
		free(b->keys[i]);
	free(b->keys);
}

/* a server's queue ids to the Message-IDs its RECEIVED lines name: one
 * lookup per queued or bounced recipient, so a map, not a scan */
struct idmap {
	struct bag ids; /* queue id -> 1 + its index in msgid */
	char **msgid;
};

static void idmap_put(struct idmap *m, const char *id, const char *msgid)
{
	if (bag_get(&m->ids, id) != 0)
		return; /* a queue id is received once */
	m->msgid = mm_xrealloc(m->msgid, m->ids.n + 1, sizeof(*m->msgid));
	m->msgid[m->ids.n] = mm_xstrdup(msgid);
	bag_add(&m->ids, id, (uint32_t)m->ids.n + 1);
}

/* the Message-ID of queue id `id`, or NULL */
static const char *msgid_of(const struct idmap *m, const char *id)
{
	uint32_t k = bag_get(&m->ids, id);
	return k ? m->msgid[k - 1] : NULL;
}

static void idmap_free(struct idmap *m)
{
	for (size_t i = 0; i < m->ids.n; i++)
		free(m->msgid[i]);
	free(m->msgid);
	bag_free(&m->ids);
}

static void pair(char *out, size_t len, const char *a, const char *b)
{
	snprintf(out, len, "%s %s", a, b);
}

struct tally {
	struct bag copies;  /* "msgid rcpt" delivered, with copies */
	struct bag bounced; /* "msgid rcpt" with an NDR line */
	struct bag queued;  /* "msgid rcpt" in a spool */
	struct bag loose;   /* "rcpt": queued, its Message-ID not known yet */
	const struct mm_directory *dir;
};

static void each_copy(void *ctx, const char *msgid, const char *box)
{
	char k[1200];
	pair(k, sizeof(k), msgid, box);
	bag_add(&((struct tally *)ctx)->copies, k, 1);
}

/* key=value of a tracking line (linkstate/logfmt.h: bare, or quoted with C
 * escapes) into out; false when the line has no such key */
static bool field(const char *line, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = strchr(line, ' '); p; p = strchr(p + 1, ' ')) {
		if (strncmp(p + 1, key, kl) != 0 || p[1 + kl] != '=')
			continue;
		const char *v = p + 2 + kl;
		size_t n = 0;
		if (*v != '"') {
			while (v[n] && v[n] != ' ' && v[n] != '\n' && n + 1 < cap) {
				out[n] = v[n];
				n++;
			}
			out[n] = '\0';
			return true;
		}
		for (v++; *v && *v != '"' && n + 1 < cap; v++) {
			if (*v == '\\' && v[1]) {
				v++;
				if (*v == 'x' && v[1] && v[2]) {
					char hex[3] = {v[1], v[2], 0};
					out[n++] = (char)strtol(hex, NULL, 16);
					v += 2;
					continue;
				}
				out[n++] = *v == 'n'   ? '\n'
				           : *v == 'r' ? '\r'
				           : *v == 't' ? '\t'
				                       : *v;
				continue;
			}
			out[n++] = *v;
		}
		out[n] = '\0';
		return true;
	}
	return false;
}

/* "<a@b>" into "a@b", lower case */
static void bare(char *a)
{
	size_t n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		memmove(a, a + 1, n - 2);
		a[n - 2] = '\0';
	}
	for (char *c = a; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
}

/* a server's tracking log: its queue ids' Message-IDs into ids; with pending, each (id, rcpt) it
 * routed ("id rcpt" -> 1) or settled, delivered onward or bounced (-> 2 or more) */
static void tracking(const struct sim_daemon *d, struct idmap *ids, struct bag *pending)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/tracking.log", d->dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	char line[4096], ev[32], id[32], msgid[1024], to[600], k[1200];
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %31s %31s", ev, id) != 2)
			continue;
		if (strcmp(ev, "RECEIVED") == 0) {
			if (field(line, "message_id", msgid, sizeof(msgid)))
				idmap_put(ids, id, msgid);
			continue;
		}
		if (pending == NULL || !field(line, "to", to, sizeof(to)))
			continue;
		bare(to);
		pair(k, sizeof(k), id, to);
		if (strcmp(ev, "NDR") == 0 || strcmp(ev, "DELIVERED") == 0)
			bag_add(pending, k, 2);
		else if ((strcmp(ev, "ROUTED") == 0 || strcmp(ev, "REROUTED") == 0) &&
		         bag_get(pending, k) == 0)
			bag_add(pending, k, 1);
	}
	fclose(f);
}

/* the NDR lines again, now that every id has its Message-ID */
static void ndrs(const struct sim_daemon *d, const struct idmap *ids, struct tally *t)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/tracking.log", d->dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	char line[4096], ev[32], id[32], to[600], k[1200];
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %31s %31s", ev, id) != 2 || strcmp(ev, "NDR") != 0 ||
		    !field(line, "to", to, sizeof(to)))
			continue;
		bare(to);
		const char *m = msgid_of(ids, id);
		if (m) {
			pair(k, sizeof(k), m, to);
			bag_add(&t->bounced, k, 1);
		}
	}
	fclose(f);
}

static void queued_running(struct sim_world *w, struct sim_daemon *d, const struct idmap *ids,
                           struct tally *t)
{
	char *text = sim_query(w, d, "queues", NULL);
	json_t *qs = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	json_t *q;
	size_t i;
	json_array_foreach(json_object_get(qs, "queues"), i, q)
	{
		json_t *msgs = json_object_get(q, "messages");
		if (!json_is_integer(msgs) || json_integer_value(msgs) == 0)
			continue;
		const char *qid = json_string_value(json_object_get(q, "id"));
		char *body = qid ? sim_query(w, d, "queue", qid) : NULL;
		json_t *one = body ? json_loads(body, 0, NULL) : NULL;
		free(body);
		json_t *m, *r;
		size_t k, j;
		json_array_foreach(json_object_get(one, "messages"), k, m)
		{
			const char *from = json_string_value(json_object_get(m, "sender"));
			const char *id = json_string_value(json_object_get(m, "id"));
			if (from == NULL || id == NULL || strcasecmp(from, SENDER) != 0)
				continue;
			const char *mid = msgid_of(ids, id);
			json_array_foreach(json_object_get(m, "recipients"), j, r)
			{
				const char *a = json_string_value(json_object_get(r, "address"));
				if (a == NULL)
					continue;
				char to[600], key[1200];
				snprintf(to, sizeof(to), "%s", a);
				bare(to);
				if (mid) {
					pair(key, sizeof(key), mid, to);
					bag_add(&t->queued, key, 1);
				} else {
					bag_add(&t->loose, to, 1);
				}
			}
		}
		json_decref(one);
	}
	json_decref(qs);
}

/* a stopped server: what its log routed and never settled is in its spool */
static void queued_stopped(const struct sim_daemon *d, const struct idmap *ids,
                           const struct bag *pending, struct tally *t)
{
	(void)d;
	for (size_t i = 0; i < pending->n; i++) {
		if (bag_get(pending, pending->keys[i]) != 1)
			continue;
		char id[32], to[600], key[1200];
		if (sscanf(pending->keys[i], "%31s %599s", id, to) != 2)
			continue;
		const char *mid = msgid_of(ids, id);
		if (mid) {
			pair(key, sizeof(key), mid, to);
			bag_add(&t->queued, key, 1);
		} else {
			bag_add(&t->loose, to, 1);
		}
	}
}

static bool external(const struct mm_directory *dir, const char *rcpt)
{
	const struct mm_recipient *who;
	char domain[256];
	return mm_directory_categorize(dir, rcpt, &who, domain) == MM_CAT_EXTERNAL;
}

static void tally(struct sim_world *w, const char *rcpt, bool full, struct sim_count *c)
{
	*c = (struct sim_count){0};
	struct tally t = {.dir = &w->dir};
	mm_strmap_init(&t.copies.map);
	mm_strmap_init(&t.bounced.map);
	mm_strmap_init(&t.queued.map);
	mm_strmap_init(&t.loose.map);
	for (size_t i = 0; i < w->nd; i++)
		if (w->d[i].kind == SIM_SERVER) {
			char base[700];
			snprintf(base, sizeof(base), "%s/mailstore", w->d[i].dir);
			sim_mailstore_scan(base, each_copy, &t);
		}
	pthread_mutex_lock(&w->sinks.lock);
	for (size_t i = 0; i < w->sinks.ndone; i++)
		if (external(&w->dir, w->sinks.done[i].rcpt))
			each_copy(&t, w->sinks.done[i].msgid, w->sinks.done[i].rcpt);
	pthread_mutex_unlock(&w->sinks.lock);
	/* bounces always (the logs are cheap to read); the queues only when
	 * asked for (a query per queue) */
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		if (d->kind != SIM_SERVER)
			continue;
		struct idmap ids = {0};
		struct bag pending = {0};
		mm_strmap_init(&ids.ids.map);
		mm_strmap_init(&pending.map);
		tracking(d, &ids, full && d->pid <= 0 ? &pending : NULL);
		ndrs(d, &ids, &t);
		if (full && d->pid > 0)
			queued_running(w, d, &ids, &t);
		else if (full)
			queued_stopped(d, &ids, &pending, &t);
		idmap_free(&ids);
		bag_free(&pending);
	}
	for (size_t i = 0; i < w->nsent; i++) {
		const struct sim_sent *s = &w->sent[i];
		if (rcpt && strcasecmp(s->rcpt, rcpt) != 0)
			continue;
		if (!s->accepted) {
			c->refused++;
			continue;
		}
		c->sent++;
		char k[1200];
		pair(k, sizeof(k), s->msgid, s->rcpt);
		uint32_t copies = bag_get(&t.copies, k);
		if (copies > 0) {
			c->delivered++;
			c->duplicated += copies - 1;
		} else if (bag_get(&t.bounced, k) > 0) {
			c->bounced++;
		} else if (bag_get(&t.queued, k) > 0) {
			c->queued++;
		} else if (full && bag_get(&t.loose, s->rcpt) > 0) {
			c->queued++; /* queued under an id the log has not named yet */
			bag_take(&t.loose, s->rcpt);
		} else if (full) {
			c->lost++;
		}
	}
	bag_free(&t.copies);
	bag_free(&t.bounced);
	bag_free(&t.queued);
	bag_free(&t.loose);
}

void sim_account(struct sim_world *w, const char *rcpt, bool full, struct sim_count *c)
{
	tally(w, rcpt, full, c);
	if (full && c->lost > 0) {
		/* the tracking logs are written once a second: look again */
		sim_sleep_ms(1200);
		tally(w, rcpt, full, c);
	}
}

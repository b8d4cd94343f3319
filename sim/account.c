/* The accounting of DESIGN §8: of the messages sent (answered 250), how
 * many were delivered (a copy with its Message-ID in the recipient's
 * Maildir on its home server, or at a smart host's sink), are still queued
 * (in a running server's queues, asked over 691), were bounced (an NDR line
 * in a server's tracking log), and lost: none of these. A duplicate is a
 * second copy of one (Message-ID, recipient). Every message meshsim sends
 * has one recipient, so counts of recipients and of messages agree. */
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

struct pairs {
	struct mm_strmap seen; /* "msgid rcpt" -> copies */
	size_t nkeys;
	char **keys; /* the map's keys (it copies none) */
};

static void count_pair(struct pairs *p, const char *msgid, const char *rcpt)
{
	char key[1200];
	snprintf(key, sizeof(key), "%s %s", msgid, rcpt);
	uint32_t n = 0;
	if (mm_strmap_get(&p->seen, key, &n)) {
		mm_strmap_put(&p->seen, key, n + 1);
		return;
	}
	p->keys = mm_xrealloc(p->keys, p->nkeys + 1, sizeof(*p->keys));
	p->keys[p->nkeys] = mm_xstrdup(key);
	mm_strmap_put(&p->seen, p->keys[p->nkeys++], 1);
}

static void each_copy(void *ctx, const char *msgid, const char *box)
{
	count_pair(ctx, msgid, box);
}

static void maildirs(const struct sim_daemon *d, struct pairs *p)
{
	char base[700];
	snprintf(base, sizeof(base), "%s/mailstore", d->dir);
	sim_mailstore_scan(base, each_copy, p);
}

/* NDR lines of d's tracking log for rcpt (NULL: any but the simulator's
 * own address, whose DSNs are no mail it sent) */
static uint64_t ndr_lines(const struct sim_daemon *d, const char *rcpt)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/tracking.log", d->dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	char line[4096];
	uint64_t n = 0;
	while (fgets(line, sizeof(line), f)) {
		char *ev = strchr(line, ' ');
		if (ev == NULL || strncmp(ev + 1, "NDR ", 4) != 0)
			continue;
		char *to = strstr(ev, " to=<");
		if (to == NULL)
			continue;
		to += 5;
		size_t len = strcspn(to, ">");
		if (rcpt ? strlen(rcpt) == len && strncasecmp(to, rcpt, len) == 0
		         : !(len == strlen(SENDER) && strncasecmp(to, SENDER, len) == 0))
			n++;
	}
	fclose(f);
	return n;
}

/* recipients of the simulator's messages in d's queues */
static uint64_t queued(struct sim_world *w, struct sim_daemon *d, const char *rcpt)
{
	char *text = sim_query(w, d, "queues", NULL);
	json_t *qs = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	uint64_t n = 0;
	json_t *q;
	size_t i;
	json_array_foreach(json_object_get(qs, "queues"), i, q)
	{
		json_t *msgs = json_object_get(q, "messages");
		if (!json_is_integer(msgs) || json_integer_value(msgs) == 0)
			continue;
		const char *id = json_string_value(json_object_get(q, "id"));
		char *body = id ? sim_query(w, d, "queue", id) : NULL;
		json_t *one = body ? json_loads(body, 0, NULL) : NULL;
		free(body);
		json_t *m;
		size_t k;
		json_array_foreach(json_object_get(one, "messages"), k, m)
		{
			const char *from = json_string_value(json_object_get(m, "sender"));
			if (from == NULL || strcasecmp(from, SENDER) != 0)
				continue;
			json_t *r;
			size_t j;
			json_array_foreach(json_object_get(m, "recipients"), j, r)
			{
				const char *a = json_string_value(json_object_get(r, "address"));
				n += a && (rcpt == NULL || strcasecmp(a, rcpt) == 0);
			}
		}
		json_decref(one);
	}
	json_decref(qs);
	return n;
}

void sim_account(struct sim_world *w, const char *rcpt, bool full, struct sim_count *c)
{
	*c = (struct sim_count){.refused = 0};
	struct pairs p = {0};
	mm_strmap_init(&p.seen);
	for (size_t i = 0; i < w->nd; i++)
		if (w->d[i].kind == SIM_SERVER)
			maildirs(&w->d[i], &p);
	pthread_mutex_lock(&w->sinks.lock);
	for (size_t i = 0; i < w->sinks.ndone; i++)
		count_pair(&p, w->sinks.done[i].msgid, w->sinks.done[i].rcpt);
	pthread_mutex_unlock(&w->sinks.lock);
	for (size_t i = 0; i < w->nsent; i++) {
		const struct sim_sent *s = &w->sent[i];
		if (rcpt && strcasecmp(s->rcpt, rcpt) != 0)
			continue;
		if (!s->accepted) {
			c->refused++;
			continue;
		}
		c->sent++;
		char key[1200];
		snprintf(key, sizeof(key), "%s %s", s->msgid, s->rcpt);
		uint32_t n = 0;
		c->delivered += mm_strmap_get(&p.seen, key, &n) && n > 0;
	}
	/* duplicates of what this run sent only */
	c->duplicated = 0;
	for (size_t i = 0; i < w->nsent; i++) {
		const struct sim_sent *s = &w->sent[i];
		if (!s->accepted || (rcpt && strcasecmp(s->rcpt, rcpt) != 0))
			continue;
		char key[1200];
		snprintf(key, sizeof(key), "%s %s", s->msgid, s->rcpt);
		uint32_t n = 0;
		mm_strmap_get(&p.seen, key, &n);
		c->duplicated += n > 1 ? n - 1 : 0;
	}
	mm_strmap_free(&p.seen);
	for (size_t i = 0; i < p.nkeys; i++)
		free(p.keys[i]);
	free(p.keys);
	c->queued = c->bounced = 0;
	for (size_t i = 0; i < w->nd; i++)
		if (w->d[i].kind == SIM_SERVER) {
			c->bounced += ndr_lines(&w->d[i], rcpt);
		}
	uint64_t settled = c->delivered + c->bounced;
	if (full && settled < c->sent) {
		/* only then are the queues worth asking */
		for (size_t i = 0; i < w->nd; i++)
			if (w->d[i].kind == SIM_SERVER && w->d[i].pid > 0)
				c->queued += queued(w, &w->d[i], rcpt);
	}
	settled += c->queued;
	c->lost = settled < c->sent ? c->sent - settled : 0;
}

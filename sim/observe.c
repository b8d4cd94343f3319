/* What the daemons believe (DESIGN §8: the same queries as meshctl
 * --connect): meshctl --connect with the run's admin certificate and
 * --expect naming the daemon asked, its JSON read with jansson. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "world.h"

#define QUERY_TIMEOUT_MS 10000

/* the command line of one query; expect: room for "KIND:NAME" */
struct qargs {
	char expect[200];
	char *argv[16];
};

static void qargs(struct sim_world *w, struct sim_daemon *d, bool json, const char *verb,
                  const char *arg, struct qargs *q)
{
	snprintf(q->expect, sizeof(q->expect), "%s:%s", d->kind == SIM_SERVER ? "server" : "master",
	         d->name);
	char *head[] = {w->bin_meshctl, "--connect", d->routing, "--tls",  w->admin_tls,
	                "--as",         "meshsim",   "--expect", q->expect};
	size_t n = 0;
	for (; n < sizeof(head) / sizeof(head[0]); n++)
		q->argv[n] = head[n];
	if (json)
		q->argv[n++] = "--json";
	q->argv[n++] = (char *)verb;
	q->argv[n++] = (char *)arg;
	q->argv[n] = NULL;
}

static char *query(struct sim_world *w, struct sim_daemon *d, bool json, const char *verb,
                   const char *arg)
{
	struct qargs q;
	qargs(w, d, json, verb, arg, &q);
	char *out;
	int rc = sim_run_capture(q.argv, &out, QUERY_TIMEOUT_MS);
	if (rc != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* the tables of n daemons, asked at once; tables[i] NULL when d[i] did
 * not answer */
static void tables_of(struct sim_world *w, struct sim_daemon **d, size_t n, json_t **tables)
{
	struct qargs *q = mm_xcalloc(n ? n : 1, sizeof(*q));
	char ***argvs = mm_xcalloc(n ? n : 1, sizeof(*argvs));
	char **outs = mm_xcalloc(n ? n : 1, sizeof(*outs));
	int *rcs = mm_xcalloc(n ? n : 1, sizeof(*rcs));
	for (size_t i = 0; i < n; i++) {
		qargs(w, d[i], true, "table", NULL, &q[i]);
		argvs[i] = q[i].argv;
	}
	sim_run_many((char **const *)argvs, n, outs, QUERY_TIMEOUT_MS, rcs);
	for (size_t i = 0; i < n; i++) {
		tables[i] = rcs[i] == 0 ? json_loads(outs[i], 0, NULL) : NULL;
		free(outs[i]);
	}
	free(rcs);
	free(outs);
	free(argvs);
	free(q);
}

char *sim_query(struct sim_world *w, struct sim_daemon *d, const char *verb, const char *arg)
{
	return query(w, d, true, verb, arg);
}

char *sim_query_text(struct sim_world *w, struct sim_daemon *d, const char *verb)
{
	return query(w, d, false, verb, NULL);
}

static json_t *query_json(struct sim_world *w, struct sim_daemon *d, const char *verb,
                          const char *arg)
{
	char *text = sim_query(w, d, verb, arg);
	if (text == NULL)
		return NULL;
	json_t *j = json_loads(text, 0, NULL);
	free(text);
	return j;
}

/* a group whose entry is still the directory's (signed by no one) while
 * one of its candidates runs: its master has not published yet */
static const char *unpublished(struct sim_world *w, json_t *t)
{
	json_t *g;
	size_t i;
	json_array_foreach(json_object_get(t, "groups"), i, g)
	{
		if (json_is_string(json_object_get(g, "signed_by")))
			continue;
		const char *name = json_string_value(json_object_get(g, "name"));
		for (size_t k = 0; name && k < w->nd; k++)
			if (w->d[k].kind == SIM_MASTER && w->d[k].pid > 0 &&
			    strcmp(w->d[k].group, name) == 0)
				return name;
	}
	return NULL;
}

bool sim_converged(struct sim_world *w, char *seen, size_t seenlen, char digest[65])
{
	seen[0] = '\0';
	if (digest)
		digest[0] = '\0';
	struct sim_daemon **asked = mm_xcalloc(w->nd + 1, sizeof(*asked));
	size_t n = 0;
	for (size_t i = 0; i < w->nd; i++)
		if (w->d[i].pid > 0 && !w->d[i].isolated)
			asked[n++] = &w->d[i];
	json_t **t = mm_xcalloc(n + 1, sizeof(*t));
	tables_of(w, asked, n, t);
	bool ok = n > 0;
	const char *first = NULL;
	if (n == 0)
		snprintf(seen, seenlen, "no daemon running");
	for (size_t i = 0; i < n && ok; i++) {
		const char *dg = t[i] ? json_string_value(json_object_get(t[i], "digest")) : NULL;
		const char *g;
		if (dg == NULL) {
			snprintf(seen, seenlen, "%s does not answer", asked[i]->name);
			ok = false;
		} else if (first == NULL) {
			first = dg;
			if ((g = unpublished(w, t[i])) != NULL) {
				snprintf(seen, seenlen,
				         "%s holds the directory's entry of %s (its master has "
				         "published "
				         "none yet)",
				         asked[i]->name, g);
				ok = false;
			}
		} else if (strcmp(first, dg) != 0) {
			snprintf(seen, seenlen, "%s holds %.16s, %s %.16s", asked[0]->name, first,
			         asked[i]->name, dg);
			ok = false;
		}
	}
	if (ok) {
		snprintf(seen, seenlen, "%zu daemons hold %.16s", n, first);
		if (digest)
			snprintf(digest, 65, "%s", first);
	}
	for (size_t i = 0; i < n; i++)
		json_decref(t[i]);
	free(t);
	free(asked);
	return ok;
}

/* the state of name in table t: "up", "down", or NULL when it has none */
static const char *state_in(json_t *t, const struct mm_sim_name *n)
{
	json_t *groups = json_object_get(t, "groups"), *g;
	size_t i;
	char c[200] = "", s[200] = "", vs[200] = "";
	if (n->kind == MM_SIM_BRIDGEHEAD)
		sscanf(n->text, "%199[^/]/%199[^/]/%199s", c, s, vs);
	json_array_foreach(groups, i, g)
	{
		json_t *x;
		size_t k;
		if (n->kind == MM_SIM_MASTER) {
			json_array_foreach(json_object_get(g, "master_candidates"), k, x)
			{
				const char *nm = json_string_value(json_object_get(x, "name"));
				if (nm && strcmp(nm, n->text) == 0)
					return json_string_value(json_object_get(x, "state"));
			}
			continue;
		}
		if (n->kind == MM_SIM_SERVER) {
			json_array_foreach(json_object_get(g, "servers"), k, x)
			{
				const char *nm = json_string_value(json_object_get(x, "name"));
				if (nm && strcmp(nm, n->text) == 0)
					return json_string_value(json_object_get(x, "state"));
			}
			continue;
		}
		json_array_foreach(json_object_get(g, "connectors"), k, x)
		{
			const char *nm = json_string_value(json_object_get(x, "name"));
			if (nm == NULL)
				continue;
			if (n->kind == MM_SIM_CONNECTOR && strcmp(nm, n->text) == 0)
				return json_string_value(json_object_get(x, "state"));
			if (n->kind != MM_SIM_BRIDGEHEAD || strcmp(nm, c) != 0)
				continue;
			const char *lists[] = {"local_bridgeheads", "remote_bridgeheads"};
			for (int l = 0; l < 2; l++) {
				json_t *b;
				size_t m;
				json_array_foreach(json_object_get(x, lists[l]), m, b)
				{
					const char *bs =
					    json_string_value(json_object_get(b, "server"));
					const char *bv =
					    json_string_value(json_object_get(b, "virtual_server"));
					if (bs && bv && strcmp(bs, s) == 0 && strcmp(bv, vs) == 0)
						return json_string_value(
						    json_object_get(b, "state"));
				}
			}
		}
	}
	return NULL;
}

bool sim_state_is(struct sim_world *w, struct sim_daemon *at, const struct mm_sim_name *name,
                  bool up, char *seen, size_t seenlen)
{
	struct sim_daemon **asked = mm_xcalloc(w->nd + 1, sizeof(*asked));
	size_t n = 0;
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		if (at ? d == at : (d->kind == SIM_SERVER && d->pid > 0))
			asked[n++] = d;
	}
	json_t **t = mm_xcalloc(n + 1, sizeof(*t));
	tables_of(w, asked, n, t);
	bool ok = n > 0;
	if (n == 0)
		snprintf(seen, seenlen, "no running server to ask");
	for (size_t i = 0; i < n && ok; i++) {
		const char *st = t[i] ? state_in(t[i], name) : NULL;
		ok = st && strcmp(st, up ? "up" : "down") == 0;
		snprintf(seen, seenlen, "%s %s at %s", name->text,
		         t[i] == NULL ? "unknown (no answer)"
		         : st         ? st
		                      : "absent",
		         asked[i]->name);
	}
	for (size_t i = 0; i < n; i++)
		json_decref(t[i]);
	free(t);
	free(asked);
	return ok;
}

bool sim_route_via(struct sim_world *w, struct sim_daemon *at, const char *rcpt,
                   const struct mm_sim_name *via, char *seen, size_t seenlen)
{
	json_t *r = query_json(w, at, "route", rcpt);
	if (r == NULL) {
		snprintf(seen, seenlen, "%s does not answer", at->name);
		return false;
	}
	bool ok = false;
	json_t *x;
	size_t i;
	char path[400] = "";
	json_array_foreach(json_object_get(r, "connectors"), i, x)
	{
		const char *c = json_string_value(x);
		if (c == NULL)
			continue;
		size_t used = strlen(path);
		snprintf(path + used, sizeof(path) - used, "%s%s", used ? ", " : "", c);
		ok |= via->kind == MM_SIM_CONNECTOR && strcmp(c, via->text) == 0;
	}
	const char *hop =
	    json_string_value(json_object_get(json_object_get(r, "next_hop"), "server"));
	ok |= via->kind == MM_SIM_SERVER && hop && strcmp(hop, via->text) == 0;
	const char *kind = json_string_value(json_object_get(r, "kind"));
	snprintf(seen, seenlen, "%s (connectors [%s], next hop %s)", kind ? kind : "?", path,
	         hop ? hop : "none");
	json_decref(r);
	return ok;
}

/* What the daemons believe (DESIGN §8: the same queries as meshctl
 * --connect): meshctl --connect with the run's admin certificate and
 * --expect naming the daemon asked, its JSON read with jansson. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "world.h"

#define QUERY_TIMEOUT_MS 10000

char *sim_query(struct sim_world *w, struct sim_daemon *d, const char *verb, const char *arg)
{
	char expect[200];
	snprintf(expect, sizeof(expect), "%s:%s", d->kind == SIM_SERVER ? "server" : "master",
	         d->name);
	char *argv[] = {w->bin_meshctl, "--connect", d->routing, "--tls", w->admin_tls,
	                "--as",         "meshsim",   "--expect", expect,  "--json",
	                (char *)verb,   (char *)arg, NULL};
	char *out;
	int rc = sim_run_capture(argv, &out, QUERY_TIMEOUT_MS);
	if (rc != 0) {
		free(out);
		return NULL;
	}
	return out;
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

bool sim_converged(struct sim_world *w, char *seen, size_t seenlen)
{
	const char *first = NULL;
	char firstname[128] = "";
	bool ok = true;
	size_t asked = 0;
	seen[0] = '\0';
	json_t *keep[256];
	size_t nkeep = 0;
	for (size_t i = 0; i < w->nd && ok; i++) {
		struct sim_daemon *d = &w->d[i];
		if (d->pid <= 0 || d->isolated)
			continue;
		json_t *t = query_json(w, d, "table", NULL);
		const char *dg = t ? json_string_value(json_object_get(t, "digest")) : NULL;
		if (dg == NULL) {
			snprintf(seen, seenlen, "%s does not answer", d->name);
			ok = false;
		} else if (first == NULL) {
			first = dg;
			snprintf(firstname, sizeof(firstname), "%s", d->name);
		} else if (strcmp(first, dg) != 0) {
			snprintf(seen, seenlen, "%s holds %.16s, %s %.16s", firstname, first,
			         d->name, dg);
			ok = false;
		}
		asked++;
		if (t && nkeep < 256)
			keep[nkeep++] = t;
		else
			json_decref(t);
	}
	if (ok)
		snprintf(seen, seenlen, "%zu daemons hold %.16s", asked, first ? first : "-");
	for (size_t i = 0; i < nkeep; i++)
		json_decref(keep[i]);
	return ok && asked > 0;
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
			const char *m = json_string_value(json_object_get(g, "master"));
			if (m && strcmp(m, n->text) == 0)
				return "up";
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
	return n->kind == MM_SIM_MASTER ? "down" : NULL;
}

bool sim_state_is(struct sim_world *w, struct sim_daemon *at, const struct mm_sim_name *name,
                  bool up, char *seen, size_t seenlen)
{
	size_t asked = 0;
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		if (at ? d != at : (d->kind != SIM_SERVER || d->pid <= 0))
			continue;
		json_t *t = query_json(w, d, "table", NULL);
		const char *st = t ? state_in(t, name) : NULL;
		bool ok = st && strcmp(st, up ? "up" : "down") == 0;
		snprintf(seen, seenlen, "%s %s at %s", name->text,
		         t == NULL ? "unknown (no answer)"
		         : st      ? st
		                   : "absent",
		         d->name);
		json_decref(t);
		if (!ok)
			return false;
		asked++;
	}
	if (asked == 0)
		snprintf(seen, seenlen, "no running server to ask");
	return asked > 0;
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

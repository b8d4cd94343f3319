#include "topo.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static uint64_t id_hash(const char *a, const char *b)
{
	/* a name pair as one id; the separator cannot occur in either name's
	 * role here (server names are unique, "/" keeps "ab"+"c" != "a"+"bc") */
	uint64_t h = mm_strhash(a);
	return h ^ (mm_strhash(b) * 0x9e3779b97f4a7c15ULL + 0x2f);
}

static uint32_t lookup(const struct mm_strmap *m, const char *name)
{
	uint32_t v;
	return mm_strmap_get(m, name, &v) ? v : MM_NONE;
}

uint32_t mm_topo_server(const struct mm_topo *t, const char *name)
{
	return lookup(&t->server_idx, name);
}

uint32_t mm_topo_group(const struct mm_topo *t, const char *name)
{
	return lookup(&t->group_idx, name);
}

uint32_t mm_topo_connector(const struct mm_topo *t, const char *name)
{
	return lookup(&t->conn_idx, name);
}

static uint32_t find_vs(const struct mm_topo *t, const Mailmesh__Bridgehead *b)
{
	uint32_t s = mm_topo_server(t, b->server);
	if (s == MM_NONE)
		return MM_NONE;
	const struct mm_topo_server *sv = &t->servers[s];
	for (uint32_t i = sv->vs_first; i < sv->vs_first + sv->nvs; i++)
		if (strcmp(t->vs[i].name, b->virtual_server) == 0)
			return i;
	return MM_NONE;
}

static void snapshot(struct mm_topo_group *g, const mm_entry *e)
{
	const Mailmesh__Version *v = e->version;
	g->entry = e;
	g->incarnation = v ? v->incarnation : 0;
	g->major = v ? v->major : 0;
	g->minor = v ? v->minor : 0;
	g->user = v ? v->user : 0;
}

static bool same_version(const struct mm_topo_group *g, const mm_entry *e)
{
	const Mailmesh__Version *v = e->version;
	return g->entry == e && g->incarnation == (v ? v->incarnation : 0) &&
	       g->major == (v ? v->major : 0) && g->minor == (v ? v->minor : 0) &&
	       g->user == (v ? v->user : 0);
}

/* Effective states (see topo.h) of a connector and its bridgeheads, from
 * the servers' states and the down flags the table holds. */
static void conn_state(struct mm_topo *t, struct mm_topo_conn *tc)
{
	bool local = false, remote = false;
	for (uint32_t i = tc->local_first; i < tc->local_first + tc->nlocal; i++) {
		struct mm_topo_bh *bh = &t->bhs[i];
		const struct mm_topo_server *sv =
		    bh->vs == MM_NONE ? NULL : &t->servers[t->vs[bh->vs].server];
		bh->up = sv && !bh->b->down && sv->up && sv->group == tc->group;
		local |= bh->up;
	}
	for (uint32_t i = tc->remote_first; i < tc->remote_first + tc->nremote; i++) {
		struct mm_topo_bh *bh = &t->bhs[i];
		const struct mm_topo_server *sv =
		    bh->vs == MM_NONE ? NULL : &t->servers[t->vs[bh->vs].server];
		bh->up = sv && !bh->b->down && sv->up &&
		         (tc->target == MM_NONE || sv->group == tc->target);
		remote |= bh->up;
	}
	tc->up = !tc->c->down && local && (tc->smtp || (remote && tc->target != MM_NONE));
}

/* The reverse index: for each group, the connectors (of other groups)
 * whose remote bridgeheads are on its servers. */
static void reverse_index(struct mm_topo *t)
{
	t->rev_first = mm_xcalloc(t->ngroups + 1, sizeof(*t->rev_first));
	for (int pass = 0; pass < 2; pass++) {
		uint32_t *fill = pass ? mm_xcalloc(t->ngroups, sizeof(*fill)) : NULL;
		for (uint32_t ci = 0; ci < t->nconns; ci++) {
			const struct mm_topo_conn *tc = &t->conns[ci];
			uint32_t last = MM_NONE;
			for (uint32_t i = tc->remote_first; i < tc->remote_first + tc->nremote;
			     i++) {
				if (t->bhs[i].vs == MM_NONE)
					continue;
				uint32_t g = t->servers[t->vs[t->bhs[i].vs].server].group;
				if (g == last || g == tc->group)
					continue; /* its own group's changes redo it anyway */
				last = g;
				if (pass == 0)
					t->rev_first[g + 1]++;
				else
					t->rev[t->rev_first[g] + fill[g]++] = ci;
			}
		}
		if (pass == 0) {
			for (uint32_t g = 0; g < t->ngroups; g++)
				t->rev_first[g + 1] += t->rev_first[g];
			t->rev = mm_xcalloc(t->rev_first[t->ngroups] + 1, sizeof(*t->rev));
		}
		free(fill);
	}
}

/* Copy s into the arena, which was sized beforehand. */
static const char *keep(char **at, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = *at;
	memcpy(d, s, n);
	*at += n;
	return d;
}

static void add_bhs(struct mm_topo *t, Mailmesh__Bridgehead **b, size_t n, uint32_t *first,
                    uint32_t *count)
{
	*first = t->nbhs;
	*count = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		t->bhs[t->nbhs++] = (struct mm_topo_bh){find_vs(t, b[i]), false, b[i]};
}

void mm_topo_compile(struct mm_topo *t, const struct mm_table *table)
{
	*t = (struct mm_topo){0};
	size_t nservers = 0, nvs = 0, nconns = 0, nbhs = 0, nsmtp = 0, text = 0;
	for (size_t g = 0; g < table->n; g++) {
		const mm_entry *e = table->entries[g];
		text += strlen(e->name) + 1;
		nservers += e->n_servers;
		for (size_t s = 0; s < e->n_servers; s++) {
			text += strlen(e->servers[s]->name) + 1;
			nvs += e->servers[s]->n_virtual_servers;
			for (size_t v = 0; v < e->servers[s]->n_virtual_servers; v++)
				text += strlen(e->servers[s]->virtual_servers[v]->name) +
				        strlen(e->servers[s]->virtual_servers[v]->address) + 2;
		}
		nconns += e->n_connectors;
		for (size_t c = 0; c < e->n_connectors; c++) {
			nbhs += e->connectors[c]->n_local_bridgeheads +
			        e->connectors[c]->n_remote_bridgeheads;
			nsmtp += e->connectors[c]->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
			text += strlen(e->connectors[c]->name) + 1;
		}
	}
	t->groups = mm_xcalloc(table->n, sizeof(*t->groups));
	t->servers = mm_xcalloc(nservers, sizeof(*t->servers));
	t->vs = mm_xcalloc(nvs, sizeof(*t->vs));
	t->conns = mm_xcalloc(nconns, sizeof(*t->conns));
	t->bhs = mm_xcalloc(nbhs, sizeof(*t->bhs));
	t->smtp = mm_xcalloc(nsmtp, sizeof(*t->smtp));
	t->arena = mm_xmalloc(text);
	char *at = t->arena;
	mm_strmap_reserve(&t->group_idx, table->n);
	mm_strmap_reserve(&t->server_idx, nservers);
	mm_strmap_reserve(&t->conn_idx, nconns);

	/* groups, servers, virtual servers */
	for (size_t g = 0; g < table->n; g++) {
		const mm_entry *e = table->entries[g];
		struct mm_topo_group *tg = &t->groups[g];
		tg->name = keep(&at, e->name);
		tg->server_first = t->nservers;
		tg->nserver = (uint32_t)e->n_servers;
		snapshot(tg, e);
		mm_strmap_put(&t->group_idx, tg->name, (uint32_t)g);
		for (size_t s = 0; s < e->n_servers; s++) {
			const Mailmesh__Server *sv = e->servers[s];
			uint32_t si = t->nservers++;
			const char *name = keep(&at, sv->name);
			t->servers[si] = (struct mm_topo_server){
			    name, (uint32_t)g, !sv->down, t->nvs, (uint32_t)sv->n_virtual_servers};
			mm_strmap_put(&t->server_idx, name, si);
			for (size_t v = 0; v < sv->n_virtual_servers; v++) {
				const Mailmesh__VirtualServer *vs = sv->virtual_servers[v];
				const char *vname = keep(&at, vs->name);
				t->vs[t->nvs++] = (struct mm_topo_vs){
				    vname, keep(&at, vs->address), si, id_hash(sv->name, vs->name)};
			}
		}
	}
	t->ngroups = (uint32_t)table->n;

	/* connectors, once every server is known */
	for (size_t g = 0; g < table->n; g++) {
		const mm_entry *e = table->entries[g];
		t->groups[g].conn_first = t->nconns;
		t->groups[g].nconn = (uint32_t)e->n_connectors;
		for (size_t c = 0; c < e->n_connectors; c++) {
			const Mailmesh__Connector *cn = e->connectors[c];
			uint32_t ci = t->nconns++;
			struct mm_topo_conn *tc = &t->conns[ci];
			tc->c = cn;
			tc->group = (uint32_t)g;
			tc->cost = cn->cost;
			tc->smtp = cn->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
			tc->target = tc->smtp ? MM_NONE : mm_topo_group(t, cn->target_group);
			tc->hash = mm_strhash(cn->name);
			add_bhs(t, cn->local_bridgeheads, cn->n_local_bridgeheads, &tc->local_first,
			        &tc->nlocal);
			add_bhs(t, cn->remote_bridgeheads, cn->n_remote_bridgeheads,
			        &tc->remote_first, &tc->nremote);
			if (tc->smtp)
				t->smtp[t->nsmtp++] = ci;
			mm_strmap_put(&t->conn_idx, keep(&at, cn->name), ci);
		}
	}
	for (uint32_t ci = 0; ci < t->nconns; ci++)
		conn_state(t, &t->conns[ci]);
	reverse_index(t);
}

static bool same_bhs(const struct mm_topo *t, Mailmesh__Bridgehead **b, size_t n, uint32_t first,
                     uint32_t count)
{
	if (n != count)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct mm_topo_bh *bh = &t->bhs[first + i];
		uint32_t vs = bh->vs;
		if (vs == MM_NONE
		        ? find_vs(t, b[i]) != MM_NONE
		        : strcmp(t->vs[vs].name, b[i]->virtual_server) != 0 ||
		              strcmp(t->servers[t->vs[vs].server].name, b[i]->server) != 0)
			return false;
	}
	return true;
}

/* Same names in the same places: what the indices and maps are made of. */
static bool same_shape(const struct mm_topo *t, uint32_t g, const mm_entry *e)
{
	const struct mm_topo_group *tg = &t->groups[g];
	if (strcmp(tg->name, e->name) != 0 || e->n_servers != tg->nserver ||
	    e->n_connectors != tg->nconn)
		return false;
	for (size_t s = 0; s < e->n_servers; s++) {
		const Mailmesh__Server *sv = e->servers[s];
		const struct mm_topo_server *ts = &t->servers[tg->server_first + s];
		if (strcmp(ts->name, sv->name) != 0 || sv->n_virtual_servers != ts->nvs)
			return false;
		for (size_t v = 0; v < sv->n_virtual_servers; v++) {
			const struct mm_topo_vs *tv = &t->vs[ts->vs_first + v];
			if (strcmp(tv->name, sv->virtual_servers[v]->name) != 0 ||
			    strcmp(tv->address, sv->virtual_servers[v]->address) != 0)
				return false;
		}
	}
	for (size_t c = 0; c < e->n_connectors; c++) {
		const Mailmesh__Connector *cn = e->connectors[c];
		const struct mm_topo_conn *tc = &t->conns[tg->conn_first + c];
		uint32_t ci = mm_topo_connector(t, cn->name);
		bool smtp = cn->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
		if (ci != tg->conn_first + c || smtp != tc->smtp)
			return false;
		if (!smtp && mm_topo_group(t, cn->target_group) != tc->target)
			return false;
		if (!same_bhs(t, cn->local_bridgeheads, cn->n_local_bridgeheads, tc->local_first,
		              tc->nlocal) ||
		    !same_bhs(t, cn->remote_bridgeheads, cn->n_remote_bridgeheads, tc->remote_first,
		              tc->nremote))
			return false;
	}
	return true;
}

bool mm_topo_refresh(struct mm_topo *t, const struct mm_table *table)
{
	if (table->n != t->ngroups)
		return false;
	uint32_t nchanged = 0, *changed = NULL;
	for (uint32_t g = 0; g < t->ngroups; g++) {
		const mm_entry *e = table->entries[g];
		if (same_version(&t->groups[g], e))
			continue;
		if (!same_shape(t, g, e)) {
			free(changed);
			return false;
		}
		changed = mm_xrealloc(changed, nchanged + 1, sizeof(*changed));
		changed[nchanged++] = g;
		/* the entry may be a new object (a merge replaced it): take its
		 * pointers and states */
		struct mm_topo_group *tg = &t->groups[g];
		snapshot(tg, e);
		for (size_t s = 0; s < e->n_servers; s++)
			t->servers[tg->server_first + s].up = !e->servers[s]->down;
		for (size_t c = 0; c < e->n_connectors; c++) {
			const Mailmesh__Connector *cn = e->connectors[c];
			struct mm_topo_conn *tc = &t->conns[tg->conn_first + c];
			tc->c = cn;
			tc->cost = cn->cost;
			for (size_t i = 0; i < cn->n_local_bridgeheads; i++)
				t->bhs[tc->local_first + i].b = cn->local_bridgeheads[i];
			for (size_t i = 0; i < cn->n_remote_bridgeheads; i++)
				t->bhs[tc->remote_first + i].b = cn->remote_bridgeheads[i];
		}
	}
	/* states follow: the changed groups' connectors, and the connectors
	 * elsewhere that end on their servers */
	for (uint32_t k = 0; k < nchanged; k++) {
		const struct mm_topo_group *tg = &t->groups[changed[k]];
		for (uint32_t ci = tg->conn_first; ci < tg->conn_first + tg->nconn; ci++)
			conn_state(t, &t->conns[ci]);
		for (uint32_t i = t->rev_first[changed[k]]; i < t->rev_first[changed[k] + 1]; i++)
			conn_state(t, &t->conns[t->rev[i]]);
	}
	free(changed);
	return true;
}

void mm_topo_free(struct mm_topo *t)
{
	free(t->groups);
	free(t->servers);
	free(t->vs);
	free(t->conns);
	free(t->bhs);
	free(t->smtp);
	free(t->arena);
	free(t->rev_first);
	free(t->rev);
	mm_strmap_free(&t->group_idx);
	mm_strmap_free(&t->server_idx);
	mm_strmap_free(&t->conn_idx);
	*t = (struct mm_topo){0};
}

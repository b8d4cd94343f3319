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

static bool add_bhs(struct mm_topo *t, Mailmesh__Bridgehead **b, size_t n, uint32_t group,
                    uint32_t *first, uint32_t *count)
{
	bool any_up = false;
	*first = t->nbhs;
	*count = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		uint32_t vs = find_vs(t, b[i]);
		bool up = vs != MM_NONE && !b[i]->down && t->servers[t->vs[vs].server].up &&
		          (group == MM_NONE || t->servers[t->vs[vs].server].group == group);
		t->bhs[t->nbhs++] = (struct mm_topo_bh){vs, up};
		any_up |= up;
	}
	return any_up;
}

void mm_topo_compile(struct mm_topo *t, const struct mm_table *table)
{
	*t = (struct mm_topo){0};
	size_t nservers = 0, nvs = 0, nconns = 0, nbhs = 0, nsmtp = 0;
	for (size_t g = 0; g < table->n; g++) {
		const mm_entry *e = table->entries[g];
		nservers += e->n_servers;
		for (size_t s = 0; s < e->n_servers; s++)
			nvs += e->servers[s]->n_virtual_servers;
		nconns += e->n_connectors;
		for (size_t c = 0; c < e->n_connectors; c++) {
			nbhs += e->connectors[c]->n_local_bridgeheads +
			        e->connectors[c]->n_remote_bridgeheads;
			nsmtp += e->connectors[c]->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
		}
	}
	t->groups = mm_xcalloc(table->n, sizeof(*t->groups));
	t->servers = mm_xcalloc(nservers, sizeof(*t->servers));
	t->vs = mm_xcalloc(nvs, sizeof(*t->vs));
	t->conns = mm_xcalloc(nconns, sizeof(*t->conns));
	t->bhs = mm_xcalloc(nbhs, sizeof(*t->bhs));
	t->smtp = mm_xcalloc(nsmtp, sizeof(*t->smtp));
	mm_strmap_reserve(&t->group_idx, table->n);
	mm_strmap_reserve(&t->server_idx, nservers);
	mm_strmap_reserve(&t->conn_idx, nconns);

	/* groups, servers, virtual servers */
	for (size_t g = 0; g < table->n; g++) {
		const mm_entry *e = table->entries[g];
		t->groups[g].name = e->name;
		mm_strmap_put(&t->group_idx, e->name, (uint32_t)g);
		for (size_t s = 0; s < e->n_servers; s++) {
			const Mailmesh__Server *sv = e->servers[s];
			uint32_t si = t->nservers++;
			t->servers[si] =
			    (struct mm_topo_server){sv->name, (uint32_t)g, !sv->down, t->nvs,
			                            (uint32_t)sv->n_virtual_servers};
			mm_strmap_put(&t->server_idx, sv->name, si);
			for (size_t v = 0; v < sv->n_virtual_servers; v++) {
				const Mailmesh__VirtualServer *vs = sv->virtual_servers[v];
				t->vs[t->nvs++] = (struct mm_topo_vs){vs->name, vs->address, si,
				                                      id_hash(sv->name, vs->name)};
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
			tc->smtp = cn->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
			tc->target = tc->smtp ? MM_NONE : mm_topo_group(t, cn->target_group);
			tc->hash = mm_strhash(cn->name);
			bool local = add_bhs(t, cn->local_bridgeheads, cn->n_local_bridgeheads,
			                     (uint32_t)g, &tc->local_first, &tc->nlocal);
			bool remote = add_bhs(t, cn->remote_bridgeheads, cn->n_remote_bridgeheads,
			                      tc->target, &tc->remote_first, &tc->nremote);
			tc->up =
			    !cn->down && local && (tc->smtp || (remote && tc->target != MM_NONE));
			if (tc->smtp)
				t->smtp[t->nsmtp++] = ci;
			mm_strmap_put(&t->conn_idx, cn->name, ci);
		}
	}
}

void mm_topo_free(struct mm_topo *t)
{
	free(t->groups);
	free(t->servers);
	free(t->vs);
	free(t->conns);
	free(t->bhs);
	free(t->smtp);
	mm_strmap_free(&t->group_idx);
	mm_strmap_free(&t->server_idx);
	mm_strmap_free(&t->conn_idx);
	*t = (struct mm_topo){0};
}

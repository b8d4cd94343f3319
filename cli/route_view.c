/* One next-hop decision as meshctl shows it (`meshctl route`), in JSON or
 * text: offline meshctl and meshnode (answering `meshctl --connect ...
 * route`) render it here, so the two cannot drift apart. */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "route_view.h"

static void route_json(FILE *out, const struct mm_router *r, const char *rcpt, const char *from,
                       const char *domain, const struct mm_route *rt)
{
	const struct mm_topo *t = &r->topo;
	struct json j;
	json_init(&j, out);
	json_begin_obj(&j);
	json_key(&j, "recipient");
	json_str(&j, rcpt);
	json_key(&j, "from");
	json_str(&j, from);
	json_key(&j, "kind");
	json_str(&j, mm_route_kind_name(rt->kind));
	json_key(&j, "destination");
	json_str(&j, rt->destination);
	json_key(&j, "path");
	json_begin_arr(&j);
	for (uint32_t i = 0; i < rt->npath; i++)
		json_str(&j, t->groups[rt->path[i]].name);
	json_end_arr(&j);
	json_key(&j, "connectors");
	json_begin_arr(&j);
	for (uint32_t i = 0; i < rt->nconns; i++)
		json_str(&j, t->conns[rt->conns[i]].c->name);
	json_end_arr(&j);
	json_key(&j, "cost");
	if (rt->has_cost)
		json_u64(&j, rt->cost);
	else
		json_null(&j);
	json_key(&j, "next_hop");
	char addr[300];
	switch (rt->hop) {
	case MM_HOP_VSERVER:
		json_begin_obj(&j);
		json_key(&j, "server");
		json_str(&j, t->servers[t->vs[rt->hop_vs].server].name);
		json_key(&j, "virtual_server");
		json_str(&j, t->vs[rt->hop_vs].name);
		json_key(&j, "address");
		json_str(&j, t->vs[rt->hop_vs].address);
		json_key(&j, "via");
		json_str(&j, "virtual-server");
		json_end_obj(&j);
		break;
	case MM_HOP_SMART_HOST:
	case MM_HOP_DNS:
		/* this server is the connector's bridgehead and delivers itself */
		json_begin_obj(&j);
		json_key(&j, "server");
		json_null(&j);
		json_key(&j, "virtual_server");
		json_null(&j);
		json_key(&j, "address");
		if (rt->hop == MM_HOP_SMART_HOST) {
			mm_smart_host_address(rt->smart_host, addr, sizeof(addr));
			json_str(&j, addr);
			json_key(&j, "via");
			json_str(&j, "smart-host");
		} else {
			json_null(&j);
			json_key(&j, "via");
			json_str(&j, "dns");
			json_key(&j, "domain");
			json_str(&j, domain);
		}
		json_end_obj(&j);
		break;
	case MM_HOP_NONE: json_null(&j); break;
	}
	json_end_obj(&j);
	fputc('\n', out);
}

static void route_text(FILE *out, const struct mm_router *r, const char *rcpt, const char *from,
                       const char *domain, const struct mm_route *rt)
{
	const struct mm_topo *t = &r->topo;
	fprintf(out, "%s from %s: %s\n", rcpt, from, mm_route_kind_name(rt->kind));
	fprintf(out, "  destination  %s\n", rt->destination);
	fprintf(out, "  path         ");
	for (uint32_t i = 0; i < rt->npath; i++)
		fprintf(out, "%s%s", i ? " -> " : "", t->groups[rt->path[i]].name);
	fprintf(out, "%s\n  connectors   ", rt->npath ? "" : "-");
	for (uint32_t i = 0; i < rt->nconns; i++)
		fprintf(out, "%s%s", i ? ", " : "", t->conns[rt->conns[i]].c->name);
	fprintf(out, "%s\n", rt->nconns ? "" : "-");
	if (rt->has_cost)
		fprintf(out, "  cost         %u\n", rt->cost);
	else
		fprintf(out, "  cost         -\n");
	char addr[300];
	switch (rt->hop) {
	case MM_HOP_VSERVER:
		fprintf(out, "  next hop     %s/%s %s\n", t->servers[t->vs[rt->hop_vs].server].name,
		        t->vs[rt->hop_vs].name, t->vs[rt->hop_vs].address);
		break;
	case MM_HOP_SMART_HOST:
		mm_smart_host_address(rt->smart_host, addr, sizeof(addr));
		fprintf(out, "  next hop     smart host %s (this server delivers)\n", addr);
		break;
	case MM_HOP_DNS:
		fprintf(out, "  next hop     MX of %s (this server delivers)\n", domain);
		break;
	case MM_HOP_NONE:
		fprintf(out, "  next hop     %s\n",
		        rt->kind == MM_ROUTE_LOCAL ? "local delivery" : "-");
		break;
	}
}

void mm_route_render(FILE *out, const struct mm_router *r, const char *rcpt, const char *from,
                     const char *domain, const struct mm_route *rt, bool json)
{
	if (json)
		route_json(out, r, rcpt, from, domain, rt);
	else
		route_text(out, r, rcpt, from, domain, rt);
}

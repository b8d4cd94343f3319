/* meshctl route: the decision of DESIGN §4 for one recipient, as the server
 * named by --from would take it. Offline there is no message, so the
 * recipient address is the rendezvous key. */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "meshctl.h"
#include "route.h"

static void route_json(const struct mm_router *r, const char *rcpt, const char *from,
                       const char *domain, const struct mm_route *rt)
{
	const struct mm_topo *t = &r->topo;
	struct json j;
	json_init(&j, stdout);
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
	fputc('\n', stdout);
}

static void route_text(const struct mm_router *r, const char *rcpt, const char *from,
                       const char *domain, const struct mm_route *rt)
{
	const struct mm_topo *t = &r->topo;
	printf("%s from %s: %s\n", rcpt, from, mm_route_kind_name(rt->kind));
	printf("  destination  %s\n", rt->destination);
	printf("  path         ");
	for (uint32_t i = 0; i < rt->npath; i++)
		printf("%s%s", i ? " -> " : "", t->groups[rt->path[i]].name);
	printf("%s\n  connectors   ", rt->npath ? "" : "-");
	for (uint32_t i = 0; i < rt->nconns; i++)
		printf("%s%s", i ? ", " : "", t->conns[rt->conns[i]].c->name);
	printf("%s\n", rt->nconns ? "" : "-");
	if (rt->has_cost)
		printf("  cost         %u\n", rt->cost);
	else
		printf("  cost         -\n");
	char addr[300];
	switch (rt->hop) {
	case MM_HOP_VSERVER:
		printf("  next hop     %s/%s %s\n", t->servers[t->vs[rt->hop_vs].server].name,
		       t->vs[rt->hop_vs].name, t->vs[rt->hop_vs].address);
		break;
	case MM_HOP_SMART_HOST:
		mm_smart_host_address(rt->smart_host, addr, sizeof(addr));
		printf("  next hop     smart host %s (this server delivers)\n", addr);
		break;
	case MM_HOP_DNS: printf("  next hop     MX of %s (this server delivers)\n", domain); break;
	case MM_HOP_NONE:
		printf("  next hop     %s\n", rt->kind == MM_ROUTE_LOCAL ? "local delivery" : "-");
		break;
	}
}

int ctl_route(struct ctl *c, const char *from, const char *rcpt)
{
	struct mm_router r;
	if (!mm_router_init(&r, &c->dir.table, from)) {
		fprintf(stderr, "meshctl: route: no server named %s\n", from);
		return EX_USAGE;
	}
	char domain[256];
	const struct mm_recipient *who = NULL;
	struct mm_route rt;
	int rc = EX_OK;
	switch (mm_directory_categorize(&c->dir, rcpt, &who, domain)) {
	case MM_CAT_BAD:
		fprintf(stderr, "meshctl: route: %s is not local@domain (501 5.1.3)\n", rcpt);
		rc = EX_USAGE;
		goto out;
	case MM_CAT_UNKNOWN:
		fprintf(stderr,
		        "meshctl: route: no recipient %s in authoritative domain %s (550 5.1.1)\n",
		        rcpt, domain);
		rc = EX_NOUSER;
		goto out;
	case MM_CAT_HOME: mm_route_to_server(&r, who->home, rcpt, &rt); break;
	case MM_CAT_EXTERNAL: mm_route_to_domain(&r, domain, rcpt, &rt); break;
	}
	if (c->json)
		route_json(&r, rcpt, from, domain, &rt);
	else
		route_text(&r, rcpt, from, domain, &rt);
out:
	mm_router_free(&r);
	return rc;
}

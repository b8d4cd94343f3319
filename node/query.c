/* Queries on TCP 691 (docs/protocol.md, "Queries"), for meshctl --connect:
 * Query {command, args}, args[0] "json" or "text", then the command's
 * operands; the answer is written to out and its sysexits status returned
 * (query_answer), for a Reply {status, json}.
 *
 *   table               the node's view: what it routes with (the masters'
 *                       table with its own state laid over its group's
 *                       entry), in the shape of `meshctl --json table` with
 *                       "server" this server and "role" "node"
 *   route RECIPIENT     the decision this node takes now, as `meshctl route
 *                       --from SELF RECIPIENT` writes it
 *   queues, queue Q, retry Q, freeze Q, thaw Q
 *                       what SPOOL/control.sock answers (control.c renders
 *                       both, so they never disagree); retry, freeze and
 *                       thaw only for a peer with an admin certificate
 *
 * The table and route renderings follow cli/show_table.c and
 * cli/show_route.c field for field; once those are a library shared by
 * meshctl and the daemons, table_json/table_text and route_json/route_text
 * below give way to it (their arguments are what such a library needs: the
 * table, its compiled topology, the organization, who answers). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "json.h"
#include "node.h"

static const char *state(bool up)
{
	return up ? "up" : "down";
}

static const char *type_name(const Mailmesh__Connector *c)
{
	return c->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP ? "smtp" : "routing-group";
}

static const char *scope_name(const Mailmesh__Connector *c)
{
	return c->scope == MAILMESH__SCOPE__SCOPE_ROUTING_GROUP ? "routing-group" : "organization";
}

static const char *tls_name(const Mailmesh__Connector *c)
{
	return c->tls_policy == MAILMESH__TLS_POLICY__TLS_REQUIRED ? "required"
	       : c->tls_policy == MAILMESH__TLS_POLICY__TLS_NONE   ? "none"
	                                                           : "opportunistic";
}

/* --- table ---------------------------------------------------------------- */

static void json_bridgeheads(struct json *j, const struct mm_topo *t, Mailmesh__Bridgehead **bh,
                             uint32_t first, uint32_t n)
{
	json_begin_arr(j);
	for (uint32_t i = 0; i < n; i++) {
		json_begin_obj(j);
		json_key(j, "server");
		json_str(j, bh[i]->server);
		json_key(j, "virtual_server");
		json_str(j, bh[i]->virtual_server);
		json_key(j, "address");
		json_str(j, bh[i]->address);
		json_key(j, "state");
		json_str(j, state(t->bhs[first + i].up));
		json_end_obj(j);
	}
	json_end_arr(j);
}

static void table_json(FILE *out, const struct mm_table *tb, const struct mm_topo *t,
                       const char *org, const char *server, const char *role, const char *digest)
{
	struct json j;
	json_init(&j, out);
	json_begin_obj(&j);
	json_key(&j, "server");
	json_str(&j, server);
	json_key(&j, "role");
	json_str(&j, role);
	json_key(&j, "organization");
	json_str(&j, org);
	json_key(&j, "digest");
	json_str(&j, digest);
	json_key(&j, "groups");
	json_begin_arr(&j);
	uint32_t si = 0;
	for (size_t g = 0; g < tb->n; g++) {
		const mm_entry *e = tb->entries[g];
		json_begin_obj(&j);
		json_key(&j, "name");
		json_str(&j, e->name);
		json_key(&j, "master");
		json_str(&j, e->master[0] ? e->master : NULL);
		json_key(&j, "master_candidates");
		json_begin_arr(&j);
		for (size_t m = 0; m < e->n_masters; m++) {
			json_begin_obj(&j);
			json_key(&j, "name");
			json_str(&j, e->masters[m]->name);
			json_key(&j, "routing_address");
			json_str(&j, e->masters[m]->routing_address);
			json_key(&j, "priority");
			json_u64(&j, e->masters[m]->priority);
			json_key(&j, "state");
			json_str(&j, state(!e->masters[m]->down));
			json_end_obj(&j);
		}
		json_end_arr(&j);
		json_key(&j, "versions");
		json_begin_obj(&j);
		json_key(&j, "incarnation");
		json_u64(&j, e->version ? e->version->incarnation : 0);
		json_key(&j, "major");
		json_u64(&j, e->version ? e->version->major : 0);
		json_key(&j, "minor");
		json_u64(&j, e->version ? e->version->minor : 0);
		json_key(&j, "user");
		json_u64(&j, e->version ? e->version->user : 0);
		json_end_obj(&j);
		json_key(&j, "servers");
		json_begin_arr(&j);
		for (size_t s = 0; s < e->n_servers; s++, si++) {
			const Mailmesh__Server *sv = e->servers[s];
			json_begin_obj(&j);
			json_key(&j, "name");
			json_str(&j, sv->name);
			json_key(&j, "state");
			json_str(&j, state(t->servers[si].up));
			json_key(&j, "routing_address");
			json_str(&j, sv->routing_address);
			json_key(&j, "fqdn");
			json_str(&j, sv->fqdn[0] ? sv->fqdn : NULL);
			json_key(&j, "virtual_servers");
			json_begin_arr(&j);
			for (size_t v = 0; v < sv->n_virtual_servers; v++) {
				json_begin_obj(&j);
				json_key(&j, "name");
				json_str(&j, sv->virtual_servers[v]->name);
				json_key(&j, "address");
				json_str(&j, sv->virtual_servers[v]->address);
				json_end_obj(&j);
			}
			json_end_arr(&j);
			json_end_obj(&j);
		}
		json_end_arr(&j);
		json_key(&j, "connectors");
		json_begin_arr(&j);
		const struct mm_topo_group *tg = &t->groups[g];
		for (uint32_t ci = tg->conn_first; ci < tg->conn_first + tg->nconn; ci++) {
			const struct mm_topo_conn *tc = &t->conns[ci];
			const Mailmesh__Connector *cn = tc->c;
			json_begin_obj(&j);
			json_key(&j, "name");
			json_str(&j, cn->name);
			json_key(&j, "type");
			json_str(&j, type_name(cn));
			json_key(&j, "state");
			json_str(&j, state(tc->up));
			json_key(&j, "cost");
			json_u64(&j, cn->cost);
			json_key(&j, "target_group");
			json_str(&j, cn->target_group[0] ? cn->target_group : NULL);
			json_key(&j, "address_spaces");
			json_begin_arr(&j);
			for (size_t a = 0; a < cn->n_address_spaces; a++) {
				json_begin_obj(&j);
				json_key(&j, "type");
				json_str(&j, cn->address_spaces[a]->type);
				json_key(&j, "pattern");
				json_str(&j, cn->address_spaces[a]->pattern);
				json_key(&j, "cost");
				json_u64(&j, cn->address_spaces[a]->cost);
				json_end_obj(&j);
			}
			json_end_arr(&j);
			json_key(&j, "local_bridgeheads");
			json_bridgeheads(&j, t, cn->local_bridgeheads, tc->local_first, tc->nlocal);
			json_key(&j, "remote_bridgeheads");
			json_bridgeheads(&j, t, cn->remote_bridgeheads, tc->remote_first,
			                 tc->nremote);
			json_key(&j, "smart_host");
			json_str(&j, cn->smart_host[0] ? cn->smart_host : NULL);
			json_key(&j, "scope");
			json_str(&j, scope_name(cn));
			json_key(&j, "tls_policy");
			json_str(&j, tls_name(cn));
			json_end_obj(&j);
		}
		json_end_arr(&j);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	fputc('\n', out);
}

static void text_bridgeheads(FILE *out, const struct mm_topo *t, const char *label,
                             Mailmesh__Bridgehead **bh, uint32_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		fprintf(out, "        %-7s %s/%s  %s  %s\n", i == 0 ? label : "", bh[i]->server,
		        bh[i]->virtual_server, bh[i]->address, state(t->bhs[first + i].up));
}

static void table_text(FILE *out, const struct mm_table *tb, const struct mm_topo *t,
                       const char *org, const char *digest)
{
	fprintf(out, "Organization %s: %zu routing groups\nDigest %s\n", org, tb->n, digest);
	uint32_t si = 0;
	for (size_t g = 0; g < tb->n; g++) {
		const mm_entry *e = tb->entries[g];
		const Mailmesh__Version *v = e->version;
		fprintf(out, "\nRouting group %s\n", e->name);
		fprintf(out, "  Master     %s\n", e->master[0] ? e->master : "(none up)");
		fprintf(out,
		        "  Version    incarnation %" PRIu64 ", major %" PRIu64 ", minor %" PRIu64
		        ", user %" PRIu64 "\n",
		        v ? v->incarnation : 0, v ? v->major : 0, v ? v->minor : 0,
		        v ? v->user : 0);
		fprintf(out, "  Master candidates\n");
		for (size_t m = 0; m < e->n_masters; m++)
			fprintf(out, "    %-16s %-21s priority %-5u %s\n", e->masters[m]->name,
			        e->masters[m]->routing_address, e->masters[m]->priority,
			        state(!e->masters[m]->down));
		fprintf(out, "  Servers\n");
		for (size_t s = 0; s < e->n_servers; s++, si++) {
			const Mailmesh__Server *sv = e->servers[s];
			fprintf(out, "    %-16s %-4s %-21s", sv->name, state(t->servers[si].up),
			        sv->routing_address);
			for (size_t vi = 0; vi < sv->n_virtual_servers; vi++)
				fprintf(out, " %s=%s", sv->virtual_servers[vi]->name,
				        sv->virtual_servers[vi]->address);
			fprintf(out, "\n");
		}
		fprintf(out, "  Connectors\n");
		const struct mm_topo_group *tg = &t->groups[g];
		for (uint32_t ci = tg->conn_first; ci < tg->conn_first + tg->nconn; ci++) {
			const struct mm_topo_conn *tc = &t->conns[ci];
			const Mailmesh__Connector *cn = tc->c;
			fprintf(out, "    %-16s %-4s %-13s cost %-3u", cn->name, state(tc->up),
			        type_name(cn), cn->cost);
			if (tc->smtp)
				fprintf(out, " scope %s, tls %s, %s%s\n", scope_name(cn),
				        tls_name(cn), cn->smart_host[0] ? "smart host " : "DNS MX",
				        cn->smart_host);
			else
				fprintf(out, " -> %s\n", cn->target_group);
			for (size_t a = 0; a < cn->n_address_spaces; a++)
				fprintf(out, "        %-7s %s:%s cost %u\n", a == 0 ? "spaces" : "",
				        cn->address_spaces[a]->type, cn->address_spaces[a]->pattern,
				        cn->address_spaces[a]->cost);
			text_bridgeheads(out, t, "local", cn->local_bridgeheads, tc->local_first,
			                 tc->nlocal);
			text_bridgeheads(out, t, "remote", cn->remote_bridgeheads, tc->remote_first,
			                 tc->nremote);
		}
	}
}

/* --- route ---------------------------------------------------------------- */

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

/* --- the answers ------------------------------------------------------------ */

static int error(FILE *out, bool text, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int error(FILE *out, bool text, int status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (text) {
		fprintf(out, "error: %s\n", msg);
		return status;
	}
	struct json j;
	json_init(&j, out);
	json_begin_obj(&j);
	json_key(&j, "error");
	json_str(&j, msg);
	json_end_obj(&j);
	fputc('\n', out);
	return status;
}

static int answer_route(struct node *n, FILE *out, bool text, const char *rcpt)
{
	char domain[256];
	const struct mm_recipient *who = NULL;
	struct mm_route rt;
	switch (mm_directory_categorize(&n->dir, rcpt, &who, domain)) {
	case MM_CAT_BAD:
		return error(out, text, EX_USAGE, "route: %s is not local@domain (501 5.1.3)",
		             rcpt);
	case MM_CAT_UNKNOWN:
		return error(out, text, EX_NOUSER,
		             "route: no recipient %s in authoritative domain %s (550 5.1.1)", rcpt,
		             domain);
	case MM_CAT_HOME: mm_route_to_server(&n->router, who->home, rcpt, &rt); break;
	case MM_CAT_EXTERNAL: mm_route_to_domain(&n->router, domain, rcpt, &rt); break;
	}
	if (text)
		route_text(out, &n->router, rcpt, n->self, domain, &rt);
	else
		route_json(out, &n->router, rcpt, n->self, domain, &rt);
	return EX_OK;
}

int query_answer(struct node *n, const char *command, size_t nargs, const char *const *args,
                 bool may_change, FILE *out)
{
	if (nargs < 1 || (strcmp(args[0], "json") != 0 && strcmp(args[0], "text") != 0))
		return error(out, false, EX_USAGE,
		             "args[0] is the output format, \"json\" or \"text\"");
	bool text = strcmp(args[0], "text") == 0;
	const char *verb = command ? command : "";
	bool queues = strcmp(verb, "queues") == 0;
	if (strcmp(verb, "table") == 0 || queues) {
		if (nargs != 1)
			return error(out, text, EX_USAGE, "%s takes no operand", verb);
		if (queues)
			return control_render(n, text, "queues", "", out);
		const struct mm_table *t = routing_view(n);
		uint8_t d[MM_DIGEST_LEN];
		char hex[2 * MM_DIGEST_LEN + 1];
		mm_table_digest(t, d);
		mm_digest_hex(d, hex);
		if (text)
			table_text(out, t, &n->router.topo, n->dir.org, hex);
		else
			table_json(out, t, &n->router.topo, n->dir.org, n->self, "node", hex);
		return EX_OK;
	}
	bool change =
	    strcmp(verb, "retry") == 0 || strcmp(verb, "freeze") == 0 || strcmp(verb, "thaw") == 0;
	bool route = strcmp(verb, "route") == 0;
	if (route || strcmp(verb, "queue") == 0 || change) {
		if (nargs != 2)
			return error(out, text, EX_USAGE, "%s takes one operand (%s)", verb,
			             route ? "RECIPIENT" : "QUEUE");
		if (route)
			return answer_route(n, out, text, args[1]);
		if (change && !may_change)
			return error(out, text, EX_NOPERM, "%s needs an admin certificate", verb);
		return control_render(n, text, verb, args[1], out);
	}
	return error(out, text, EX_USAGE,
	             "unknown command (table, route, queues, queue, retry, freeze, thaw)");
}

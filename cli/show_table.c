/* meshctl table: the link-state table as WinRoute showed it, every group
 * with its master, versions, servers and connectors with their states. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "meshctl.h"

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

static void table_json(struct ctl *c, const char *digest)
{
	const struct mm_table *tb = &c->dir.table;
	const struct mm_topo *t = &c->topo;
	struct json j;
	json_init(&j, stdout);
	json_begin_obj(&j);
	json_key(&j, "server");
	json_null(&j);
	/* DESIGN §7: who answered; offline, the directory did */
	json_key(&j, "role");
	json_str(&j, "offline");
	json_key(&j, "organization");
	json_str(&j, c->dir.org);
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
	fputc('\n', stdout);
}

static void text_bridgeheads(const struct mm_topo *t, const char *label, Mailmesh__Bridgehead **bh,
                             uint32_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		printf("        %-7s %s/%s  %s  %s\n", i == 0 ? label : "", bh[i]->server,
		       bh[i]->virtual_server, bh[i]->address, state(t->bhs[first + i].up));
}

static void table_text(struct ctl *c, const char *digest)
{
	const struct mm_table *tb = &c->dir.table;
	const struct mm_topo *t = &c->topo;
	printf("Organization %s: %zu routing groups\nDigest %s\n", c->dir.org, tb->n, digest);
	uint32_t si = 0;
	for (size_t g = 0; g < tb->n; g++) {
		const mm_entry *e = tb->entries[g];
		const Mailmesh__Version *v = e->version;
		printf("\nRouting group %s\n", e->name);
		printf("  Master     %s\n", e->master[0] ? e->master : "(none up)");
		printf("  Version    incarnation %" PRIu64 ", major %" PRIu64 ", minor %" PRIu64
		       ", user %" PRIu64 "\n",
		       v ? v->incarnation : 0, v ? v->major : 0, v ? v->minor : 0, v ? v->user : 0);
		printf("  Master candidates\n");
		for (size_t m = 0; m < e->n_masters; m++)
			printf("    %-16s %-21s priority %-5u %s\n", e->masters[m]->name,
			       e->masters[m]->routing_address, e->masters[m]->priority,
			       state(!e->masters[m]->down));
		printf("  Servers\n");
		for (size_t s = 0; s < e->n_servers; s++, si++) {
			const Mailmesh__Server *sv = e->servers[s];
			printf("    %-16s %-4s %-21s", sv->name, state(t->servers[si].up),
			       sv->routing_address);
			for (size_t vi = 0; vi < sv->n_virtual_servers; vi++)
				printf(" %s=%s", sv->virtual_servers[vi]->name,
				       sv->virtual_servers[vi]->address);
			printf("\n");
		}
		printf("  Connectors\n");
		const struct mm_topo_group *tg = &t->groups[g];
		for (uint32_t ci = tg->conn_first; ci < tg->conn_first + tg->nconn; ci++) {
			const struct mm_topo_conn *tc = &t->conns[ci];
			const Mailmesh__Connector *cn = tc->c;
			printf("    %-16s %-4s %-13s cost %-3u", cn->name, state(tc->up),
			       type_name(cn), cn->cost);
			if (tc->smtp)
				printf(" scope %s, tls %s, %s%s\n", scope_name(cn), tls_name(cn),
				       cn->smart_host[0] ? "smart host " : "DNS MX",
				       cn->smart_host);
			else
				printf(" -> %s\n", cn->target_group);
			for (size_t a = 0; a < cn->n_address_spaces; a++)
				printf("        %-7s %s:%s cost %u\n", a == 0 ? "spaces" : "",
				       cn->address_spaces[a]->type, cn->address_spaces[a]->pattern,
				       cn->address_spaces[a]->cost);
			text_bridgeheads(t, "local", cn->local_bridgeheads, tc->local_first,
			                 tc->nlocal);
			text_bridgeheads(t, "remote", cn->remote_bridgeheads, tc->remote_first,
			                 tc->nremote);
		}
	}
}

int ctl_table(struct ctl *c)
{
	uint8_t d[MM_DIGEST_LEN];
	char hex[2 * MM_DIGEST_LEN + 1];
	mm_table_digest(&c->dir.table, d);
	mm_digest_hex(d, hex);
	if (c->json)
		table_json(c, hex);
	else
		table_text(c, hex);
	return EX_OK;
}

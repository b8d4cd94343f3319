/* The link-state table as WinRoute showed it (table_view.h): every group
 * with its master, versions, servers and connectors with their states, in
 * JSON or text, written into memory so that a daemon can send it. */
#include "table_view.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entrysig.h"
#include "json.h"
#include "topo.h"

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

static void table_json(FILE *f, const struct mm_table *tb, const struct mm_topo *t, const char *org,
                       const char *server, const char *role, const char *digest)
{
	struct json j;
	json_init(&j, f);
	json_begin_obj(&j);
	/* DESIGN §7: who answered; offline (server null), the directory did */
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
		/* who signed it: the name its signer's certificate gives (the
		 * receivers checked it); null for a directory's baseline */
		char signer[MM_CERT_NAME_MAX + 1];
		json_key(&j, "signed_by");
		json_str(&j, mm_entry_signer_name(e, signer) ? signer : NULL);
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
	fputc('\n', f);
}

static void text_bridgeheads(FILE *f, const struct mm_topo *t, const char *label,
                             Mailmesh__Bridgehead **bh, uint32_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, "        %-7s %s/%s  %s  %s\n", i == 0 ? label : "", bh[i]->server,
		        bh[i]->virtual_server, bh[i]->address, state(t->bhs[first + i].up));
}

static void table_text(FILE *f, const struct mm_table *tb, const struct mm_topo *t, const char *org,
                       const char *server, const char *role, const char *digest)
{
	if (server)
		fprintf(f, "Answered by %s (%s)\n", server, role);
	fprintf(f, "Organization %s: %zu routing groups\nDigest %s\n", org, tb->n, digest);
	uint32_t si = 0;
	for (size_t g = 0; g < tb->n; g++) {
		const mm_entry *e = tb->entries[g];
		const Mailmesh__Version *v = e->version;
		fprintf(f, "\nRouting group %s\n", e->name);
		fprintf(f, "  Master     %s\n", e->master[0] ? e->master : "(none up)");
		char signer[MM_CERT_NAME_MAX + 1];
		fprintf(f, "  Signed by  %s\n",
		        mm_entry_signer_name(e, signer) ? signer : "(nobody: the directory's)");
		fprintf(f,
		        "  Version    incarnation %" PRIu64 ", major %" PRIu64 ", minor %" PRIu64
		        ", user %" PRIu64 "\n",
		        v ? v->incarnation : 0, v ? v->major : 0, v ? v->minor : 0,
		        v ? v->user : 0);
		fprintf(f, "  Master candidates\n");
		for (size_t m = 0; m < e->n_masters; m++)
			fprintf(f, "    %-16s %-21s priority %-5u %s\n", e->masters[m]->name,
			        e->masters[m]->routing_address, e->masters[m]->priority,
			        state(!e->masters[m]->down));
		fprintf(f, "  Servers\n");
		for (size_t s = 0; s < e->n_servers; s++, si++) {
			const Mailmesh__Server *sv = e->servers[s];
			fprintf(f, "    %-16s %-4s %-21s", sv->name, state(t->servers[si].up),
			        sv->routing_address);
			for (size_t vi = 0; vi < sv->n_virtual_servers; vi++)
				fprintf(f, " %s=%s", sv->virtual_servers[vi]->name,
				        sv->virtual_servers[vi]->address);
			fputc('\n', f);
		}
		fprintf(f, "  Connectors\n");
		const struct mm_topo_group *tg = &t->groups[g];
		for (uint32_t ci = tg->conn_first; ci < tg->conn_first + tg->nconn; ci++) {
			const struct mm_topo_conn *tc = &t->conns[ci];
			const Mailmesh__Connector *cn = tc->c;
			fprintf(f, "    %-16s %-4s %-13s cost %-3u", cn->name, state(tc->up),
			        type_name(cn), cn->cost);
			if (tc->smtp)
				fprintf(f, " scope %s, tls %s, %s%s\n", scope_name(cn),
				        tls_name(cn), cn->smart_host[0] ? "smart host " : "DNS MX",
				        cn->smart_host);
			else
				fprintf(f, " -> %s\n", cn->target_group);
			for (size_t a = 0; a < cn->n_address_spaces; a++)
				fprintf(f, "        %-7s %s:%s cost %u\n", a == 0 ? "spaces" : "",
				        cn->address_spaces[a]->type, cn->address_spaces[a]->pattern,
				        cn->address_spaces[a]->cost);
			text_bridgeheads(f, t, "local", cn->local_bridgeheads, tc->local_first,
			                 tc->nlocal);
			text_bridgeheads(f, t, "remote", cn->remote_bridgeheads, tc->remote_first,
			                 tc->nremote);
		}
	}
}

char *mm_table_render(const struct mm_table *t, const char *org, const char *server,
                      const char *role, bool json)
{
	uint8_t d[MM_DIGEST_LEN];
	char hex[2 * MM_DIGEST_LEN + 1];
	mm_table_digest(t, d);
	mm_digest_hex(d, hex);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (f == NULL)
		return NULL;
	/* the states shown are the effective ones (a connector whose
	 * bridgeheads are all down is down), as the routing sees them */
	struct mm_topo topo;
	mm_topo_compile(&topo, t);
	if (org == NULL)
		org = "";
	if (role == NULL)
		role = server ? "node" : "offline";
	if (json)
		table_json(f, t, &topo, org, server, role, hex);
	else
		table_text(f, t, &topo, org, server, role, hex);
	mm_topo_free(&topo);
	bool bad = ferror(f) != 0;
	if (fclose(f) != 0 || bad) {
		free(out);
		return NULL;
	}
	return out;
}

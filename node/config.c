/* What meshnode takes from the directory, at start and again on SIGHUP
 * (DESIGN §7a): its virtual servers (bound once: a new bind address needs a
 * restart), their limits and relay lists, the organization's addresses
 * (organization servers may relay), the recipients, and the link-state
 * table it routes with (with the routing engine, the directory's entries
 * go under what the masters issued: routing.c). A directory that does not
 * load, or no longer has this server, changes nothing. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "node.h"

static void add_org_address(struct mm_cidr **org, size_t *norg, const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	size_t len = colon ? (size_t)(colon - hostport) : strlen(hostport);
	if (len == 0 || len >= sizeof(host))
		return;
	memcpy(host, hostport, len);
	host[len] = '\0';
	if (host[0] == '[' && host[len - 1] == ']') {
		memmove(host, host + 1, len - 2);
		host[len - 2] = '\0';
	}
	struct mm_cidr c;
	if (!mm_cidr_parse(host, &c))
		return;
	*org = mm_xrealloc(*org, *norg + 1, sizeof(**org));
	(*org)[(*norg)++] = c;
}

static const Mailmesh__Server *find_self(const struct mm_table *t, const char *self)
{
	for (size_t g = 0; g < t->n; g++)
		for (size_t s = 0; s < t->entries[g]->n_servers; s++)
			if (strcmp(t->entries[g]->servers[s]->name, self) == 0)
				return t->entries[g]->servers[s];
	return NULL;
}

/* Limits and relay list of one virtual server from its directory entry. */
static void vserver_apply(struct node *n, struct vserver *vs, const struct mm_vserver_conf *vc)
{
	/* without mmMaxMessageSize the body still has a bound */
	vs->conf.max_size = vc->max_size ? vc->max_size : n->set.max_message_size;
	vs->conf.max_hops = vc->max_hops;
	vs->conf.max_rcpts = (uint32_t)n->set.max_rcpts;
	vs->conf.max_errors = (uint32_t)n->set.max_errors;
	vs->conf.require_tls = vc->require_tls;
	free(vs->relay);
	vs->relay = mm_xcalloc(vc->nrelay, sizeof(*vs->relay));
	vs->nrelay = 0;
	for (size_t k = 0; k < vc->nrelay; k++)
		if (mm_cidr_parse(vc->relay[k], &vs->relay[vs->nrelay]))
			vs->nrelay++;
}

/* Everything that may change while running. Takes dir over on success. */
static bool apply(struct node *n, struct mm_directory *dir)
{
	const struct mm_table *t = &dir->table;
	if (find_self(t, n->self) == NULL) {
		node_log("--server %s: no such server in the directory", n->self);
		return false;
	}
	struct mm_router router;
	if (!mm_router_init(&router, t, n->self)) {
		node_log("server %s is not in the link-state table", n->self);
		return false;
	}
	struct mm_cidr *org = NULL;
	size_t norg = 0;
	for (size_t g = 0; g < t->n; g++)
		for (size_t s = 0; s < t->entries[g]->n_servers; s++) {
			const Mailmesh__Server *sv = t->entries[g]->servers[s];
			add_org_address(&org, &norg, sv->routing_address);
			for (size_t v = 0; v < sv->n_virtual_servers; v++)
				add_org_address(&org, &norg, sv->virtual_servers[v]->address);
		}
	for (size_t i = 0; i < n->nvs; i++) {
		bool found = false;
		for (size_t k = 0; k < dir->nvservers; k++) {
			const struct mm_vserver_conf *vc = &dir->vservers[k];
			if (strcmp(vc->server, n->self) == 0 &&
			    strcmp(vc->name, n->vs[i].name) == 0) {
				if (strcmp(vc->bind, n->vs[i].bind) != 0)
					node_log("virtual server %s: bind %s -> %s needs a restart",
					         vc->name, n->vs[i].bind, vc->bind);
				vserver_apply(n, &n->vs[i], vc);
				found = true;
			}
		}
		if (!found)
			node_log("virtual server %s is gone from the directory; it serves until "
			         "a restart",
			         n->vs[i].name);
	}
	/* with the routing engine the router routes with the member's view,
	 * which takes the directory's entries (routing_reload); without it,
	 * with the directory's table. The router borrows the table's strings:
	 * the old directory goes only after the old router. */
	bool engine = routing_on(n);
	if (engine) {
		mm_router_free(&router);
	} else {
		if (n->configured)
			mm_router_free(&n->router);
		n->router = router;
	}
	n->configured = true;
	mm_directory_free(&n->dir);
	n->dir = *dir;
	*dir = (struct mm_directory){0};
	free(n->org);
	n->org = org;
	n->norg = norg;
	/* every queued job whose next hop changed moves */
	if (engine)
		routing_reload(n);
	else if (n->qm_ready)
		mm_qm_table_changed(&n->qm, &n->dir, &n->router);
	return true;
}

bool node_configure(struct node *n, struct mm_directory *dir)
{
	const Mailmesh__Server *self = find_self(&dir->table, n->self);
	if (self == NULL) {
		node_log("--server %s: no such server in the directory", n->self);
		return false;
	}
	n->fqdn = mm_xstrdup(self->fqdn[0] ? self->fqdn : self->name);
	for (size_t i = 0; i < dir->nvservers; i++) {
		const struct mm_vserver_conf *vc = &dir->vservers[i];
		if (strcmp(vc->server, n->self) != 0)
			continue;
		n->vs = mm_xrealloc(n->vs, n->nvs + 1, sizeof(*n->vs));
		struct vserver *vs = &n->vs[n->nvs++];
		*vs = (struct vserver){.node = n};
		vs->name = mm_xstrdup(vc->name);
		vs->bind = mm_xstrdup(vc->bind);
		vs->fqdn = mm_xstrdup(vc->fqdn[0] ? vc->fqdn : n->fqdn);
		vs->conf.fqdn = vs->fqdn;
	}
	if (n->nvs == 0) {
		node_log("server %s has no virtual server in the directory", n->self);
		return false;
	}
	/* outgoing SMTP leaves from the first virtual server's address */
	int len = sizeof(n->src);
	if (evutil_parse_sockaddr_port(n->vs[0].bind, (struct sockaddr *)&n->src, &len) == 0) {
		n->src_len = len;
		if (n->src.ss_family == AF_INET)
			((struct sockaddr_in *)&n->src)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&n->src)->sin6_port = 0;
	}
	return apply(n, dir);
}

void node_reload(struct node *n)
{
	struct mm_directory dir;
	struct mm_diag diag = {0};
	/* DESIGN §7a: crl.pem again, whatever becomes of the directory */
	if (n->tls_dir && routing_trust_load(n))
		node_log("reload: %s/ca.pem and crl.pem (when there is one) in use", n->tls_dir);
	enum mm_load_status st = mm_directory_load(n->dirspec, &dir, &diag);
	for (size_t i = 0; i < diag.n; i++)
		node_log("reload: %s: %s", diag.items[i].where, diag.items[i].msg);
	mm_diag_free(&diag);
	if (st != MM_LOAD_OK) {
		node_log("reload: the directory did not load; keeping the one in use");
		return;
	}
	if (!apply(n, &dir)) {
		mm_directory_free(&dir);
		node_log("reload: keeping the directory in use");
		return;
	}
	node_log("reload: directory %s applied", n->dirspec);
}

void node_config_free(struct node *n)
{
	for (size_t i = 0; i < n->nvs; i++) {
		free(n->vs[i].relay);
		free(n->vs[i].name);
		free(n->vs[i].bind);
		free(n->vs[i].fqdn);
	}
	free(n->vs);
	free(n->org);
	if (n->configured)
		mm_router_free(&n->router);
	mm_directory_free(&n->dir);
}

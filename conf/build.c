/* From directory entries to the organization (DESIGN §2): classify each entry
 * by object class, place it under its parent by DN, check every attribute,
 * resolve references after everything is read (entries come in any order),
 * and build the table. Every problem is reported with its place; a directory
 * with any problem is refused whole. */
#include <arpa/inet.h>
#include <ctype.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addrspace.h"
#include "alloc.h"
#include "directory.h"
#include "topo.h"

enum kind { K_OTHER, K_ORG, K_GROUP, K_MASTER, K_SERVER, K_VS, K_CONN, K_POLICY, K_RCPT };

static const char *const kind_name[] = {"entry",     "organization",     "routing group",
                                        "master",    "server",           "virtual server",
                                        "connector", "recipient policy", "recipient"};

struct obj {
	const struct mm_dirent *e;
	enum kind kind;
	char *ndn, *parent;
	const char *name;    /* cn */
	uint32_t parent_obj; /* MM_NONE when the parent is not an entry */
	void *built;         /* the table object made from it */
	uint32_t group;      /* owning group object (servers, vs, connectors, masters) */
};

struct builder {
	size_t n;
	struct obj *o;
	struct mm_strmap by_dn;
	struct mm_diag *diag;
	struct mm_directory *dir;
};

/* --- helpers ------------------------------------------------------------- */

static char *normalize_dn(const char *dn)
{
	char *out = NULL;
	if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAP, &out, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		return NULL;
	char *copy = mm_xstrdup(out);
	ldap_memfree(out);
	for (char *p = copy; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return copy;
}

static char *parent_dn(const char *ndn)
{
	for (const char *p = ndn; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == ',')
			return mm_xstrdup(p + 1);
	}
	return mm_xstrdup("");
}

static bool has_class(const struct mm_dirent *e, const char *cls)
{
	for (size_t i = 0; i < e->nattrs; i++)
		if (strcasecmp(e->attrs[i].name, "objectClass") == 0 &&
		    strcasecmp(e->attrs[i].value, cls) == 0)
			return true;
	return false;
}

/* The one value of a single-valued attribute; NULL when absent (an error
 * when required) or repeated (always an error). */
static const struct mm_attr *one(struct builder *b, const struct obj *o, const char *name,
                                 bool required)
{
	const struct mm_attr *found = NULL;
	for (size_t i = 0; i < o->e->nattrs; i++) {
		const struct mm_attr *a = &o->e->attrs[i];
		if (strcasecmp(a->name, name) != 0)
			continue;
		if (found) {
			mm_diag_add(b->diag, a->where, "%s %s: %s given twice", kind_name[o->kind],
			            o->name ? o->name : o->e->dn, name);
			return NULL;
		}
		found = a;
	}
	if (found == NULL && required)
		mm_diag_add(b->diag, o->e->where, "%s %s: %s is missing", kind_name[o->kind],
		            o->name ? o->name : o->e->dn, name);
	return found;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s) || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return v >= min && v <= max;
}

/* "ip:port" or "[ipv6]:port"; a bare IP takes default_port (0: required). */
static bool valid_ip_port(const char *s, unsigned default_port)
{
	char host[64];
	const char *port = NULL;
	unsigned char buf[16];
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || (size_t)(end - s - 1) >= sizeof(host))
			return false;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		if (inet_pton(AF_INET6, host, buf) != 1 && inet_pton(AF_INET, host, buf) != 1)
			return false;
		port = end[1] == ':' ? end + 2 : (end[1] ? "" : NULL);
	} else {
		const char *colon = strchr(s, ':');
		size_t hl = colon ? (size_t)(colon - s) : strlen(s);
		if (hl >= sizeof(host))
			return false;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET, host, buf) != 1)
			return false;
		port = colon ? colon + 1 : NULL;
	}
	uint64_t p;
	if (port == NULL)
		return default_port != 0;
	return parse_u64(port, 1, 65535, &p);
}

/* A smart host: "[ip]:port", "[ip]", "host" or "host:port". */
static bool valid_smart_host(const char *s)
{
	if (*s == '[')
		return valid_ip_port(s, 25);
	const char *colon = strrchr(s, ':');
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	uint64_t p;
	return mm_domain_valid(s, hl) && (colon == NULL || parse_u64(colon + 1, 1, 65535, &p));
}

static bool valid_cidr(const char *s)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	unsigned char buf[16];
	uint64_t bits;
	if (hl >= sizeof(host))
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	bool v4 = inet_pton(AF_INET, host, buf) == 1;
	if (!v4 && inet_pton(AF_INET6, host, buf) != 1)
		return false;
	return slash == NULL || parse_u64(slash + 1, 0, v4 ? 32 : 128, &bits);
}

static char *dup_or_empty(const char *s)
{
	return s && *s ? mm_xstrdup(s) : (char *)protobuf_c_empty_string;
}

#define PUSH(arr, n, item)                                           \
	do {                                                         \
		(arr) = mm_xrealloc((arr), (n) + 1, sizeof(*(arr))); \
		(arr)[(n)++] = (item);                               \
	} while (0)

/* The object a DN-valued attribute names, if it is of the wanted kind. */
static struct obj *ref(struct builder *b, const struct obj *from, const struct mm_attr *a,
                       enum kind want)
{
	char *ndn = normalize_dn(a->value);
	uint32_t i;
	bool found = ndn && mm_strmap_get(&b->by_dn, ndn, &i);
	free(ndn);
	if (!found) {
		mm_diag_add(b->diag, a->where, "%s %s: %s %s names no entry", kind_name[from->kind],
		            from->name, a->name, a->value);
		return NULL;
	}
	if (b->o[i].kind != want) {
		mm_diag_add(b->diag, a->where, "%s %s: %s %s is a %s, not a %s",
		            kind_name[from->kind], from->name, a->name, a->value,
		            kind_name[b->o[i].kind], kind_name[want]);
		return NULL;
	}
	/* an entry without its cn was reported already and built nothing */
	return b->o[i].name ? &b->o[i] : NULL;
}

static bool parent_is(struct builder *b, struct obj *o, enum kind want)
{
	if (o->parent_obj != MM_NONE && b->o[o->parent_obj].kind == want)
		return true;
	mm_diag_add(b->diag, o->e->where, "%s %s: must sit directly under a %s entry",
	            kind_name[o->kind], o->name, kind_name[want]);
	return false;
}

/* --- pass 1: classify ---------------------------------------------------- */

static void classify(struct builder *b, const struct mm_dirents *entries)
{
	static const struct {
		const char *cls;
		enum kind kind;
	} classes[] = {{"mmOrganization", K_ORG},       {"mmRoutingGroup", K_GROUP},
	               {"mmMaster", K_MASTER},          {"mmServer", K_SERVER},
	               {"mmVirtualServer", K_VS},       {"mmConnector", K_CONN},
	               {"mmRecipientPolicy", K_POLICY}, {"mmRecipient", K_RCPT}};

	b->o = mm_xcalloc(entries->n, sizeof(*b->o));
	for (size_t i = 0; i < entries->n; i++) {
		const struct mm_dirent *e = &entries->e[i];
		struct obj *o = &b->o[b->n];
		*o = (struct obj){.e = e, .parent_obj = MM_NONE, .group = MM_NONE};
		o->ndn = normalize_dn(e->dn);
		if (o->ndn == NULL) {
			mm_diag_add(b->diag, e->where, "dn %s does not parse", e->dn);
			continue;
		}
		uint32_t prev;
		if (mm_strmap_get(&b->by_dn, o->ndn, &prev)) {
			mm_diag_add(b->diag, e->where, "dn %s appears twice (first at %s)", e->dn,
			            b->o[prev].e->where);
			free(o->ndn);
			continue;
		}
		for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++) {
			if (!has_class(e, classes[c].cls))
				continue;
			if (o->kind != K_OTHER)
				mm_diag_add(b->diag, e->where, "entry %s is both a %s and a %s",
				            e->dn, kind_name[o->kind], kind_name[classes[c].kind]);
			o->kind = classes[c].kind;
		}
		o->parent = parent_dn(o->ndn);
		mm_strmap_put(&b->by_dn, o->ndn, (uint32_t)b->n);
		b->n++;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct obj *o = &b->o[i];
		uint32_t p;
		if (mm_strmap_get(&b->by_dn, o->parent, &p))
			o->parent_obj = p;
		if (o->kind == K_ORG || o->kind == K_RCPT || o->kind == K_OTHER)
			continue;
		const struct mm_attr *cn = one(b, o, "cn", true);
		o->name = cn ? cn->value : NULL;
		if (o->name && o->kind != K_VS && o->kind != K_POLICY) {
			/* names are unique per kind across the organization */
			for (size_t j = 0; j < i; j++)
				if (b->o[j].kind == o->kind && b->o[j].name &&
				    strcmp(b->o[j].name, o->name) == 0)
					mm_diag_add(b->diag, cn->where,
					            "two %ss named %s (the other at %s)",
					            kind_name[o->kind], o->name, b->o[j].e->where);
		}
	}
}

/* --- pass 2: objects ----------------------------------------------------- */

static void build_group(struct builder *b, struct obj *o)
{
	mm_entry *e = mm_xmalloc(sizeof(*e));
	mailmesh__group_entry__init(e);
	e->name = mm_xstrdup(o->name);
	e->version = mm_xmalloc(sizeof(*e->version));
	mailmesh__version__init(e->version);
	e->version->major = 1;
	o->built = e;
	parent_is(b, o, K_ORG);
}

static mm_entry *owner_group(struct builder *b, struct obj *o, enum kind parent_kind)
{
	if (!parent_is(b, o, parent_kind))
		return NULL;
	struct obj *p = &b->o[o->parent_obj];
	if (parent_kind == K_SERVER)
		o->group = p->group;
	else
		o->group = o->parent_obj;
	return o->group == MM_NONE ? NULL : b->o[o->group].built;
}

static void build_master(struct builder *b, struct obj *o)
{
	mm_entry *g = owner_group(b, o, K_GROUP);
	const struct mm_attr *addr = one(b, o, "mmRoutingAddress", true);
	const struct mm_attr *prio = one(b, o, "mmPriority", false);
	uint64_t p = 0;
	if (addr && !valid_ip_port(addr->value, 691))
		mm_diag_add(b->diag, addr->where, "master %s: mmRoutingAddress %s is not ip[:port]",
		            o->name, addr->value);
	if (prio && !parse_u64(prio->value, 0, 1000000, &p))
		mm_diag_add(b->diag, prio->where,
		            "master %s: mmPriority %s is not a number in 0..1000000", o->name,
		            prio->value);
	if (g == NULL || addr == NULL)
		return;
	Mailmesh__MasterCandidate *m = mm_xmalloc(sizeof(*m));
	mailmesh__master_candidate__init(m);
	m->name = mm_xstrdup(o->name);
	m->routing_address = mm_xstrdup(addr->value);
	m->priority = (uint32_t)p;
	PUSH(g->masters, g->n_masters, m);
}

static void build_server(struct builder *b, struct obj *o)
{
	mm_entry *g = owner_group(b, o, K_GROUP);
	const struct mm_attr *addr = one(b, o, "mmRoutingAddress", true);
	const struct mm_attr *fqdn = one(b, o, "mmFqdn", false);
	if (addr && !valid_ip_port(addr->value, 691))
		mm_diag_add(b->diag, addr->where, "server %s: mmRoutingAddress %s is not ip[:port]",
		            o->name, addr->value);
	if (fqdn && !mm_domain_valid(fqdn->value, strlen(fqdn->value)))
		mm_diag_add(b->diag, fqdn->where, "server %s: mmFqdn %s is not a domain name",
		            o->name, fqdn->value);
	if (g == NULL || addr == NULL)
		return;
	Mailmesh__Server *s = mm_xmalloc(sizeof(*s));
	mailmesh__server__init(s);
	s->name = mm_xstrdup(o->name);
	s->fqdn = dup_or_empty(fqdn ? fqdn->value : NULL);
	s->routing_address = mm_xstrdup(addr->value);
	PUSH(g->servers, g->n_servers, s);
	o->built = s;
}

static void build_vs(struct builder *b, struct obj *o)
{
	mm_entry *g = owner_group(b, o, K_SERVER);
	const struct mm_attr *bind = one(b, o, "mmBind", true);
	const struct mm_attr *fqdn = one(b, o, "mmFqdn", false);
	const struct mm_attr *hops = one(b, o, "mmMaxHopCount", false);
	const struct mm_attr *size = one(b, o, "mmMaxMessageSize", false);
	const struct mm_attr *tls = one(b, o, "mmRequireTls", false);
	struct mm_vserver_conf vc = {.max_hops = 15};
	uint64_t v;
	if (bind && !valid_ip_port(bind->value, 0))
		mm_diag_add(b->diag, bind->where, "virtual server %s: mmBind %s is not ip:port",
		            o->name, bind->value);
	if (fqdn && !mm_domain_valid(fqdn->value, strlen(fqdn->value)))
		mm_diag_add(b->diag, fqdn->where,
		            "virtual server %s: mmFqdn %s is not a domain name", o->name,
		            fqdn->value);
	if (hops && !parse_u64(hops->value, 1, 255, &v))
		mm_diag_add(b->diag, hops->where,
		            "virtual server %s: mmMaxHopCount %s is outside 1..255", o->name,
		            hops->value);
	else if (hops)
		vc.max_hops = (uint32_t)v;
	if (size && !parse_u64(size->value, 1, UINT64_MAX / 2, &vc.max_size))
		mm_diag_add(b->diag, size->where,
		            "virtual server %s: mmMaxMessageSize %s is not a size", o->name,
		            size->value);
	if (tls && strcmp(tls->value, "TRUE") != 0 && strcmp(tls->value, "FALSE") != 0)
		mm_diag_add(b->diag, tls->where, "virtual server %s: mmRequireTls is TRUE or FALSE",
		            o->name);
	vc.require_tls = tls && strcmp(tls->value, "TRUE") == 0;
	for (size_t i = 0; i < o->e->nattrs; i++) {
		const struct mm_attr *a = &o->e->attrs[i];
		if (strcasecmp(a->name, "mmRelayAllow") != 0)
			continue;
		if (!valid_cidr(a->value))
			mm_diag_add(b->diag, a->where,
			            "virtual server %s: mmRelayAllow %s is not ip[/bits]", o->name,
			            a->value);
		else
			PUSH(vc.relay, vc.nrelay, mm_xstrdup(a->value));
	}
	Mailmesh__Server *s = o->parent_obj != MM_NONE ? b->o[o->parent_obj].built : NULL;
	if (g == NULL || s == NULL || bind == NULL) {
		for (size_t i = 0; i < vc.nrelay; i++)
			free(vc.relay[i]);
		free(vc.relay);
		return;
	}
	Mailmesh__VirtualServer *vs = mm_xmalloc(sizeof(*vs));
	mailmesh__virtual_server__init(vs);
	vs->name = mm_xstrdup(o->name);
	vs->address = mm_xstrdup(bind->value);
	vs->fqdn = dup_or_empty(fqdn ? fqdn->value : s->fqdn);
	PUSH(s->virtual_servers, s->n_virtual_servers, vs);
	o->built = vs;
	vc.server = mm_xstrdup(s->name);
	vc.name = mm_xstrdup(vs->name);
	vc.bind = mm_xstrdup(vs->address);
	vc.fqdn = mm_xstrdup(vs->fqdn);
	PUSH(b->dir->vservers, b->dir->nvservers, vc);
}

static void add_bridgeheads(struct builder *b, struct obj *o, const char *attr, uint32_t group,
                            Mailmesh__Bridgehead ***arr, size_t *n)
{
	for (size_t i = 0; i < o->e->nattrs; i++) {
		const struct mm_attr *a = &o->e->attrs[i];
		if (strcasecmp(a->name, attr) != 0)
			continue;
		struct obj *vso = ref(b, o, a, K_VS);
		if (vso == NULL || vso->built == NULL)
			continue;
		if (group != MM_NONE && vso->group != group) {
			mm_diag_add(b->diag, a->where,
			            "connector %s: %s %s is not in routing group %s", o->name, attr,
			            a->value, b->o[group].name);
			continue;
		}
		const Mailmesh__VirtualServer *vs = vso->built;
		Mailmesh__Bridgehead *bh = mm_xmalloc(sizeof(*bh));
		mailmesh__bridgehead__init(bh);
		bh->server = mm_xstrdup(b->o[vso->parent_obj].name);
		bh->virtual_server = mm_xstrdup(vs->name);
		bh->address = mm_xstrdup(vs->address);
		PUSH(*arr, *n, bh);
	}
}

static void build_connector(struct builder *b, struct obj *o)
{
	mm_entry *g = owner_group(b, o, K_GROUP);
	const struct mm_attr *type = one(b, o, "mmConnectorType", true);
	const struct mm_attr *cost = one(b, o, "mmCost", true);
	const struct mm_attr *target = one(b, o, "mmTargetGroup", false);
	const struct mm_attr *smart = one(b, o, "mmSmartHost", false);
	const struct mm_attr *scope = one(b, o, "mmScope", false);
	const struct mm_attr *tls = one(b, o, "mmTlsPolicy", false);
	uint64_t c = 0;
	if (cost && !parse_u64(cost->value, 1, 100, &c))
		mm_diag_add(b->diag, cost->where, "connector %s: mmCost %s is outside 1..100",
		            o->name, cost->value);
	bool smtp = type && strcmp(type->value, "smtp") == 0;
	if (type && !smtp && strcmp(type->value, "routing-group") != 0)
		mm_diag_add(b->diag, type->where,
		            "connector %s: mmConnectorType %s is not routing-group or smtp",
		            o->name, type->value);
	if (g == NULL || type == NULL)
		return;

	Mailmesh__Connector *cn = mm_xmalloc(sizeof(*cn));
	mailmesh__connector__init(cn);
	cn->name = mm_xstrdup(o->name);
	cn->type = smtp ? MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP
	                : MAILMESH__CONNECTOR_TYPE__CONNECTOR_ROUTING_GROUP;
	cn->cost = (uint32_t)c;
	PUSH(g->connectors, g->n_connectors, cn);

	add_bridgeheads(b, o, "mmLocalBridgehead", o->group, &cn->local_bridgeheads,
	                &cn->n_local_bridgeheads);
	bool any_local = false;
	for (size_t i = 0; i < o->e->nattrs; i++)
		any_local |= strcasecmp(o->e->attrs[i].name, "mmLocalBridgehead") == 0;
	if (!any_local)
		mm_diag_add(b->diag, o->e->where, "connector %s: no mmLocalBridgehead", o->name);

	if (!smtp) {
		struct obj *tg = target ? ref(b, o, target, K_GROUP) : NULL;
		if (target == NULL)
			mm_diag_add(b->diag, o->e->where,
			            "connector %s: routing-group connector without mmTargetGroup",
			            o->name);
		else if (tg == &b->o[o->group])
			mm_diag_add(b->diag, target->where,
			            "connector %s: mmTargetGroup is its own group", o->name);
		if (tg) {
			cn->target_group = mm_xstrdup(tg->name);
			add_bridgeheads(b, o, "mmRemoteBridgehead", (uint32_t)(tg - b->o),
			                &cn->remote_bridgeheads, &cn->n_remote_bridgeheads);
		}
		bool any_remote = false;
		for (size_t i = 0; i < o->e->nattrs; i++)
			any_remote |= strcasecmp(o->e->attrs[i].name, "mmRemoteBridgehead") == 0;
		if (!any_remote)
			mm_diag_add(b->diag, o->e->where, "connector %s: no mmRemoteBridgehead",
			            o->name);
	}

	for (size_t i = 0; i < o->e->nattrs; i++) {
		const struct mm_attr *a = &o->e->attrs[i];
		if (strcasecmp(a->name, "mmAddressSpace") != 0)
			continue;
		struct mm_addrspace as;
		const char *why;
		if (!smtp) {
			mm_diag_add(b->diag, a->where,
			            "connector %s: address spaces belong on SMTP connectors",
			            o->name);
			continue;
		}
		if (!mm_addrspace_parse(a->value, &as, &why)) {
			mm_diag_add(b->diag, a->where, "connector %s: mmAddressSpace \"%s\": %s",
			            o->name, a->value, why);
			continue;
		}
		Mailmesh__AddressSpace *sp = mm_xmalloc(sizeof(*sp));
		mailmesh__address_space__init(sp);
		sp->type = mm_xstrdup(as.type);
		sp->pattern = mm_xstrdup(as.pattern);
		sp->cost = as.cost ? as.cost : (uint32_t)c;
		PUSH(cn->address_spaces, cn->n_address_spaces, sp);
	}
	if (smtp && cn->n_address_spaces == 0)
		mm_diag_add(b->diag, o->e->where,
		            "connector %s: SMTP connector without a usable mmAddressSpace",
		            o->name);
	if (smtp && target)
		mm_diag_add(b->diag, target->where,
		            "connector %s: mmTargetGroup is for routing-group connectors", o->name);
	if (smart && !valid_smart_host(smart->value))
		mm_diag_add(b->diag, smart->where,
		            "connector %s: mmSmartHost %s is not [ip]:port or host[:port]", o->name,
		            smart->value);
	else if (smart)
		cn->smart_host = mm_xstrdup(smart->value);
	if (scope && strcmp(scope->value, "routing-group") == 0)
		cn->scope = MAILMESH__SCOPE__SCOPE_ROUTING_GROUP;
	else if (scope && strcmp(scope->value, "organization") != 0)
		mm_diag_add(b->diag, scope->where,
		            "connector %s: mmScope %s is not organization or routing-group",
		            o->name, scope->value);
	if (tls && strcmp(tls->value, "required") == 0)
		cn->tls_policy = MAILMESH__TLS_POLICY__TLS_REQUIRED;
	else if (tls && strcmp(tls->value, "none") == 0)
		cn->tls_policy = MAILMESH__TLS_POLICY__TLS_NONE;
	else if (tls && strcmp(tls->value, "opportunistic") != 0)
		mm_diag_add(b->diag, tls->where,
		            "connector %s: mmTlsPolicy %s is not required, opportunistic or none",
		            o->name, tls->value);
}

static void build_policy(struct builder *b, struct obj *o)
{
	for (size_t i = 0; i < o->e->nattrs; i++) {
		const struct mm_attr *a = &o->e->attrs[i];
		if (strcasecmp(a->name, "mmAuthoritativeDomain") != 0)
			continue;
		if (!mm_domain_valid(a->value, strlen(a->value))) {
			mm_diag_add(b->diag, a->where,
			            "recipient policy %s: %s is not a domain name", o->name,
			            a->value);
			continue;
		}
		char *d = mm_xstrdup(a->value);
		for (char *p = d; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		bool dup = false;
		for (size_t j = 0; j < b->dir->ndomains; j++)
			dup |= strcmp(b->dir->domains[j], d) == 0;
		if (dup)
			free(d);
		else
			PUSH(b->dir->domains, b->dir->ndomains, d);
	}
}

static void build_recipient(struct builder *b, struct obj *o)
{
	o->name = o->e->dn;
	const struct mm_attr *home = one(b, o, "mmHomeServer", true);
	const struct mm_attr *pw = one(b, o, "userPassword", false);
	struct obj *srv = home ? ref(b, o, home, K_SERVER) : NULL;
	bool any = false;
	for (size_t i = 0; i < o->e->nattrs; i++) {
		const struct mm_attr *a = &o->e->attrs[i];
		if (strcasecmp(a->name, "mail") != 0)
			continue;
		any = true;
		char *m = mm_xstrdup(a->value);
		for (char *p = m; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		const char *at = strrchr(m, '@');
		uint32_t prev;
		if (at == NULL || at == m || !mm_domain_valid(at + 1, strlen(at + 1))) {
			mm_diag_add(b->diag, a->where, "recipient %s: mail %s is not local@domain",
			            o->name, a->value);
		} else if (mm_strmap_get(&b->dir->by_mail, m, &prev)) {
			mm_diag_add(b->diag, a->where,
			            "recipient %s: mail %s belongs to another recipient too",
			            o->name, a->value);
		} else if (srv && srv->name) {
			struct mm_recipient r = {m, mm_xstrdup(srv->name),
			                         pw ? mm_xstrdup(pw->value) : NULL,
			                         (uint32_t)(o - b->o)};
			PUSH(b->dir->recipients, b->dir->nrecipients, r);
			mm_strmap_put(&b->dir->by_mail, r.mail,
			              (uint32_t)(b->dir->nrecipients - 1));
			continue;
		}
		free(m);
	}
	if (!any)
		mm_diag_add(b->diag, o->e->where, "recipient %s: no mail attribute", o->name);
}

/* --- pass 3: whole-organization checks and the table --------------------- */

static void check_unique_addresses(struct builder *b)
{
	struct mm_strmap seen = {0};
	for (size_t i = 0; i < b->n; i++) {
		struct obj *o = &b->o[i];
		const char *attr = o->kind == K_VS                              ? "mmBind"
		                   : o->kind == K_SERVER || o->kind == K_MASTER ? "mmRoutingAddress"
		                                                                : NULL;
		if (attr == NULL || o->built == NULL)
			continue;
		for (size_t a = 0; a < o->e->nattrs; a++) {
			const struct mm_attr *at = &o->e->attrs[a];
			uint32_t prev;
			if (strcasecmp(at->name, attr) != 0)
				continue;
			if (mm_strmap_get(&seen, at->value, &prev))
				mm_diag_add(
				    b->diag, at->where, "%s %s: address %s is also used at %s",
				    kind_name[o->kind], o->name, at->value, b->o[prev].e->where);
			else
				mm_strmap_put(&seen, at->value, (uint32_t)i);
		}
	}
	mm_strmap_free(&seen);
}

bool mm_directory_build(const struct mm_dirents *entries, struct mm_directory *dir,
                        struct mm_diag *diag)
{
	struct builder b = {.diag = diag, .dir = dir};
	size_t before = diag->n;
	*dir = (struct mm_directory){0};
	classify(&b, entries);

	size_t norgs = 0;
	for (size_t i = 0; i < b.n; i++) {
		if (b.o[i].kind != K_ORG)
			continue;
		const struct mm_attr *o = one(&b, &b.o[i], "o", false);
		if (norgs++ == 0)
			dir->org = mm_xstrdup(o ? o->value : b.o[i].e->dn);
		else
			mm_diag_add(diag, b.o[i].e->where, "a second mmOrganization entry");
	}
	if (norgs == 0)
		mm_diag_add(diag, entries->n ? entries->e[0].where : "directory",
		            "no mmOrganization entry");

	/* order matters: parents before children, targets before references */
	static const enum kind order[] = {K_GROUP, K_MASTER, K_SERVER, K_VS,
	                                  K_CONN,  K_POLICY, K_RCPT};
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		for (size_t i = 0; i < b.n; i++) {
			struct obj *o = &b.o[i];
			if (o->kind != order[k] || (o->name == NULL && o->kind != K_RCPT))
				continue;
			switch (o->kind) {
			case K_GROUP: build_group(&b, o); break;
			case K_MASTER: build_master(&b, o); break;
			case K_SERVER: build_server(&b, o); break;
			case K_VS: build_vs(&b, o); break;
			case K_CONN: build_connector(&b, o); break;
			case K_POLICY: build_policy(&b, o); break;
			case K_RCPT: build_recipient(&b, o); break;
			default: break;
			}
		}
	}
	check_unique_addresses(&b);

	for (size_t i = 0; i < b.n; i++) {
		struct obj *o = &b.o[i];
		if (o->kind != K_GROUP || o->built == NULL)
			continue;
		mm_entry *e = o->built;
		const Mailmesh__MasterCandidate *m = mm_entry_elect_master(e);
		if (m == NULL)
			mm_diag_add(diag, o->e->where,
			            "routing group %s has no master candidate (mmMaster)", o->name);
		else
			e->master = mm_xstrdup(m->name);
		mm_table_merge(&dir->table, e);
		o->built = NULL;
	}
	for (size_t i = 0; i < b.n; i++) {
		free(b.o[i].ndn);
		free(b.o[i].parent);
		if (b.o[i].kind == K_GROUP)
			mm_entry_free(b.o[i].built);
	}
	free(b.o);
	mm_strmap_free(&b.by_dn);
	if (diag->n != before) {
		mm_directory_free(dir);
		return false;
	}
	return true;
}

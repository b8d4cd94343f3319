#include "synth.h"

#include <stdio.h>

#include "alloc.h"

uint32_t synth_rand(uint64_t *state, uint32_t n)
{
	*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*state >> 33) % n;
}

char *synth_name(const char *fmt, unsigned a, unsigned b)
{
	char buf[64];
	snprintf(buf, sizeof(buf), fmt, a, b);
	return mm_xstrdup(buf);
}

static char *vs_address(unsigned g, unsigned s)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "127.%u.%u.%u:25", (g >> 8) & 255, g & 255, s + 1);
	return mm_xstrdup(buf);
}

mm_entry *synth_group(unsigned g, unsigned nservers)
{
	mm_entry *e = mm_xmalloc(sizeof(*e));
	mailmesh__group_entry__init(e);
	e->name = synth_name("G%06u", g, 0);
	e->version = mm_xmalloc(sizeof(*e->version));
	mailmesh__version__init(e->version);
	e->version->major = 1;
	e->servers = mm_xcalloc(nservers, sizeof(*e->servers));
	for (unsigned s = 0; s < nservers; s++) {
		Mailmesh__Server *sv = mm_xmalloc(sizeof(*sv));
		mailmesh__server__init(sv);
		sv->name = synth_name("S%u-%u", g, s);
		Mailmesh__VirtualServer *vs = mm_xmalloc(sizeof(*vs));
		mailmesh__virtual_server__init(vs);
		vs->name = mm_xstrdup("SMTP");
		vs->address = vs_address(g, s);
		sv->virtual_servers = mm_xcalloc(1, sizeof(*sv->virtual_servers));
		sv->virtual_servers[0] = vs;
		sv->n_virtual_servers = 1;
		e->servers[e->n_servers++] = sv;
	}
	return e;
}

Mailmesh__Bridgehead *synth_bridgehead(unsigned g, unsigned s)
{
	Mailmesh__Bridgehead *b = mm_xmalloc(sizeof(*b));
	mailmesh__bridgehead__init(b);
	b->server = synth_name("S%u-%u", g, s);
	b->virtual_server = mm_xstrdup("SMTP");
	b->address = vs_address(g, s);
	return b;
}

Mailmesh__Connector *synth_connector(mm_entry *e, unsigned g, unsigned k, unsigned to,
                                     unsigned cost, unsigned local_server, unsigned nremote)
{
	Mailmesh__Connector *c = mm_xmalloc(sizeof(*c));
	mailmesh__connector__init(c);
	c->name = synth_name("C%u-%u", g, k);
	c->cost = cost;
	c->target_group = synth_name("G%06u", to, 0);
	c->local_bridgeheads = mm_xcalloc(1, sizeof(*c->local_bridgeheads));
	c->local_bridgeheads[0] = synth_bridgehead(g, local_server);
	c->n_local_bridgeheads = 1;
	c->remote_bridgeheads = mm_xcalloc(nremote, sizeof(*c->remote_bridgeheads));
	for (unsigned s = 0; s < nremote; s++)
		c->remote_bridgeheads[c->n_remote_bridgeheads++] = synth_bridgehead(to, s);
	e->connectors = mm_xrealloc(e->connectors, e->n_connectors + 1, sizeof(*e->connectors));
	e->connectors[e->n_connectors++] = c;
	return c;
}

/* Routing benchmark: synthetic organizations of 100, 1,000 and 10,000
 * routing groups (2 servers each, ~5 routing-group connectors per group, an
 * SMTP connector in every 50th group). Prints, per size: table digest and
 * topology compile from scratch, Dijkstra, the cold next-hop decision for
 * every group, the recompute after one connector changes state, cached
 * lookups per second and resident memory. Not a test: run by hand, numbers
 * go in the notes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "route.h"
#include "synth.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

static uint64_t rng = 42;

static void build(struct mm_table *t, unsigned ng)
{
	mm_table_init(t);
	for (unsigned g = 0; g < ng; g++) {
		mm_entry *e = synth_group(g, 2);
		e->master = synth_name("M%u", g, 0);
		synth_connector(e, g, 0, (g + 1) % ng, 10, 0, 2); /* a ring keeps it connected */
		for (unsigned k = 1; k < 5; k++)
			synth_connector(e, g, k, synth_rand(&rng, ng), 1 + synth_rand(&rng, 100), 0,
			                2);
		if (g % 50 == 0) {
			Mailmesh__Connector *c = mm_xmalloc(sizeof(*c));
			mailmesh__connector__init(c);
			c->name = synth_name("Internet%u", g, 0);
			c->type = MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
			c->cost = 1;
			c->local_bridgeheads = mm_xcalloc(1, sizeof(void *));
			c->local_bridgeheads[0] = synth_bridgehead(g, 1);
			c->n_local_bridgeheads = 1;
			Mailmesh__AddressSpace *as = mm_xmalloc(sizeof(*as));
			mailmesh__address_space__init(as);
			as->type = mm_xstrdup("smtp");
			as->pattern = mm_xstrdup("*");
			as->cost = 1 + synth_rand(&rng, 10);
			c->address_spaces = mm_xcalloc(1, sizeof(void *));
			c->address_spaces[0] = as;
			c->n_address_spaces = 1;
			e->connectors = mm_xrealloc(e->connectors, e->n_connectors + 1, sizeof(c));
			e->connectors[e->n_connectors++] = c;
		}
		mm_table_merge(t, e);
	}
}

int main(void)
{
	static const unsigned sizes[] = {100, 1000, 10000};
	printf("%7s %9s %9s %8s %9s %10s %10s %11s %9s\n", "groups", "digest", "compile", "spf",
	       "all-hops", "recompute", "worst", "cached/s", "rss");
	for (size_t i = 0; i < 3; i++) {
		unsigned ng = sizes[i];
		long rss0 = rss_kb();
		struct mm_table t;
		build(&t, ng);
		struct mm_router r;
		mm_router_init(&r, &t, "S0-0");
		char **homes = mm_xcalloc(ng, sizeof(*homes));
		for (unsigned g = 0; g < ng; g++)
			homes[g] = synth_name("S%u-%u", g, 1);
		struct mm_route rt;
		uint8_t d[MM_DIGEST_LEN];

		/* best of 5 for each phase */
		double best[4] = {1e9, 1e9, 1e9, 1e9};
		for (int rep = 0; rep < 5; rep++) {
			double t0 = now_ms();
			mm_table_digest(&t, d);
			double t1 = now_ms();
			struct mm_topo topo;
			mm_topo_compile(&topo, &t);
			double t2 = now_ms();
			struct mm_spf spf;
			mm_spf_run(&topo, 0, &spf);
			double t3 = now_ms();
			mm_spf_free(&spf);
			mm_topo_free(&topo);
			/* force a full recompute: a version bump changes the digest */
			t.entries[0]->version->minor++;
			mm_router_update(&r, &t);
			double t4 = now_ms();
			for (unsigned g = 0; g < ng; g++)
				mm_route_to_server(&r, homes[g], "m", &rt);
			double t5 = now_ms();
			double ph[4] = {t1 - t0, t2 - t1, t3 - t2, t5 - t4};
			for (int k = 0; k < 4; k++)
				if (ph[k] < best[k])
					best[k] = ph[k];
		}
		/* the recompute as a node does it after a change of one entry:
		 * cached digest, topology refreshed in place, Dijkstra, cache
		 * dropped. Worst case: the first entry changed (the digest is
		 * hashed again from the start); typical: the median of 21
		 * changes of random entries. */
		double rc0 = now_ms();
		mm_entry_set_connector(t.entries[0], t.entries[0]->connectors[1]->name, true);
		mm_router_update(&r, &t);
		double worst = now_ms() - rc0;
		double times[21];
		for (int k = 0; k < 21; k++) {
			mm_entry *e = t.entries[synth_rand(&rng, ng)];
			double a = now_ms();
			mm_entry_set_connector(e, e->connectors[1]->name, !e->connectors[1]->down);
			mm_router_update(&r, &t);
			times[k] = now_ms() - a;
		}
		for (int a = 0; a < 21; a++)
			for (int b = a + 1; b < 21; b++)
				if (times[b] < times[a]) {
					double x = times[a];
					times[a] = times[b];
					times[b] = x;
				}
		double typical = times[10];
		for (unsigned g = 0; g < ng; g++)
			mm_route_to_server(&r, homes[g], "m", &rt);

		const unsigned n = 5000000;
		char key[32];
		double l0 = now_ms();
		uint64_t sink = 0;
		for (unsigned k = 0; k < n; k++) {
			snprintf(key, sizeof(key), "m%u", k & 1023);
			mm_route_to_server(&r, homes[synth_rand(&rng, ng)], key, &rt);
			sink += rt.hop_vs;
		}
		double secs = (now_ms() - l0) / 1e3;
		printf("%7u %7.2fms %7.2fms %6.2fms %7.2fms %8.2fms %8.2fms %11.0f %7ldkB%s\n", ng,
		       best[0], best[1], best[2], best[3], typical, worst, n / secs,
		       rss_kb() - rss0, sink == 42 ? " " : "");
		for (unsigned g = 0; g < ng; g++)
			free(homes[g]);
		free(homes);
		mm_router_free(&r);
		mm_table_free(&t);
	}
	printf("\ndigest, compile: from scratch; spf: Dijkstra from one group;\n"
	       "all-hops: cold decisions for one server in every group after a change;\n"
	       "recompute: mm_router_update after one connector changes state (cached digest,\n"
	       "topology refreshed in place, Dijkstra), median of 21 random entries;\n"
	       "worst: the same for the first entry (its digest is hashed again from the start);\n"
	       "cached/s: lookups of cached decisions including the rendezvous pick (a snprintf\n"
	       "of the key is part of each one).\n");
	return 0;
}

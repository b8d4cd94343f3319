/* Unit tests of the pure core: address-space matching, version order and
 * merge, and a property test of routing against an independent oracle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addrspace.h"
#include "alloc.h"
#include "route.h"
#include "synth.h"
#include "table.h"

static void test_addrspace_match(void **state)
{
	(void)state;
	static const struct {
		const char *pattern, *domain;
		int want;
	} rows[] = {
	    {"*", "example.org", 0},
	    {"*.mil", "army.mil", 2},
	    {"*.mil", "mil", -1},
	    {"*.mil", "a.b.mil", 2},
	    {"example.com", "example.com", 5},
	    {"example.com", "a.example.com", -1},
	    {"*.example.com", "a.example.com", 4},
	    {"*.example.com", "example.com", -1},
	    {"*.mil", "armymil", -1},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = mm_addrspace_match(rows[i].pattern, rows[i].domain);
		if (got != rows[i].want)
			fail_msg("match(%s, %s): got %d, want %d", rows[i].pattern, rows[i].domain,
			         got, rows[i].want);
	}
}

static void test_addrspace_parse(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int ok;
		unsigned cost;
	} rows[] = {
	    {"smtp:* 1", 1, 1}, {"SMTP:*.MIL 5", 1, 5},    {"smtp:example.com", 1, 0},
	    {"smtp:* 0", 0, 0}, {"smtp:* 101", 0, 0},      {"smtp:", 0, 0},
	    {"*", 0, 0},        {"smtp:*.-bad", 0, 0},     {"smtp:a..b", 0, 0},
	    {"smtp:* x", 0, 0}, {"x400:c=us;a=b 3", 1, 3},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mm_addrspace as;
		const char *why = NULL;
		int ok = mm_addrspace_parse(rows[i].text, &as, &why);
		if (ok != rows[i].ok || (ok && as.cost != rows[i].cost))
			fail_msg("parse(%s): got ok=%d cost=%u, want ok=%d cost=%u", rows[i].text,
			         ok, ok ? as.cost : 0, rows[i].ok, rows[i].cost);
	}
}

static mm_entry *entry(const char *name, uint64_t inc, uint64_t maj, uint64_t min, uint64_t user)
{
	mm_entry *e = mm_xmalloc(sizeof(*e));
	mailmesh__group_entry__init(e);
	e->name = mm_xstrdup(name);
	e->version = mm_xmalloc(sizeof(*e->version));
	mailmesh__version__init(e->version);
	e->version->incarnation = inc;
	e->version->major = maj;
	e->version->minor = min;
	e->version->user = user;
	return e;
}

static void test_merge(void **state)
{
	(void)state;
	struct mm_table t;
	mm_table_init(&t);
	assert_int_equal(mm_table_merge(&t, entry("G", 0, 1, 0, 0)), MM_MERGE_NEWER);
	assert_int_equal(mm_table_merge(&t, entry("G", 0, 1, 0, 0)), MM_MERGE_SAME);
	assert_int_equal(mm_table_merge(&t, entry("G", 0, 0, 9, 9)), MM_MERGE_OLDER);
	assert_int_equal(mm_table_merge(&t, entry("G", 0, 1, 1, 0)), MM_MERGE_NEWER);
	/* a new incarnation beats any version of the old one */
	assert_int_equal(mm_table_merge(&t, entry("G", 1, 0, 0, 0)), MM_MERGE_NEWER);
	/* equal versions, other content: the same winner whichever comes first */
	mm_entry *a = entry("G", 1, 0, 0, 0), *b = entry("G", 1, 0, 0, 0);
	a->master = mm_xstrdup("M1");
	b->master = mm_xstrdup("M2");
	uint8_t da[MM_DIGEST_LEN], db[MM_DIGEST_LEN];
	mm_entry_digest(a, da);
	mm_entry_digest(b, db);
	const char *winner = memcmp(da, db, MM_DIGEST_LEN) > 0 ? "M1" : "M2";
	struct mm_table t2;
	mm_table_init(&t2);
	mm_table_merge(&t2, mm_entry_clone(b));
	mm_table_merge(&t2, mm_entry_clone(a));
	mm_table_merge(&t, a);
	mm_table_merge(&t, b);
	assert_string_equal(mm_table_find(&t, "G")->master, winner);
	assert_string_equal(mm_table_find(&t2, "G")->master, winner);
	/* delta: only what travels (incarnation above 0) and the peer lacks,
	 * holds older, or holds at the same version with other content
	 * (mutations caught: baselines in the delta -- I is sent; content
	 * digests ignored -- G not sent in the last case) */
	mm_table_merge(&t, entry("H", 2, 1, 0, 0));
	mm_table_merge(&t, entry("I", 0, 1, 0, 0));
	Mailmesh__Version v = MAILMESH__VERSION__INIT;
	v.incarnation = 1;
	Mailmesh__EntrySummary s = MAILMESH__ENTRY_SUMMARY__INIT;
	s.group = "G";
	s.version = &v;
	const Mailmesh__EntrySummary *peer[] = {&s};
	const mm_entry **out;
	size_t n = mm_table_delta(&t, peer, 1, &out);
	assert_int_equal(n, 1);
	assert_string_equal(out[0]->name, "H");
	free(out);
	/* the peer holds G at our version: nothing, unless its content differs */
	s.version = mm_table_find(&t, "G")->version;
	uint8_t d[MM_DIGEST_LEN];
	mm_entry_digest(mm_table_find(&t, "G"), d);
	s.content_digest = (ProtobufCBinaryData){MM_DIGEST_LEN, d};
	n = mm_table_delta(&t, peer, 1, &out);
	assert_int_equal(n, 1); /* H alone */
	free(out);
	d[0] ^= 1;
	n = mm_table_delta(&t, peer, 1, &out);
	assert_int_equal(n, 2);
	assert_string_equal(out[0]->name, "G");
	free(out);
	/* encode/decode round trip keeps the digest */
	size_t len;
	uint8_t *buf = mm_table_encode(&t, &len);
	struct mm_table back;
	assert_true(mm_table_decode(buf, len, len, &back));
	struct mm_table refused;
	assert_false(mm_table_decode(buf, len, len - 1, &refused)); /* over the limit */
	uint8_t d1[MM_DIGEST_LEN], d2[MM_DIGEST_LEN];
	mm_table_digest(&t, d1);
	mm_table_digest(&back, d2);
	assert_memory_equal(d1, d2, MM_DIGEST_LEN);
	free(buf);
	mm_table_free(&back);
	mm_table_free(&t);
	mm_table_free(&t2);
}

/* --- property test: random organizations against Floyd-Warshall ---------- */

#define NG_MAX 12
#define INF    0x3fffffff

static void test_routes_match_oracle(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 300; seed++) {
		uint64_t rng = seed;
		unsigned ng = 2 + synth_rand(&rng, NG_MAX - 1);
		unsigned w[NG_MAX][NG_MAX];
		for (unsigned i = 0; i < ng; i++)
			for (unsigned j = 0; j < ng; j++)
				w[i][j] = i == j ? 0 : INF;
		struct mm_table t;
		mm_table_init(&t);
		for (unsigned g = 0; g < ng; g++) {
			mm_entry *e = synth_group(g, 2);
			unsigned nc = synth_rand(&rng, 4);
			for (unsigned k = 0; k < nc; k++) {
				unsigned to = synth_rand(&rng, ng);
				if (to == g)
					continue;
				unsigned cost = 1 + synth_rand(&rng, 100);
				unsigned local = synth_rand(&rng, 2);
				Mailmesh__Connector *c = synth_connector(e, g, k, to, cost, local,
				                                         1 + synth_rand(&rng, 2));
				c->down = synth_rand(&rng, 5) == 0;
				if (!c->down && cost < w[g][to])
					w[g][to] = cost;
			}
			mm_table_merge(&t, e);
		}
		for (unsigned k = 0; k < ng; k++)
			for (unsigned i = 0; i < ng; i++)
				for (unsigned j = 0; j < ng; j++)
					if (w[i][k] + w[k][j] < w[i][j])
						w[i][j] = w[i][k] + w[k][j];
		for (unsigned g = 0; g < ng; g++) {
			char *self = synth_name("S%u-%u", g, 0);
			struct mm_router r;
			assert_true(mm_router_init(&r, &t, self));
			for (unsigned d = 0; d < ng; d++) {
				char *home = synth_name("S%u-%u", d, 1);
				struct mm_route rt;
				mm_route_to_server(&r, home, "msg-1", &rt);
				if (d == g) {
					assert_int_equal(rt.kind, MM_ROUTE_INTRA);
				} else if (w[g][d] >= INF) {
					if (rt.kind != MM_ROUTE_UNREACHABLE)
						fail_msg(
						    "seed %u: %u->%u reachable, oracle says not",
						    seed, g, d);
				} else {
					if (rt.kind != MM_ROUTE_INTER || rt.cost != w[g][d])
						fail_msg("seed %u: %u->%u kind %d cost %u, want %u",
						         seed, g, d, rt.kind, rt.cost, w[g][d]);
					/* the path is real: connectors chain, are up, and add up */
					uint32_t sum = 0, at = r.self_group;
					for (uint32_t i = 0; i < rt.nconns; i++) {
						const struct mm_topo_conn *c =
						    &r.topo.conns[rt.conns[i]];
						assert_true(c->up);
						assert_int_equal(c->group, at);
						at = c->target;
						sum += c->c->cost;
					}
					assert_int_equal(sum, w[g][d]);
					assert_int_equal(rt.hop, MM_HOP_VSERVER);
					/* next hop: a remote bridgehead if we bridge the first
					 * connector, else one of its local bridgeheads */
					const struct mm_topo_conn *c0 = &r.topo.conns[rt.conns[0]];
					uint32_t hop_group =
					    r.topo.servers[r.topo.vs[rt.hop_vs].server].group;
					uint32_t lbh =
					    r.topo.vs[r.topo.bhs[c0->local_first].vs].server;
					assert_int_equal(hop_group,
					                 lbh == r.self ? c0->target : c0->group);
				}
				free(home);
			}
			mm_router_free(&r);
			free(self);
		}
		mm_table_free(&t);
	}
}

/* Random organizations (as above) changed step by step: connectors and
 * servers going down and up in place, entries replaced by merges with new
 * costs, sometimes a new connector (a change of shape). After each step the
 * updated router (topology refreshed in place, cached digest) must answer
 * exactly like a router built from scratch, and its digest must be the
 * digest of the whole table. */
static void test_incremental_update(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 150; seed++) {
		uint64_t rng = seed * 7919;
		unsigned ng = 2 + synth_rand(&rng, NG_MAX - 1);
		struct mm_table t;
		mm_table_init(&t);
		for (unsigned g = 0; g < ng; g++) {
			mm_entry *e = synth_group(g, 2);
			for (unsigned k = 0; k < 3; k++) {
				unsigned to = synth_rand(&rng, ng);
				if (to != g)
					synth_connector(e, g, k, to, 1 + synth_rand(&rng, 50),
					                synth_rand(&rng, 2),
					                1 + synth_rand(&rng, 2));
			}
			mm_table_merge(&t, e);
		}
		struct mm_router r;
		assert_true(mm_router_init(&r, &t, "S0-0"));
		for (unsigned step = 0; step < 12; step++) {
			unsigned g = synth_rand(&rng, ng);
			mm_entry *e = t.entries[g];
			switch (synth_rand(&rng, 4)) {
			case 0:
				if (e->n_connectors)
					mm_entry_set_connector(
					    e,
					    e->connectors[synth_rand(&rng,
					                             (uint32_t)e->n_connectors)]
					        ->name,
					    synth_rand(&rng, 2));
				break;
			case 1:
				mm_entry_set_server(e, e->servers[synth_rand(&rng, 2)]->name,
				                    synth_rand(&rng, 2));
				break;
			case 2: {
				mm_entry *c = mm_entry_clone(e);
				for (size_t k = 0; k < c->n_connectors; k++)
					c->connectors[k]->cost = 1 + synth_rand(&rng, 50);
				c->version->major++;
				assert_int_equal(mm_table_merge(&t, c), MM_MERGE_NEWER);
				break;
			}
			default: {
				mm_entry *c = mm_entry_clone(e);
				synth_connector(c, g, 10 + step, synth_rand(&rng, ng),
				                1 + synth_rand(&rng, 50), 0, 1);
				mm_entry_canonicalize(c);
				c->version->major++;
				assert_int_equal(mm_table_merge(&t, c), MM_MERGE_NEWER);
				break;
			}
			}
			mm_router_update(&r, &t);
			uint8_t want[MM_DIGEST_LEN];
			mm_table_digest(&t, want);
			if (memcmp(want, r.digest, MM_DIGEST_LEN) != 0)
				fail_msg("seed %u step %u: cached digest differs", seed, step);
			struct mm_router fresh;
			assert_true(mm_router_init(&fresh, &t, "S0-0"));
			for (unsigned d = 0; d < ng; d++) {
				char *home = synth_name("S%u-%u", d, 1);
				struct mm_route a, b;
				mm_route_to_server(&r, home, "m", &a);
				mm_route_to_server(&fresh, home, "m", &b);
				if (a.kind != b.kind || a.has_cost != b.has_cost ||
				    a.cost != b.cost || a.hop != b.hop ||
				    (a.hop == MM_HOP_VSERVER && a.hop_vs != b.hop_vs))
					fail_msg("seed %u step %u to %u: updated router kind %d "
					         "cost %u, "
					         "fresh kind %d cost %u",
					         seed, step, d, a.kind, a.cost, b.kind, b.cost);
				free(home);
			}
			mm_router_free(&fresh);
		}
		mm_router_free(&r);
		mm_table_free(&t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addrspace_match),
	    cmocka_unit_test(test_addrspace_parse),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_routes_match_oracle),
	    cmocka_unit_test(test_incremental_update),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

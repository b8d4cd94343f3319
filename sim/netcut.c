/* cut, heal, isolate, rejoin (DESIGN §8): nftables rules dropping every
 * packet between two daemons' loopback addresses, both ways, in one table
 * `inet meshsim` made afresh at each start (a table left by a meshsim
 * that was killed goes then) and deleted at the end. Dropped, not
 * rejected: connections already open stall as on a real cut, and each
 * daemon keeps its own address, so the source addresses the routing rules
 * look at stay true. docs/decisions.md says why not a relay or network
 * namespaces. The run holds LOCK_PATH (live.c), so two runs never share
 * the table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "world.h"

#define NFT "/usr/sbin/nft"

static bool nft_file(struct sim_world *w, const char *text, char *err, size_t errlen)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/nft.rules", w->work);
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		snprintf(err, errlen, "%s: cannot write", path);
		return false;
	}
	char *argv[] = {NFT, "-f", path, NULL}, *out;
	int rc = sim_run_capture(argv, &out, 30000);
	free(out);
	if (rc != 0)
		snprintf(err, errlen, "nft -f %s: exit %d (meshsim needs root and nftables)", path,
		         rc);
	return rc == 0;
}

bool sim_nft_init(struct sim_world *w, char *err, size_t errlen)
{
	if (access(NFT, X_OK) != 0) {
		snprintf(err, errlen,
		         "%s is missing: cut and isolate need nftables (apt-get install "
		         "nftables)",
		         NFT);
		return false;
	}
	sim_nft_fini(w); /* whatever a killed run left */
	w->nft_ready =
	    nft_file(w,
	             "table inet meshsim {\n"
	             "  chain out { type filter hook output priority 0; policy accept; }\n"
	             "}\n",
	             err, errlen);
	return w->nft_ready;
}

void sim_nft_fini(struct sim_world *w)
{
	char *argv[] = {NFT, "delete", "table", "inet", "meshsim", NULL}, *out;
	sim_run_capture(argv, &out, 30000);
	free(out);
	w->nft_ready = false;
}

static void rule(struct mm_buf *b, const char *from, const char *to)
{
	const char *fam = strchr(from, ':') ? "ip6" : "ip";
	if ((strchr(to, ':') != NULL) != (strchr(from, ':') != NULL))
		return;
	mm_buf_printf(b, "add rule inet meshsim out %s saddr %s %s daddr %s drop\n", fam, from, fam,
	              to);
}

bool sim_nft_apply(struct sim_world *w, char *err, size_t errlen)
{
	struct mm_buf b = {0};
	mm_buf_printf(&b, "flush chain inet meshsim out\n");
	for (size_t c = 0; c < w->ncuts; c++) {
		const struct sim_daemon *x = &w->d[w->cuts[c][0]], *y = &w->d[w->cuts[c][1]];
		for (size_t i = 0; i < x->naddrs; i++)
			for (size_t j = 0; j < y->naddrs; j++) {
				if (strcmp(x->addrs[i], y->addrs[j]) == 0)
					continue; /* one address: nothing between them to cut */
				rule(&b, x->addrs[i], y->addrs[j]);
				rule(&b, y->addrs[j], x->addrs[i]);
			}
	}
	mm_buf_add(&b, "", 1);
	bool ok = nft_file(w, (const char *)b.p, err, errlen);
	mm_buf_free(&b);
	return ok;
}

bool sim_is_cut(const struct sim_world *w, size_t a, size_t b)
{
	for (size_t i = 0; i < w->ncuts; i++)
		if ((w->cuts[i][0] == a && w->cuts[i][1] == b) ||
		    (w->cuts[i][0] == b && w->cuts[i][1] == a))
			return true;
	return false;
}

/* the scenario takes a pair over: chaos no longer owns it (chaos off
 * leaves it cut) */
void sim_chaos_disown(struct sim_world *w, size_t a, size_t b)
{
	for (size_t i = 0; i < w->nchaos; i++)
		if ((w->chaos_cuts[i][0] == a && w->chaos_cuts[i][1] == b) ||
		    (w->chaos_cuts[i][0] == b && w->chaos_cuts[i][1] == a)) {
			w->nchaos--;
			w->chaos_cuts[i][0] = w->chaos_cuts[w->nchaos][0];
			w->chaos_cuts[i][1] = w->chaos_cuts[w->nchaos][1];
			return;
		}
}

void sim_cut(struct sim_world *w, size_t a, size_t b, bool cut)
{
	if (a > b) {
		size_t t = a;
		a = b;
		b = t;
	}
	for (size_t i = 0; i < w->ncuts; i++)
		if (w->cuts[i][0] == a && w->cuts[i][1] == b) {
			if (!cut) {
				w->ncuts--;
				w->cuts[i][0] = w->cuts[w->ncuts][0];
				w->cuts[i][1] = w->cuts[w->ncuts][1];
			}
			return;
		}
	if (!cut)
		return;
	w->cuts = mm_xrealloc(w->cuts, w->ncuts + 1, sizeof(*w->cuts));
	w->cuts[w->ncuts][0] = a;
	w->cuts[w->ncuts][1] = b;
	w->ncuts++;
}

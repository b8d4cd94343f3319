/* mm_net_directory_table: the routing addresses of a table's servers and
 * master candidates, for the listener's bounds (admit.h). Apart from
 * net691.c, which knows nothing of tables. */
#include <stdlib.h>

#include "alloc.h"
#include "net691.h"
#include "table.h"

void mm_net_directory_table(struct mm_net *n, const struct mm_table *t)
{
	size_t k = 0, cap = 0;
	for (size_t g = 0; g < t->n; g++)
		cap += t->entries[g]->n_servers + t->entries[g]->n_masters;
	const char **a = mm_xcalloc(cap ? cap : 1, sizeof(*a));
	for (size_t g = 0; g < t->n; g++) {
		const mm_entry *e = t->entries[g];
		for (size_t i = 0; i < e->n_servers; i++)
			a[k++] = e->servers[i]->routing_address;
		for (size_t i = 0; i < e->n_masters; i++)
			a[k++] = e->masters[i]->routing_address;
	}
	mm_net_set_directory(n, a, k);
	free(a);
}

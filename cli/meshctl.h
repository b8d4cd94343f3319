#ifndef MM_MESHCTL_H
#define MM_MESHCTL_H

#include <stdbool.h>
#include <sysexits.h>

#include "directory.h"
#include "topo.h"

/* What every command works on: the organization from the directory with the
 * operator's --down marks applied, and its compiled topology. */
struct ctl {
	bool json;
	struct mm_directory dir;
	struct mm_topo topo;
};

int ctl_table(struct ctl *c);
int ctl_route(struct ctl *c, const char *from, const char *rcpt);
int ctl_graph(struct ctl *c, const char *output);
/* a live node's queues through SPOOL/control.sock */
int ctl_queues(const char *spool, bool json, const char *verb, const char *queue);

/* Smart host as an address: "[127.0.0.1]:2526" -> "127.0.0.1:2526",
 * a missing port is 25. */

#endif

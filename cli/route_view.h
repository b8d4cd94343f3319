/* The next-hop decision as `meshctl route` shows it, JSON or text, for
 * offline meshctl and for meshnode's answer on 691 (library mm_tableview,
 * beside table_view.h). */
#ifndef MM_ROUTE_VIEW_H
#define MM_ROUTE_VIEW_H

#include <stdbool.h>
#include <stdio.h>

#include "route.h"

/* rt as `meshctl route` prints it: recipient, from, kind, destination,
 * path, connectors, cost, next hop (docs/meshctl.md); domain: the
 * recipient's, for a next hop by DNS. */
void mm_route_render(FILE *out, const struct mm_router *r, const char *rcpt, const char *from,
                     const char *domain, const struct mm_route *rt, bool json);

#endif

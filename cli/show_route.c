/* meshctl route: the decision of DESIGN §4 for one recipient, as the server
 * named by --from would take it. Offline there is no message, so the
 * recipient address is the rendezvous key. */
#include <stdio.h>
#include <string.h>

#include "meshctl.h"
#include "route.h"
#include "route_view.h"

int ctl_route(struct ctl *c, const char *from, const char *rcpt)
{
	struct mm_router r;
	if (!mm_router_init(&r, &c->dir.table, from)) {
		fprintf(stderr, "meshctl: route: no server named %s\n", from);
		return EX_USAGE;
	}
	char domain[256];
	const struct mm_recipient *who = NULL;
	struct mm_route rt;
	int rc = EX_OK;
	switch (mm_directory_categorize(&c->dir, rcpt, &who, domain)) {
	case MM_CAT_BAD:
		fprintf(stderr, "meshctl: route: %s is not local@domain (501 5.1.3)\n", rcpt);
		rc = EX_USAGE;
		goto out;
	case MM_CAT_UNKNOWN:
		fprintf(stderr,
		        "meshctl: route: no recipient %s in authoritative domain %s (550 5.1.1)\n",
		        rcpt, domain);
		rc = EX_NOUSER;
		goto out;
	case MM_CAT_HOME: mm_route_to_server(&r, who->home, rcpt, &rt); break;
	/* delivered where it is received (RFC 5321 §4.5.1) */
	case MM_CAT_POSTMASTER: mm_route_to_server(&r, from, rcpt, &rt); break;
	case MM_CAT_EXTERNAL: mm_route_to_domain(&r, domain, rcpt, &rt); break;
	}
	mm_route_render(stdout, &r, rcpt, from, domain, &rt, c->json);
out:
	mm_router_free(&r);
	return rc;
}

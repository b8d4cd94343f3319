/* Queries on TCP 691 (docs/protocol.md, "Queries"), for meshctl --connect:
 * Query {command, args}, args[0] "json" or "text", then the command's
 * operands; the answer is written to out and its sysexits status returned
 * (query_answer), for a Reply {status, json}.
 *
 *   table               the node's view: what it routes with (the masters'
 *                       table with its own state laid over its group's
 *                       entry), in the shape of `meshctl --json table` with
 *                       "server" this server and "role" "node"
 *   route RECIPIENT     the decision this node takes now, as `meshctl route
 *                       --from SELF RECIPIENT` writes it
 *   queues, queue Q, retry Q, freeze Q, thaw Q
 *                       what SPOOL/control.sock answers (control.c renders
 *                       both, so they never disagree); retry, freeze and
 *                       thaw only for a peer with an admin certificate
 *
 * The table and the route are rendered by meshctl's own views
 * (cli/table_view.h, cli/route_view.h), so the live answer is the offline
 * one field for field. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "json.h"
#include "node.h"
#include "route_view.h"
#include "table_view.h"

/* --- the answers ------------------------------------------------------------ */

static int error(FILE *out, bool text, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int error(FILE *out, bool text, int status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (text) {
		fprintf(out, "error: %s\n", msg);
		return status;
	}
	struct json j;
	json_init(&j, out);
	json_begin_obj(&j);
	json_key(&j, "error");
	json_str(&j, msg);
	json_end_obj(&j);
	fputc('\n', out);
	return status;
}

static int answer_route(struct node *n, FILE *out, bool text, const char *rcpt)
{
	char domain[256];
	const struct mm_recipient *who = NULL;
	struct mm_route rt;
	switch (mm_directory_categorize(&n->dir, rcpt, &who, domain)) {
	case MM_CAT_BAD:
		return error(out, text, EX_USAGE, "route: %s is not local@domain (501 5.1.3)",
		             rcpt);
	case MM_CAT_UNKNOWN:
		return error(out, text, EX_NOUSER,
		             "route: no recipient %s in authoritative domain %s (550 5.1.1)", rcpt,
		             domain);
	case MM_CAT_HOME: mm_route_to_server(&n->router, who->home, rcpt, &rt); break;
	case MM_CAT_POSTMASTER: mm_route_to_server(&n->router, n->self, rcpt, &rt); break;
	case MM_CAT_EXTERNAL: mm_route_to_domain(&n->router, domain, rcpt, &rt); break;
	}
	mm_route_render(out, &n->router, rcpt, n->self, domain, &rt, !text);
	return EX_OK;
}

int query_answer(struct node *n, const char *command, size_t nargs, const char *const *args,
                 bool may_change, FILE *out)
{
	if (nargs < 1 || (strcmp(args[0], "json") != 0 && strcmp(args[0], "text") != 0))
		return error(out, false, EX_USAGE,
		             "args[0] is the output format, \"json\" or \"text\"");
	bool text = strcmp(args[0], "text") == 0;
	const char *verb = command ? command : "";
	bool queues = strcmp(verb, "queues") == 0;
	if (strcmp(verb, "table") == 0 || queues) {
		if (nargs != 1)
			return error(out, text, EX_USAGE, "%s takes no operand", verb);
		if (queues)
			return control_render(n, text, "queues", "", out);
		char *doc = mm_table_render(routing_view(n), n->dir.org, n->self, "node", !text);
		if (doc == NULL)
			return error(out, text, EX_UNAVAILABLE,
			             "out of memory rendering the table");
		fputs(doc, out);
		free(doc);
		return EX_OK;
	}
	bool change =
	    strcmp(verb, "retry") == 0 || strcmp(verb, "freeze") == 0 || strcmp(verb, "thaw") == 0;
	bool route = strcmp(verb, "route") == 0;
	if (route || strcmp(verb, "queue") == 0 || change) {
		if (nargs != 2)
			return error(out, text, EX_USAGE, "%s takes one operand (%s)", verb,
			             route ? "RECIPIENT" : "QUEUE");
		if (route)
			return answer_route(n, out, text, args[1]);
		if (change && !may_change)
			return error(out, text, EX_NOPERM, "%s needs an admin certificate", verb);
		return control_render(n, text, verb, args[1], out);
	}
	return error(out, text, EX_USAGE,
	             "unknown command (table, route, queues, queue, retry, freeze, thaw)");
}

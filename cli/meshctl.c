/* meshctl: the operator's view of the mesh (DESIGN §7). This file reads the
 * command line, loads the source, and hands over to one show_*.c per
 * command. Exit codes follow sysexits. */
#include "meshctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json.h"

static const char usage[] =
    "usage: meshctl SOURCE [--down NAME]... [--json] COMMAND [ARGS]\n"
    "       meshctl check FILE\n"
    "\n"
    "SOURCE:\n"
    "  --directory ldif:PATH | ldap://HOST:PORT/BASE-DN   offline, from the directory\n"
    "  --connect HOST:PORT --tls DIR [--as NAME] [--expect KIND:NAME]\n"
    "                  a live node or rgmaster (691); --expect: its certificate must name\n"
    "                  server|master|admin NAME, or exit 76\n"
    "  --spool DIR     a meshnode on this machine, through DIR/control.sock (queues)\n"
    "  --down NAME     mark a connector, server, master or bridgehead (SERVER/VS) down\n"
    "  --json          JSON instead of text\n"
    "\n"
    "COMMANDS:\n"
    "  table                          the link-state table\n"
    "  route --from SERVER RECIPIENT  the next-hop decision for one recipient\n"
    "                                 (--connect: route RECIPIENT, as the node answering)\n"
    "  graph [--output FILE.svg|png]  the topology as Graphviz DOT\n"
    "  check FILE                     validate a directory LDIF file\n"
    "  queues | queue NAME | retry|freeze|thaw QUEUE   a live node's queues\n"
    "  pki init --dir DIR --org NAME  the organization's CA in DIR\n"
    "  pki issue --dir DIR [--server NAME]... [--master NAME]... [--admin NAME]... [NAME]...\n"
    "  pki revoke --dir DIR NAME...   add NAME's certificate to DIR/crl.pem\n"
    "                                 a key and certificate per server, master, admin\n";

struct args {
	const char *directory, *connect, *tls, *as, *expect, *from, *output, *spool;
	bool json;
	size_t ndown, npos;
	const char **down;
	const char **pos;    /* command and its operands */
	struct pki_args pki; /* --dir, --org, --server, --master, --admin */
};

static int usage_error(const char *what)
{
	if (what)
		fprintf(stderr, "meshctl: %s\n", what);
	fputs(usage, stderr);
	return EX_USAGE;
}

static int parse(int argc, char **argv, struct args *a)
{
	a->down = mm_xcalloc((size_t)argc, sizeof(*a->down));
	a->pos = mm_xcalloc((size_t)argc, sizeof(*a->pos));
	a->pki.server = mm_xcalloc((size_t)argc, sizeof(*a->pki.server));
	a->pki.master = mm_xcalloc((size_t)argc, sizeof(*a->pki.master));
	a->pki.admin = mm_xcalloc((size_t)argc, sizeof(*a->pki.admin));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **slot = NULL;
		if (strcmp(s, "--json") == 0) {
			a->json = true;
			continue;
		}
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			fputs(usage, stdout);
			exit(EX_OK);
		}
		if (strcmp(s, "--directory") == 0)
			slot = &a->directory;
		else if (strcmp(s, "--connect") == 0)
			slot = &a->connect;
		else if (strcmp(s, "--tls") == 0)
			slot = &a->tls;
		else if (strcmp(s, "--as") == 0)
			slot = &a->as;
		else if (strcmp(s, "--expect") == 0)
			slot = &a->expect;
		else if (strcmp(s, "--from") == 0)
			slot = &a->from;
		else if (strcmp(s, "--output") == 0)
			slot = &a->output;
		else if (strcmp(s, "--spool") == 0)
			slot = &a->spool;
		else if (strcmp(s, "--down") == 0)
			slot = &a->down[a->ndown++];
		else if (strcmp(s, "--dir") == 0)
			slot = &a->pki.dir;
		else if (strcmp(s, "--org") == 0)
			slot = &a->pki.org;
		else if (strcmp(s, "--server") == 0)
			slot = &a->pki.server[a->pki.nserver++];
		else if (strcmp(s, "--master") == 0)
			slot = &a->pki.master[a->pki.nmaster++];
		else if (strcmp(s, "--admin") == 0)
			slot = &a->pki.admin[a->pki.nadmin++];
		else if (strncmp(s, "--", 2) == 0 && s[2]) {
			fprintf(stderr, "meshctl: unknown option %s\n", s);
			return EX_USAGE;
		} else {
			a->pos[a->npos++] = s;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "meshctl: %s needs a value\n", s);
			return EX_USAGE;
		}
		*slot = argv[++i];
	}
	return EX_OK;
}

static int load_status(enum mm_load_status st)
{
	switch (st) {
	case MM_LOAD_OK: return EX_OK;
	case MM_LOAD_BAD_DATA: return EX_DATAERR;
	case MM_LOAD_UNAVAILABLE: return EX_UNAVAILABLE;
	case MM_LOAD_USAGE: return EX_USAGE;
	case MM_LOAD_NOINPUT: return EX_NOINPUT;
	}
	return EX_SOFTWARE;
}

int ctl_load_directory(const char *spec, struct mm_directory *dir)
{
	struct mm_diag diag = {0};
	int rc = load_status(mm_directory_load(spec, dir, &diag));
	mm_diag_print(&diag, stderr);
	mm_diag_free(&diag);
	return rc;
}

static int check(const char *file, bool json)
{
	char *spec = NULL;
	if (strncmp(file, "ldif:", 5) == 0 || strncmp(file, "ldap://", 7) == 0) {
		spec = mm_xstrdup(file);
	} else {
		spec = mm_xmalloc(strlen(file) + 6);
		memcpy(spec, "ldif:", 5);
		memcpy(spec + 5, file, strlen(file) + 1);
	}
	struct mm_directory dir;
	struct mm_diag diag = {0};
	int rc = load_status(mm_directory_load(spec, &dir, &diag));
	mm_diag_print(&diag, stderr);
	if (rc == EX_OK) {
		size_t servers = 0, conns = 0;
		for (size_t g = 0; g < dir.table.n; g++) {
			servers += dir.table.entries[g]->n_servers;
			conns += dir.table.entries[g]->n_connectors;
		}
		if (json) {
			struct json j;
			json_init(&j, stdout);
			json_begin_obj(&j);
			json_key(&j, "file");
			json_str(&j, file);
			json_key(&j, "ok");
			json_bool(&j, true);
			json_key(&j, "groups");
			json_u64(&j, dir.table.n);
			json_key(&j, "servers");
			json_u64(&j, servers);
			json_key(&j, "connectors");
			json_u64(&j, conns);
			json_key(&j, "recipients");
			json_u64(&j, dir.nrecipients);
			json_end_obj(&j);
			fputc('\n', stdout);
		} else
			printf("%s: ok: %zu routing groups, %zu servers, %zu connectors, %zu "
			       "recipients\n",
			       file, dir.table.n, servers, conns, dir.nrecipients);
		mm_directory_free(&dir);
	} else if (rc == EX_DATAERR) {
		fprintf(stderr, "%s: %zu problem%s; nothing loaded\n", file, diag.n,
		        diag.n == 1 ? "" : "s");
	}
	mm_diag_free(&diag);
	free(spec);
	return rc;
}

/* --connect: the verbs a live node or master may answer, with their
 * operands (docs/protocol.md "Queries"); the rest of the command line is
 * the offline sources' and has no meaning here. */
static int connect_(struct args *a)
{
	static const struct {
		const char *verb;
		size_t operands;
		const char *usage;
	} verbs[] = {
	    {"table", 0, "table takes no operands"},
	    {"route", 1, "route RECIPIENT (the node answering is the one routing)"},
	    {"queues", 0, "queues takes no operands"},
	    {"queue", 1, "the command takes one QUEUE name"},
	    {"retry", 1, "the command takes one QUEUE name"},
	    {"freeze", 1, "the command takes one QUEUE name"},
	    {"thaw", 1, "the command takes one QUEUE name"},
	};
	if (a->tls == NULL)
		return usage_error("--connect needs --tls DIR (ca.pem, NAME.pem, NAME.key)");
	if (a->directory || a->spool || a->ndown || a->from || a->output)
		return usage_error("--connect takes --tls, --as, --expect and --json: --directory, "
		                   "--spool, --down, --from and --output are offline options");
	const char *cmd = a->pos[0];
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(cmd, verbs[i].verb) != 0)
			continue;
		if (a->npos != verbs[i].operands + 1)
			return usage_error(verbs[i].usage);
		struct ctl_peer peer = {
		    .address = a->connect, .tls = a->tls, .as = a->as, .expect = a->expect};
		return ctl_connect(&peer, a->json, cmd, a->pos + 1, a->npos - 1);
	}
	return usage_error("--connect answers table, route, queues, queue, retry, freeze, thaw");
}

static int run(struct args *a)
{
	if (a->npos == 0)
		return usage_error("no command");
	const char *cmd = a->pos[0];
	struct pki_args *p = &a->pki;
	bool pki = strcmp(cmd, "pki") == 0;
	if (!pki && (p->dir || p->org || p->nserver || p->nmaster || p->nadmin))
		return usage_error("--dir, --org, --server, --master and --admin are pki's");
	if (pki) {
		if (a->json || a->connect || a->tls || a->as || a->expect || a->spool || a->ndown ||
		    a->from || a->output)
			return usage_error("pki takes --directory (issue), --dir, --org (init), "
			                   "--server, --master, --admin; its output is text");
		p->directory = a->directory;
		p->names = a->pos + 2;
		p->nnames = a->npos >= 2 ? a->npos - 2 : 0;
		return ctl_pki(a->npos >= 2 ? a->pos[1] : NULL, p);
	}
	if (a->connect)
		return connect_(a);
	if (a->tls || a->as || a->expect)
		return usage_error("--tls, --as and --expect go with --connect");
	if (strcmp(cmd, "check") == 0) {
		if (a->npos != 2)
			return usage_error("check takes one FILE");
		return check(a->pos[1], a->json);
	}
	bool queues = strcmp(cmd, "queues") == 0;
	if (queues || strcmp(cmd, "queue") == 0 || strcmp(cmd, "retry") == 0 ||
	    strcmp(cmd, "freeze") == 0 || strcmp(cmd, "thaw") == 0) {
		if (a->spool == NULL)
			return usage_error("queues need a live node: --spool DIR (its spool) or "
			                   "--connect HOST:PORT");
		if (a->npos != (queues ? 1u : 2u))
			return usage_error(queues ? "queues takes no operands"
			                          : "the command takes one QUEUE name");
		return ctl_queues(a->spool, a->json, cmd, queues ? NULL : a->pos[1]);
	}
	if (strcmp(cmd, "table") != 0 && strcmp(cmd, "route") != 0 && strcmp(cmd, "graph") != 0)
		return usage_error("unknown command");
	if (a->directory == NULL)
		return usage_error("a source is needed: --directory ldif:PATH or ldap://...");

	struct ctl c = {.json = a->json};
	int rc = ctl_load_directory(a->directory, &c.dir);
	if (rc != EX_OK)
		return rc;
	for (size_t i = 0; i < a->ndown; i++) {
		if (!mm_table_mark(&c.dir.table, a->down[i], true)) {
			fprintf(stderr,
			        "meshctl: --down %s: no connector, server, master or "
			        "bridgehead (SERVER/VIRTUAL-SERVER) has that name\n",
			        a->down[i]);
			mm_directory_free(&c.dir);
			return EX_USAGE;
		}
	}
	mm_topo_compile(&c.topo, &c.dir.table);
	if (strcmp(cmd, "table") == 0)
		rc = a->npos == 1 ? ctl_table(&c) : usage_error("table takes no operands");
	else if (strcmp(cmd, "graph") == 0)
		rc = a->npos == 1 ? ctl_graph(&c, a->output)
		                  : usage_error("graph takes no operands");
	else if (a->from == NULL || a->npos != 2)
		rc = usage_error("route --from SERVER RECIPIENT");
	else
		rc = ctl_route(&c, a->from, a->pos[1]);
	mm_topo_free(&c.topo);
	mm_directory_free(&c.dir);
	return rc;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	int rc = parse(argc, argv, &a);
	if (rc == EX_OK)
		rc = run(&a);
	else
		fputs(usage, stderr);
	free(a.down);
	free(a.pos);
	free(a.pki.server);
	free(a.pki.master);
	free(a.pki.admin);
	if (fflush(stdout) != 0 && rc == EX_OK)
		rc = EX_IOERR;
	return rc;
}

/* meshctl graph: the topology with states as Graphviz DOT. Routing groups are
 * clusters of their servers; routing-group connectors are edges between
 * groups (dashed and red when down); SMTP connectors are edges to their
 * address spaces. With --output FILE.svg|png, dot renders it. */
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meshctl.h"

extern char **environ;

static void dot_id(FILE *f, const char *prefix, const char *name)
{
	fprintf(f, "\"%s:", prefix);
	for (const char *p = name; *p; p++)
		fprintf(f, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	fputc('"', f);
}

static void write_dot(struct ctl *c, FILE *f)
{
	const struct mm_topo *t = &c->topo;
	fprintf(
	    f, "digraph mailmesh {\n  compound=true; rankdir=LR; node [shape=box, fontsize=10];\n");
	for (uint32_t g = 0; g < t->ngroups; g++) {
		const mm_entry *e = c->dir.table.entries[g];
		fprintf(f, "  subgraph \"cluster_%u\" {\n    label=\"%s (master %s)\";\n", g,
		        t->groups[g].name, e->master[0] ? e->master : "none");
		fprintf(f, "    ");
		dot_id(f, "g", t->groups[g].name);
		fprintf(f, " [shape=point, style=invis];\n");
		for (uint32_t s = 0; s < t->nservers; s++) {
			if (t->servers[s].group != g)
				continue;
			fprintf(f, "    ");
			dot_id(f, "s", t->servers[s].name);
			fprintf(f, " [label=\"%s\"%s];\n", t->servers[s].name,
			        t->servers[s].up ? "" : ", color=red, fontcolor=red");
		}
		fprintf(f, "  }\n");
	}
	for (uint32_t ci = 0; ci < t->nconns; ci++) {
		const struct mm_topo_conn *tc = &t->conns[ci];
		const char *style = tc->up ? "" : ", color=red, style=dashed";
		if (!tc->smtp && tc->target != MM_NONE) {
			fprintf(f, "  ");
			dot_id(f, "g", t->groups[tc->group].name);
			fprintf(f, " -> ");
			dot_id(f, "g", t->groups[tc->target].name);
			fprintf(
			    f,
			    " [label=\"%s (%u)\", ltail=\"cluster_%u\", lhead=\"cluster_%u\"%s];\n",
			    tc->c->name, tc->c->cost, tc->group, tc->target, style);
			continue;
		}
		for (size_t a = 0; tc->smtp && a < tc->c->n_address_spaces; a++) {
			const Mailmesh__AddressSpace *as = tc->c->address_spaces[a];
			fprintf(f, "  ");
			dot_id(f, "a", as->pattern);
			fprintf(f, " [shape=ellipse, label=\"%s:%s\"];\n  ", as->type, as->pattern);
			dot_id(f, "g", t->groups[tc->group].name);
			fprintf(f, " -> ");
			dot_id(f, "a", as->pattern);
			fprintf(f, " [label=\"%s (%u)\", ltail=\"cluster_%u\"%s];\n", tc->c->name,
			        as->cost, tc->group, style);
		}
	}
	fprintf(f, "}\n");
}

int ctl_graph(struct ctl *c, const char *output)
{
	if (output == NULL) {
		write_dot(c, stdout);
		return EX_OK;
	}
	const char *ext = strrchr(output, '.');
	if (ext == NULL || (strcmp(ext, ".svg") != 0 && strcmp(ext, ".png") != 0)) {
		fprintf(stderr, "meshctl: graph --output wants a .svg or .png file\n");
		return EX_USAGE;
	}
	char fmt[8];
	snprintf(fmt, sizeof(fmt), "-T%s", ext + 1);
	int fds[2];
	if (pipe(fds) != 0)
		return EX_OSERR;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
	posix_spawn_file_actions_addclose(&fa, fds[1]);
	char *argv[] = {"dot", fmt, "-o", (char *)output, NULL};
	pid_t pid;
	int err = posix_spawnp(&pid, "dot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	if (err != 0) {
		close(fds[1]);
		fprintf(stderr, "meshctl: graph: cannot run dot (Debian: graphviz): %s\n",
		        strerror(err));
		return EX_UNAVAILABLE;
	}
	FILE *f = fdopen(fds[1], "w");
	if (f == NULL) {
		close(fds[1]);
		waitpid(pid, NULL, 0);
		return EX_OSERR;
	}
	write_dot(c, f);
	fclose(f);
	int status;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "meshctl: graph: dot failed\n");
		return EX_SOFTWARE;
	}
	return EX_OK;
}

/* meshsim run SCENARIO [--live|--model] [--seed N] [--check-determinism]
 *              [--report DIR]
 * (DESIGN §8, docs/meshsim.md). Exit 0 when every expectation held, 1 when
 * one failed, 64 usage, 65 a scenario that does not parse or names what the
 * organization lacks, 69 a binary or tool missing (and --model, until the
 * model mode exists). */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "directory.h"
#include "scenario.h"
#include "world.h"

volatile sig_atomic_t sim_interrupted;

static void on_signal(int sig)
{
	sim_interrupted = sig;
}

static int usage(void)
{
	fprintf(stderr, "usage: meshsim run SCENARIO [--live|--model] [--seed N] "
	                "[--check-determinism] [--report DIR]\n");
	return EX_USAGE;
}

/* the daemons and meshctl: beside meshsim in a build tree (../node,
 * ../rgmaster, ../cli), or beside it when installed, or on PATH */
static char *find_binary(const char *name, const char *subdir)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *dir = dirname(self);
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/../%s/%s", dir, subdir, name);
		if (access(path, X_OK) == 0)
			return realpath(path, NULL);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (access(path, X_OK) == 0)
			return realpath(path, NULL);
	}
	const char *p = getenv("PATH");
	if (p == NULL)
		return NULL;
	char *copy = mm_xstrdup(p), *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s", d, name);
		if (access(path, X_OK) == 0) {
			free(copy);
			return realpath(path, NULL);
		}
	}
	free(copy);
	return NULL;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 65536, n = 0;
	char *buf = mm_xmalloc(cap);
	size_t r;
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n > MM_SCENARIO_MAX_BYTES)
			break;
		if (n == cap)
			buf = mm_xrealloc(buf, cap *= 2, 1);
	}
	fclose(f);
	*len = n;
	return buf;
}

/* the organization as the scenario's names are checked against it */
static unsigned org_kinds(void *ctx, const char *name)
{
	struct sim_world *w = ctx;
	unsigned k = 0;
	const struct mm_table *t = &w->dir.table;
	char c[256] = "", s[256] = "", vs[256] = "";
	bool bh = sscanf(name, "%255[^/]/%255[^/]/%255s", c, s, vs) == 3;
	for (size_t g = 0; g < t->n; g++) {
		const mm_entry *e = t->entries[g];
		for (size_t i = 0; i < e->n_masters; i++)
			k |= strcmp(e->masters[i]->name, name) == 0 ? MM_SIM_MASTER : 0;
		for (size_t i = 0; i < e->n_servers; i++)
			k |= strcmp(e->servers[i]->name, name) == 0 ? MM_SIM_SERVER : 0;
		for (size_t i = 0; i < e->n_connectors; i++) {
			const Mailmesh__Connector *x = e->connectors[i];
			k |= strcmp(x->name, name) == 0 ? MM_SIM_CONNECTOR : 0;
			if (!bh || strcmp(x->name, c) != 0)
				continue;
			for (size_t b = 0; b < x->n_local_bridgeheads; b++)
				k |=
				    strcmp(x->local_bridgeheads[b]->server, s) == 0 &&
				            strcmp(x->local_bridgeheads[b]->virtual_server, vs) == 0
				        ? MM_SIM_BRIDGEHEAD
				        : 0;
			for (size_t b = 0; b < x->n_remote_bridgeheads; b++)
				k |= strcmp(x->remote_bridgeheads[b]->server, s) == 0 &&
				             strcmp(x->remote_bridgeheads[b]->virtual_server, vs) ==
				                 0
				         ? MM_SIM_BRIDGEHEAD
				         : 0;
		}
	}
	return k;
}

static bool org_smart_host(void *ctx, const char *connector)
{
	struct sim_world *w = ctx;
	const struct mm_table *t = &w->dir.table;
	for (size_t g = 0; g < t->n; g++)
		for (size_t i = 0; i < t->entries[g]->n_connectors; i++) {
			const Mailmesh__Connector *x = t->entries[g]->connectors[i];
			if (strcmp(x->name, connector) == 0 && x->smart_host && x->smart_host[0])
				return true;
		}
	return false;
}

static bool org_setting_ok(void *ctx, const char *kv, char *why, size_t whylen)
{
	struct sim_world *w = ctx;
	if (sim_setting_known(w, kv))
		return true;
	snprintf(why, whylen, "no daemon has the setting %.*s (meshnode --help, rgmaster --help)",
	         (int)strcspn(kv, "="), kv);
	return false;
}

/* live mode runs a sink at every smart host: an IPv4 address it can
 * listen on (a name would have to be resolved to one of ours) */
static bool smart_hosts_ok(struct sim_world *w, char *err, size_t errlen)
{
	const struct mm_table *t = &w->dir.table;
	for (size_t g = 0; g < t->n; g++)
		for (size_t i = 0; i < t->entries[g]->n_connectors; i++) {
			const Mailmesh__Connector *x = t->entries[g]->connectors[i];
			if (x->smart_host == NULL || x->smart_host[0] == '\0')
				continue;
			char host[64];
			const char *sh = x->smart_host, *colon = strrchr(sh, ':');
			size_t n = colon ? (size_t)(colon - sh) : strlen(sh);
			if (sh[0] == '[' && n >= 2 && sh[n - 1] == ']') {
				sh++;
				n -= 2;
			}
			snprintf(host, sizeof(host), "%.*s", (int)n, sh);
			struct in_addr a;
			if (inet_pton(AF_INET, host, &a) != 1) {
				snprintf(err, errlen,
				         "connector %s's smart host %s: live mode runs its sinks "
				         "on IPv4 "
				         "addresses only ([a.b.c.d]:port)",
				         x->name, x->smart_host);
				return false;
			}
		}
	return true;
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "run") != 0)
		return usage();
	const char *file = argv[2], *report = NULL;
	bool model = false;
	uint64_t seed = 1;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--live") == 0)
			model = false;
		else if (strcmp(argv[i], "--model") == 0)
			model = true;
		else if (strcmp(argv[i], "--check-determinism") == 0)
			; /* a model-mode check: live runs are not deterministic */
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(argv[++i], &end, 10);
			if (errno || *end || argv[i][0] == '\0' || argv[i][0] == '-')
				return usage();
			seed = v;
		} else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc)
			report = argv[++i];
		else
			return usage();
	}
	char err[2048];
	size_t len;
	char *text = read_file(file, &len, err, sizeof(err));
	if (text == NULL) {
		fprintf(stderr, "meshsim: %s\n", err);
		return EX_USAGE; /* the operand names no scenario to read */
	}
	struct mm_scenario sc;
	bool ok = mm_scenario_parse(&sc, file, text, len, err, sizeof(err));
	free(text);
	if (!ok) {
		fprintf(stderr, "%s\n", err);
		mm_scenario_free(&sc);
		return EX_DATAERR;
	}
	struct sim_world w = {.sc = &sc, .seed = seed, .lock_fd = -1};
	char *fdup = mm_xstrdup(file);
	w.scenario_dir = mm_xstrdup(dirname(fdup));
	free(fdup);
	if (sc.org[0] == '/')
		w.org_path = mm_xstrdup(sc.org);
	else {
		char p[PATH_MAX + 8];
		snprintf(p, sizeof(p), "%s/%s", w.scenario_dir, sc.org);
		w.org_path = mm_xstrdup(p);
	}
	int rc = EX_OK;
	char spec[PATH_MAX + 16];
	snprintf(spec, sizeof(spec), "ldif:%s", w.org_path);
	struct mm_diag diag = {0};
	enum mm_load_status st = mm_directory_load(spec, &w.dir, &diag);
	if (st != MM_LOAD_OK) {
		fprintf(stderr, "%s:%u: org %s: the directory does not load:\n", file, sc.org_line,
		        sc.org);
		mm_diag_print(&diag, stderr);
		rc = EX_DATAERR;
		goto out;
	}
	w.bin_meshnode = find_binary("meshnode", "node");
	w.bin_rgmaster = find_binary("rgmaster", "rgmaster");
	w.bin_meshctl = find_binary("meshctl", "cli");
	if (!w.bin_meshnode || !w.bin_rgmaster || !w.bin_meshctl) {
		fprintf(stderr, "meshsim: %s not found beside meshsim nor on PATH\n",
		        !w.bin_meshnode   ? "meshnode"
		        : !w.bin_rgmaster ? "rgmaster"
		                          : "meshctl");
		rc = EX_UNAVAILABLE;
		goto out;
	}
	sim_world_keys(&w);
	struct mm_scenario_org org = {.ctx = &w,
	                              .kinds = org_kinds,
	                              .smart_host = org_smart_host,
	                              .setting_ok = org_setting_ok};
	if (!mm_scenario_resolve(&sc, &org, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		rc = EX_DATAERR;
		goto out;
	}
	if (model) {
		fprintf(stderr,
		        "meshsim: --model: the model mode is not built yet; run with --live\n");
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (!smart_hosts_ok(&w, err, sizeof(err))) {
		fprintf(stderr, "%s:%u: org %s: %s\n", file, sc.org_line, sc.org, err);
		rc = EX_DATAERR;
		goto out;
	}
	for (size_t i = 0; i < sc.nsteps; i++)
		if (sc.steps[i].verb == MM_SIM_SET) {
			w.settings = mm_xrealloc(w.settings, w.nsettings + 1, sizeof(*w.settings));
			w.settings[w.nsettings++] = sc.steps[i].setting;
		}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL); /* a closed terminal: clean up as for SIGTERM */
	signal(SIGPIPE, SIG_IGN);
	rc = sim_run_live(&w, report);
out:
	mm_diag_free(&diag);
	mm_directory_free(&w.dir);
	sim_world_free(&w);
	mm_scenario_free(&sc);
	return rc;
}

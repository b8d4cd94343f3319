/* rgmaster: a routing group master candidate (docs/rgmaster.md).
 *
 *   rgmaster --directory SPEC --name MASTER --state DIR [--tls DIR]
 *            [--set KEY=VALUE]... [--log FILE]
 *
 * Loads the directory, reads its incarnation from --state, listens on its
 * candidate's mmRoutingAddress (TCP 691, mutual TLS 1.3), prints "ready",
 * and drives the master machine (master.h) on libevent until SIGTERM. The
 * machine decides everything; this file and rgm_env.c only carry events
 * to it and its actions to the world. Exit codes follow sysexits. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <time.h>

#include "alloc.h"
#include "directory.h"
#include "rgm.h"

/* --- the log -------------------------------------------------------------- */

static FILE *logf_;

int64_t rgm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rgm_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-12-01T06:57:13.174Z rgmaster: MESSAGE", as meshnode's */
void rgm_log(const char *fmt, ...)
{
	FILE *f = logf_ ? logf_ : stderr;
	int64_t ms = rgm_wall_ms();
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	char when[40];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "%s.%03dZ rgmaster: ", when, (int)(ms % 1000));
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}

/* --- settings ------------------------------------------------------------- */

static const struct {
	const char *name;
	size_t off;
	uint64_t def, lo, hi; /* the value must lie in [lo, hi] */
	const char *help;
} settings[] = {
#define S(n, d, lo, hi, h)                                         \
	{                                                          \
#n, offsetof(struct rgm_settings, n), d, lo, hi, h \
	}
    S(ping_interval_ms, 1000, 1, 3600000, "Ping after this long without sending"),
    S(dead_after, 3, 1, 1000, "intervals of silence before a connection is dead"),
    S(probe_interval_ms, 5000, 1, 86400000, "DigestProbe to every member and candidate"),
    S(settle_ms, 2000, 0, 86400000, "a returning better candidate waits this long"),
    S(retry_ms, 1000, 1, 3600000, "redial a candidate; retry a failed persist"),
    S(insecure, 0, 0, 1, "1: routing traffic without TLS (tests of the plain path only)"),
    S(conn_max, MM_NET_CONN_MAX, 1, 1000000,
      "connections from addresses outside the directory, at most"),
    S(conn_per_address, MM_NET_CONN_PER_ADDRESS, 1, 1000000,
      "connections from one address (each server or master there)"),
#undef S
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

void rgm_settings_default(struct rgm_settings *s)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		*(uint64_t *)((char *)s + settings[i].off) = settings[i].def;
}

bool rgm_settings_set(struct rgm_settings *s, const char *kv, char *err, size_t errlen)
{
	const char *eq = strchr(kv, '=');
	if (eq == NULL) {
		snprintf(err, errlen, "--set %s: want KEY=VALUE", kv);
		return false;
	}
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (strlen(settings[i].name) != (size_t)(eq - kv) ||
		    strncmp(settings[i].name, kv, (size_t)(eq - kv)) != 0)
			continue;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(eq + 1, &end, 10);
		if (eq[1] == '\0' || *end != '\0' || errno != 0 || eq[1] == '-') {
			snprintf(err, errlen, "--set %s: not a number", kv);
			return false;
		}
		if (v < settings[i].lo || v > settings[i].hi) {
			snprintf(err, errlen, "--set %s: out of range [%llu, %llu]", kv,
			         (unsigned long long)settings[i].lo,
			         (unsigned long long)settings[i].hi);
			return false;
		}
		*(uint64_t *)((char *)s + settings[i].off) = v;
		return true;
	}
	snprintf(err, errlen, "--set %.*s: unknown setting (see --help)", (int)(eq - kv), kv);
	return false;
}

void rgm_settings_help(FILE *f)
{
	fprintf(f, "settings (--set KEY=VALUE):\n");
	for (size_t i = 0; i < NSETTINGS; i++)
		fprintf(f, "  %-18s %8llu  [%llu, %llu] %s\n", settings[i].name,
		        (unsigned long long)settings[i].def, (unsigned long long)settings[i].lo,
		        (unsigned long long)settings[i].hi, settings[i].help);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rgmaster --directory ldif:PATH|ldap://HOST:PORT/BASE --name MASTER\n"
	           "                --state DIR [--tls DIR] [--log FILE] [--set KEY=VALUE]...\n\n");
	rgm_settings_help(f);
}

/* --- the directory -------------------------------------------------------- */

static int load_directory(const char *spec, struct mm_directory *dir, const char *what)
{
	struct mm_diag diag = {0};
	enum mm_load_status st = mm_directory_load(spec, dir, &diag);
	if (st != MM_LOAD_OK && what) {
		/* a reload: every problem on its own line, said to be one */
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		if (m) {
			mm_diag_print(&diag, m);
			fclose(m);
			char *save = NULL;
			for (char *line = strtok_r(buf, "\n", &save); line;
			     line = strtok_r(NULL, "\n", &save))
				rgm_log("%s: %s", what, line);
			free(buf);
		}
	} else {
		mm_diag_print(&diag, logf_ ? logf_ : stderr);
	}
	mm_diag_free(&diag);
	switch (st) {
	case MM_LOAD_OK: return EX_OK;
	case MM_LOAD_BAD_DATA: return EX_DATAERR;
	case MM_LOAD_UNAVAILABLE: return EX_UNAVAILABLE;
	case MM_LOAD_USAGE: return EX_USAGE;
	case MM_LOAD_NOINPUT: return EX_NOINPUT;
	}
	return EX_SOFTWARE;
}

/* Our candidate entry: its group and routing address; NULL if none. */
static const Mailmesh__MasterCandidate *find_self(const struct mm_directory *dir, const char *name,
                                                  const char **group)
{
	for (size_t g = 0; g < dir->table.n; g++) {
		const mm_entry *e = dir->table.entries[g];
		for (size_t i = 0; i < e->n_masters; i++)
			if (strcmp(e->masters[i]->name, name) == 0) {
				*group = e->name;
				return e->masters[i];
			}
	}
	return NULL;
}

/* "ip:port" -> "ip:0": dialled connections leave from our own address, so
 * that a peer sees the candidate's routing IP */
static char *source_of(const char *address)
{
	const char *colon = strrchr(address, ':');
	size_t n = colon ? (size_t)(colon - address) : strlen(address);
	char *s = mm_xmalloc(n + 3);
	memcpy(s, address, n);
	memcpy(s + n, ":0", 3);
	return s;
}

/* --- signals -------------------------------------------------------------- */

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct rgm *r = arg;
	rgm_log("signal %d: stopping", (int)sig);
	/* every connection closes at once below; members notice and go to
	 * the next candidate, candidates take over */
	event_base_loopexit(r->base, NULL);
}

bool rgm_trust_load(struct rgm *r)
{
	char err[4096 + 256];
	struct mm_trust *t = mm_tls_trust(r->tls, err, sizeof(err));
	SSL_CTX *ctxs[] = {r->net.tls.accept, r->net.tls.dial};
	if (t == NULL || !mm_tls_apply_crl(ctxs, 2, r->tls, err, sizeof(err))) {
		rgm_log("--tls %s: %s", r->tls, err);
		mm_trust_free(t);
		return false;
	}
	if (r->m_ready)
		mm_master_trust(&r->m, t);
	mm_trust_free(r->trust);
	r->trust = t;
	/* a certificate revoked now is refused on what is open too */
	mm_net_recheck(&r->net);
	return true;
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what;
	struct rgm *r = arg;
	struct mm_directory dir;
	rgm_log("SIGHUP: reading the directory again");
	/* DESIGN §7a: crl.pem again; a revoked certificate is refused from
	 * the next handshake on, and a revoked master's entries dropped */
	if (r->tls && rgm_trust_load(r))
		rgm_log("reload: ca.pem%s in use", r->trust ? " and crl.pem (if any)" : "");
	if (load_directory(r->dirspec, &dir, "reload") != EX_OK) {
		rgm_log("reload: the directory does not load; the one in use stays");
		mm_directory_free(&dir);
		return;
	}
	const char *group = NULL;
	const Mailmesh__MasterCandidate *self = find_self(&dir, r->name, &group);
	if (mm_master_directory(&r->m, &dir)) {
		mm_net_directory_table(&r->net, &dir.table);
		free(r->org);
		r->org = mm_xstrdup(dir.org ? dir.org : "");
		if (self && strcmp(self->routing_address, r->address) != 0)
			rgm_log("reload: %s's mmRoutingAddress is now %s; this daemon listens on "
			        "%s until it is restarted",
			        r->name, self->routing_address, r->address);
		rgm_log("reload: directory in use");
	} else {
		rgm_log("reload: refused by the master; the directory in use stays");
	}
	mm_directory_free(&dir);
}

/* --- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"directory", required_argument, NULL, 'd'},
	    {"name", required_argument, NULL, 'n'},
	    {"state", required_argument, NULL, 's'},
	    {"tls", required_argument, NULL, 't'},
	    {"set", required_argument, NULL, 'S'},
	    {"log", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct rgm rgm = {0}, *r = &rgm;
	struct rgm_settings set;
	rgm_settings_default(&set);
	const char *tls = NULL, *logpath = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char err[256];
		switch (c) {
		case 'd': r->dirspec = optarg; break;
		case 'n': r->name = optarg; break;
		case 's': r->state_dir = optarg; break;
		case 't': tls = optarg; break;
		case 'l': logpath = optarg; break;
		case 'S':
			if (!rgm_settings_set(&set, optarg, err, sizeof(err))) {
				fprintf(stderr, "rgmaster: %s\n", err);
				return EX_USAGE;
			}
			break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind != argc || !r->dirspec || !r->name || !r->state_dir) {
		if (optind != argc)
			fprintf(stderr, "rgmaster: stray operand %s\n", argv[optind]);
		else
			fprintf(stderr, "rgmaster: --directory, --name and --state are required\n");
		usage(stderr);
		return EX_USAGE;
	}
	if (tls == NULL && !set.insecure) {
		fprintf(stderr, "rgmaster: routing traffic needs --tls DIR (--set insecure=1 runs "
		                "without it, for tests of the plain path only)\n");
		return EX_USAGE;
	}
	if (tls != NULL && set.insecure) {
		fprintf(stderr, "rgmaster: --tls and --set insecure=1 exclude each other\n");
		return EX_USAGE;
	}
	if (logpath && (logf_ = fopen(logpath, "a")) == NULL) {
		fprintf(stderr, "rgmaster: --log %s: %s\n", logpath, strerror(errno));
		return EX_CANTCREAT;
	}
	int status = EX_SOFTWARE;
	if (tls) {
		/* before anything else: a daemon never runs beside the CA's key */
		char err[4096 + 256];
		if (!mm_tls_check_dir(tls, err, sizeof(err))) {
			rgm_log("--tls %s: %s; not starting", tls, err);
			status = EX_CONFIG;
			goto out_log;
		}
		r->tls = tls;
	}
	signal(SIGPIPE, SIG_IGN);

	struct mm_directory dir;
	status = load_directory(r->dirspec, &dir, NULL);
	if (status != EX_OK) {
		mm_directory_free(&dir);
		goto out_log;
	}
	const char *group = NULL;
	const Mailmesh__MasterCandidate *self = find_self(&dir, r->name, &group);
	if (self == NULL) {
		rgm_log("--name %s: no master candidate (mmMaster) of that name in the directory",
		        r->name);
		mm_directory_free(&dir);
		status = EX_DATAERR;
		goto out_log;
	}
	r->address = mm_xstrdup(self->routing_address);
	r->org = mm_xstrdup(dir.org ? dir.org : "");
	uint64_t persisted = 0;
	char err[4096 + 256];
	status = rgm_state_read(r->state_dir, &persisted, err, sizeof(err));
	if (status != EX_OK) {
		rgm_log("%s", err);
		mm_directory_free(&dir);
		free(r->address);
		free(r->org);
		goto out_log;
	}
	if (getrandom(&r->rnd, sizeof(r->rnd), 0) != sizeof(r->rnd) || r->rnd == 0)
		r->rnd = (uint64_t)rgm_now_ms() | 1;

	r->base = event_base_new();
	struct mm_net_ops ops;
	rgm_net_ops(r, &ops);
	if (!mm_net_init(&r->net, r->base, &ops, tls, r->name, set.insecure != 0, err,
	                 sizeof(err))) {
		rgm_log("--tls %s: %s", tls ? tls : "(none)", err);
		mm_directory_free(&dir);
		status = EX_CONFIG;
		goto out;
	}
	r->net_ready = true;
	if (tls && !mm_signer_load(&r->signer, tls, r->name, err, sizeof(err))) {
		rgm_log("--tls %s: %s; not starting", tls, err);
		mm_directory_free(&dir);
		status = EX_CONFIG;
		goto out;
	}
	if (tls && !rgm_trust_load(r)) {
		mm_directory_free(&dir);
		status = EX_CONFIG;
		goto out;
	}
	/* a connection gets one dead interval to be made and its TLS done,
	 * as it gets one for its Hello (docs/protocol.md, "Liveness") */
	uint64_t dead = set.ping_interval_ms * set.dead_after;
	r->net.handshake_ms = (uint32_t)(dead < 1000 ? 1000 : dead > 60000 ? 60000 : dead);
	r->net.conn_max = (uint32_t)set.conn_max;
	r->net.conn_per_address = (uint32_t)set.conn_per_address;
	/* the members and the other candidates have room kept at the listener */
	mm_net_directory_table(&r->net, &dir.table);
	char *src = source_of(r->address);
	mm_net_bind_source(&r->net, src);
	free(src);

	struct mm_master_conf conf;
	mm_master_conf_default(&conf);
	conf.ping_interval_ms = (uint32_t)set.ping_interval_ms;
	conf.dead_after = (uint32_t)set.dead_after;
	conf.probe_interval_ms = (uint32_t)set.probe_interval_ms;
	conf.settle_ms = (uint32_t)set.settle_ms;
	conf.retry_ms = (uint32_t)set.retry_ms;
	struct mm_master_env env;
	rgm_env(r, &env);
	mm_master_init(&r->m, &conf, &env, r->name);
	mm_master_trust(&r->m, r->trust);
	r->m_ready = true;

	if (!mm_net_listen(&r->net, r->address, err, sizeof(err))) {
		rgm_log("%s", err);
		mm_directory_free(&dir);
		status = EX_UNAVAILABLE;
		goto out;
	}
	/* no event reaches the machine before the loop runs: start it after
	 * the listener, so the other candidates can answer our dials */
	if (!mm_master_start(&r->m, &dir, persisted)) {
		mm_directory_free(&dir);
		status = EX_DATAERR;
		goto out;
	}
	mm_directory_free(&dir);

	struct event *sig_term = evsignal_new(r->base, SIGTERM, stop_cb, r);
	struct event *sig_int = evsignal_new(r->base, SIGINT, stop_cb, r);
	struct event *sig_hup = evsignal_new(r->base, SIGHUP, hup_cb, r);
	event_add(sig_term, NULL);
	event_add(sig_int, NULL);
	event_add(sig_hup, NULL);
	rgm_log("master %s of group %s: listening on %s%s, state %s", r->name, r->m.group,
	        r->address, tls ? " (TLS)" : " (insecure: plain TCP)", r->state_dir);
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(r->base);
	status = EX_OK;
	event_free(sig_term);
	event_free(sig_int);
	event_free(sig_hup);
out:
	/* the listener and every connection close here; the machine holds no
	 * socket, so its state simply goes */
	if (r->m_ready)
		mm_master_free(&r->m);
	if (r->net_ready)
		mm_net_free(&r->net);
	mm_trust_free(r->trust);
	mm_signer_free(&r->signer);
	rgm_env_free(r);
	if (r->base)
		event_base_free(r->base);
	free(r->address);
	free(r->org);
out_log:
	if (logf_)
		fclose(logf_);
	return status;
}

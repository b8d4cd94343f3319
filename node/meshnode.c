/* meshnode: one server of the organization (DESIGN §6, §7a).
 *
 *   meshnode --directory SPEC --server NAME --spool DIR [--tls DIR]
 *            [--dns IP:PORT] [--set KEY=VALUE]... [--log FILE]
 *
 * Loads the directory, replays the spool, starts the routing engine
 * (routing.c: with --tls or insecure=1), binds every virtual server of
 * NAME, prints "ready", and runs the libevent loop until SIGTERM. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "date.h"
#include "node.h"

static FILE *logf_;

void node_log(const char *fmt, ...)
{
	FILE *f = logf_ ? logf_ : stderr;
	char when[32];
	mm_date_iso8601_ms(node_wall_ms(), when);
	fprintf(f, "%s meshnode: ", when);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}

int64_t node_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t node_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: retry jitter and nothing that needs secrecy */
uint32_t node_random(struct node *n)
{
	uint64_t x = n->rnd;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	n->rnd = x;
	return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: meshnode --directory ldif:PATH|ldap://HOST:PORT/BASE --server NAME\n"
	           "                --spool DIR [--tls DIR] [--dns IP:PORT] [--log FILE]\n"
	           "                [--set KEY=VALUE]...\n\n");
	mm_settings_help(f);
}

static void spool_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct node *n = arg;
	int err;
	uint64_t durable = mm_spool_durable(&n->spool, &err);
	if (err != 0) {
		/* after a failed fdatasync the state of the file is unknown (the
		 * page cache may have dropped the data): promise nothing more,
		 * and stop with EX_IOERR */
		node_log("fdatasync of the queue failed: %s; stopping", strerror(err));
		mm_qm_sync_failed(&n->qm, err);
		node_answer_commits(n);
		n->exit_status = EX_IOERR;
		n->stopping = true;
		mm_qm_stop(&n->qm);
		node_stop_listening(n);
		/* a moment for the 451s to go out, as at SIGTERM */
		struct timeval grace = {0, 300000};
		event_base_loopexit(n->base, &grace);
		return;
	}
	mm_qm_durable(&n->qm, durable);
	node_answer_commits(n);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct node *n = arg;
	mm_qm_tick(&n->qm);
	if (n->track)
		fflush(n->track);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct node *n = arg;
	node_log("signal %d: stopping", (int)sig);
	if (n->stopping)
		return;
	n->stopping = true;
	mm_qm_stop(&n->qm);
	routing_stop(n);
	node_stop_listening(n);
	/* what is written is made durable and answered 250 now, so that its
	 * clients do not send it again; every other session hears 421 and
	 * tries again later. A moment for those replies to go out, then out. */
	if (mm_spool_sync_now(&n->spool) == 0) {
		mm_qm_durable(&n->qm, n->spool.lsn);
		node_answer_commits(n);
	}
	node_say_goodbye(n);
	struct timeval grace = {0, 300000};
	event_base_loopexit(n->base, &grace);
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what;
	node_reload(arg);
}

static void recovered(void *ctx, const struct mm_spool_msg *sm)
{
	struct node *n = ctx;
	mm_qm_recovered(&n->qm, sm);
}

static bool load_directory(struct node *n, struct mm_directory *dir, int *status)
{
	struct mm_diag diag = {0};
	enum mm_load_status st = mm_directory_load(n->dirspec, dir, &diag);
	mm_diag_print(&diag, logf_ ? logf_ : stderr);
	mm_diag_free(&diag);
	switch (st) {
	case MM_LOAD_OK: return true;
	case MM_LOAD_BAD_DATA: *status = EX_DATAERR; break;
	case MM_LOAD_UNAVAILABLE: *status = EX_UNAVAILABLE; break;
	case MM_LOAD_USAGE: *status = EX_USAGE; break;
	case MM_LOAD_NOINPUT: *status = EX_NOINPUT; break;
	}
	mm_directory_free(dir);
	return false;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"directory", required_argument, NULL, 'd'},
	    {"server", required_argument, NULL, 's'},
	    {"spool", required_argument, NULL, 'q'},
	    {"tls", required_argument, NULL, 't'},
	    {"dns", required_argument, NULL, 'n'},
	    {"set", required_argument, NULL, 'S'},
	    {"log", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct node node = {0}, *n = &node;
	mm_settings_default(&n->set);
	const char *tls = NULL, *dns = NULL, *logpath = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char err[256];
		switch (c) {
		case 'd': n->dirspec = optarg; break;
		case 's': n->self = optarg; break;
		case 'q': n->spool_dir = optarg; break;
		case 't': tls = optarg; break;
		case 'n': dns = optarg; break;
		case 'l': logpath = optarg; break;
		case 'S':
			if (!mm_settings_set(&n->set, optarg, err, sizeof(err))) {
				fprintf(stderr, "meshnode: %s\n", err);
				return EX_USAGE;
			}
			break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind != argc || !n->dirspec || !n->self || !n->spool_dir) {
		usage(stderr);
		return EX_USAGE;
	}
	if (logpath && (logf_ = fopen(logpath, "a")) == NULL) {
		fprintf(stderr, "meshnode: --log %s: %s\n", logpath, strerror(errno));
		return EX_CANTCREAT;
	}
	if (tls) {
		/* before anything else: a daemon never runs beside the CA's key */
		char err[4096 + 256];
		if (!mm_tls_check_dir(tls, err, sizeof(err))) {
			node_log("--tls %s: %s; not starting", tls, err);
			return EX_CONFIG;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	int status = EX_SOFTWARE;
	struct mm_directory dir;
	if (!load_directory(n, &dir, &status))
		return status;
	if (getrandom(&n->rnd, sizeof(n->rnd), 0) != sizeof(n->rnd) || n->rnd == 0)
		n->rnd = (uint64_t)node_now_ms() | 1;
	n->base = event_base_new();
	if (!node_configure(n, &dir)) {
		mm_directory_free(&dir);
		status = EX_DATAERR;
		goto out;
	}
	if (tls) {
		char err[512];
		if (!mm_tls_init(&n->tls, tls, n->self, err, sizeof(err))) {
			node_log("--tls %s: %s", tls, err);
			status = EX_CONFIG;
			goto out;
		}
		n->tls_dir = tls;
		for (size_t i = 0; i < n->nvs; i++)
			n->vs[i].conf.starttls = true;
	}
	const char *dns_err;
	if ((n->dns = mm_dns_new(n->base, dns, &dns_err)) == NULL) {
		node_log("--dns %s: %s", dns ? dns : "(resolv.conf)", dns_err);
		status = EX_USAGE;
		goto out;
	}
	struct mm_qm_conf qc = {.retry_min_ms = (uint32_t)n->set.retry_min_ms,
	                        .retry_max_ms = (uint32_t)n->set.retry_max_ms,
	                        .retry_jitter_pct = (uint32_t)n->set.retry_jitter_pct,
	                        .glitch_count = (uint32_t)n->set.glitch_retry_count,
	                        .glitch_interval_ms = (uint32_t)n->set.glitch_retry_interval_ms,
	                        .dest_concurrency = (uint32_t)n->set.dest_concurrency,
	                        .expire_s = n->set.expire_s,
	                        .mx_cache_ms = 300000,
	                        .session_idle_ms = (uint32_t)n->set.connection_cache_ms,
	                        .back_hold_ms = (uint32_t)n->set.reroute_hold_ms,
	                        .local_batch = 64,
	                        .compact_after_ms = (int64_t)n->set.compact_after_s * 1000,
	                        .org_tls = n->tls.server != NULL};
	struct mm_qm_env env;
	node_env(n, &env);
	mm_qm_init(&n->qm, &qc, &env, n->self, n->fqdn);
	n->qm_ready = true;
	mm_qm_table_changed(&n->qm, &n->dir, &n->router);
	n->later_ev = event_new(n->base, -1, 0, node_later, n);
	size_t sl = strlen(n->spool_dir);
	n->mailstore = mm_xmalloc(sl + sizeof("/mailstore"));
	snprintf(n->mailstore, sl + sizeof("/mailstore"), "%s/mailstore", n->spool_dir);
	const char *what;
	int e = mm_spool_open(&n->spool, n->spool_dir, recovered, n, &what);
	if (e != 0) {
		node_log("spool %s: cannot %s: %s", n->spool_dir, what, strerror(e));
		status = e == EIO ? EX_IOERR : EX_CANTCREAT;
		goto out;
	}
	n->spool.id_salt = (uint8_t)mm_strhash(n->self);
	char tpath[4096];
	snprintf(tpath, sizeof(tpath), "%s/tracking.log", n->spool_dir);
	if (track_open(n, tpath) != 0) {
		node_log("%s: %s", tpath, strerror(errno));
		status = EX_CANTCREAT;
		goto out;
	}
	/* the table (SPOOL/table) and 691, before anything is routed */
	if ((e = routing_start(n, tls)) != EX_OK) {
		status = e;
		goto out;
	}
	/* ca.pem and crl.pem: the entries the member takes are checked, and a
	 * revoked certificate is refused, from the first event on */
	if (!routing_trust_load(n)) {
		status = EX_CONFIG;
		goto out;
	}
	n->spool_ev = event_new(n->base, n->spool.event_fd, EV_READ | EV_PERSIST, spool_cb, n);
	event_add(n->spool_ev, NULL);
	n->tick_ev = event_new(n->base, -1, EV_PERSIST, tick_cb, n);
	struct timeval second = {1, 0};
	event_add(n->tick_ev, &second);
	n->sig_term = evsignal_new(n->base, SIGTERM, stop_cb, n);
	n->sig_int = evsignal_new(n->base, SIGINT, stop_cb, n);
	n->sig_hup = evsignal_new(n->base, SIGHUP, hup_cb, n);
	event_add(n->sig_hup, NULL);
	event_add(n->sig_term, NULL);
	event_add(n->sig_int, NULL);
	if (node_listen(n) != 0) {
		status = EX_UNAVAILABLE;
		goto out;
	}
	if (control_open(n) != 0) {
		status = EX_CANTCREAT;
		goto out;
	}
	mm_qm_start(&n->qm);
	node_log("server %s: %zu virtual server(s) up, spool %s", n->self, n->nvs, n->spool_dir);
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(n->base);
	status = n->exit_status;
out:
	n->stopping = true;
	node_stop_listening(n);
	control_close(n);
	node_close_sessions(n);
	relay_free_all(n);
	mm_dns_free(n->dns);
	if (n->qm_ready)
		mm_qm_free(&n->qm);
	routing_free(n);
	node_env_free(n);
	if (n->spool_ev)
		event_free(n->spool_ev);
	if (n->later_ev)
		event_free(n->later_ev);
	if (n->tick_ev)
		event_free(n->tick_ev);
	if (n->sig_term)
		event_free(n->sig_term);
	if (n->sig_int)
		event_free(n->sig_int);
	if (n->sig_hup)
		event_free(n->sig_hup);
	if (n->spool.dir)
		mm_spool_close(&n->spool);
	if (n->track)
		fclose(n->track);
	node_config_free(n);
	mm_buf_free(&n->track_early);
	free(n->ips);
	free(n->fqdn);
	free(n->mailstore);
	mm_tls_free(&n->tls);
	mm_trust_free(n->trust);
	event_base_free(n->base);
	if (logf_)
		fclose(logf_);
	return status;
}

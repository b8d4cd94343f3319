/* The daemons of a live run (world.h): the run's directory, its copy of
 * the directory, the org CA and a --tls directory per daemon, and each
 * rgmaster and meshnode as a child that dies with meshsim
 * (PR_SET_PDEATHSIG), started with the fast settings and the scenario's
 * set lines, and waited for until it prints `ready`. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "world.h"

#define READY_TIMEOUT_MS 30000
#define LOCK_PATH        "/tmp/meshsim.lock"

extern volatile sig_atomic_t sim_interrupted; /* meshsim.c */

int64_t sim_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sim_sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

struct child {
	pid_t pid;
	int fd; /* -1: read to its end */
	char *buf;
	size_t len, cap;
};

static void spawn(char *const argv[], struct child *c)
{
	int p[2];
	*c = (struct child){.pid = -1, .fd = -1, .cap = 4096};
	c->buf = mm_xmalloc(c->cap);
	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	c->pid = pid;
	c->fd = p[0];
}

int sim_run_many(char **const argvs[], size_t n, char **outs, int64_t timeout_ms, int *rcs)
{
	struct child *c = mm_xcalloc(n ? n : 1, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		spawn(argvs[i], &c[i]);
	struct pollfd *pf = mm_xcalloc(n ? n : 1, sizeof(*pf));
	int64_t deadline = sim_now_ms() + timeout_ms;
	for (;;) {
		size_t open_ = 0;
		for (size_t i = 0; i < n; i++) {
			pf[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
			open_ += c[i].fd >= 0;
		}
		int64_t left = deadline - sim_now_ms();
		if (open_ == 0 || left <= 0)
			break;
		if (poll(pf, n, (int)left) <= 0)
			continue; /* EINTR, or the deadline: looked at above */
		for (size_t i = 0; i < n; i++) {
			if (c[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (c[i].len + 4096 > c[i].cap)
				c[i].buf = mm_xrealloc(c[i].buf, c[i].cap *= 2, 1);
			ssize_t r = read(c[i].fd, c[i].buf + c[i].len, c[i].cap - c[i].len - 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(c[i].fd);
				c[i].fd = -1;
			} else {
				c[i].len += (size_t)r;
			}
		}
	}
	int worst = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].fd >= 0) { /* past the deadline */
			close(c[i].fd);
			if (c[i].pid > 0)
				kill(c[i].pid, SIGKILL);
		}
		int st = 0, rc = -1;
		if (c[i].pid > 0) {
			while (waitpid(c[i].pid, &st, 0) < 0 && errno == EINTR)
				;
			rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		c[i].buf[c[i].len] = '\0';
		outs[i] = c[i].buf;
		if (rcs)
			rcs[i] = rc;
		if (rc != 0)
			worst = rc;
	}
	free(pf);
	free(c);
	return worst;
}

int sim_run_capture(char *const argv[], char **out, int64_t timeout_ms)
{
	char **const argvs[] = {(char **)argv};
	int rc;
	sim_run_many(argvs, 1, out, timeout_ms, &rc);
	return rc;
}

static bool run_quiet(char *const argv[], char *err, size_t errlen)
{
	char *out;
	int rc = sim_run_capture(argv, &out, 60000);
	free(out);
	if (rc != 0)
		snprintf(err, errlen, "%s %s: exit %d", argv[0], argv[1], rc);
	return rc == 0;
}

/* "ip:port" or "[v6]:port" into its IP */
static void host_of(const char *hostport, char *ip, size_t len)
{
	const char *colon = strrchr(hostport, ':');
	size_t n = colon ? (size_t)(colon - hostport) : strlen(hostport);
	if (n > 1 && hostport[0] == '[') {
		hostport++;
		n -= 2;
	}
	snprintf(ip, len, "%.*s", (int)n, hostport);
}

static void add_addr(struct sim_daemon *d, const char *hostport)
{
	char ip[48];
	host_of(hostport, ip, sizeof(ip));
	for (size_t i = 0; i < d->naddrs; i++)
		if (strcmp(d->addrs[i], ip) == 0)
			return;
	if (d->naddrs < SIM_MAX_ADDRS)
		snprintf(d->addrs[d->naddrs++], sizeof(d->addrs[0]), "%s", ip);
}

static void daemons_of(struct sim_world *w)
{
	const struct mm_table *t = &w->dir.table;
	for (size_t g = 0; g < t->n; g++) {
		const mm_entry *e = t->entries[g];
		for (size_t i = 0; i < e->n_masters; i++) {
			w->d = mm_xrealloc(w->d, w->nd + 1, sizeof(*w->d));
			struct sim_daemon *d = &w->d[w->nd++];
			*d = (struct sim_daemon){.name = mm_xstrdup(e->masters[i]->name),
			                         .group = mm_xstrdup(e->name),
			                         .kind = SIM_MASTER};
			snprintf(d->routing, sizeof(d->routing), "%s",
			         e->masters[i]->routing_address);
			add_addr(d, d->routing);
		}
		for (size_t i = 0; i < e->n_servers; i++) {
			const Mailmesh__Server *s = e->servers[i];
			w->d = mm_xrealloc(w->d, w->nd + 1, sizeof(*w->d));
			struct sim_daemon *d = &w->d[w->nd++];
			*d = (struct sim_daemon){.name = mm_xstrdup(s->name),
			                         .group = mm_xstrdup(e->name),
			                         .kind = SIM_SERVER};
			snprintf(d->routing, sizeof(d->routing), "%s", s->routing_address);
			add_addr(d, d->routing);
			for (size_t v = 0; v < s->n_virtual_servers; v++) {
				if (v == 0)
					snprintf(d->first_vs, sizeof(d->first_vs), "%s",
					         s->virtual_servers[v]->address);
				add_addr(d, s->virtual_servers[v]->address);
			}
		}
	}
}

struct sim_daemon *sim_daemon_find(struct sim_world *w, const char *name, enum mm_sim_kind kind)
{
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		bool k = kind == MM_SIM_ANY || (kind == MM_SIM_SERVER && d->kind == SIM_SERVER) ||
		         (kind == MM_SIM_MASTER && d->kind == SIM_MASTER);
		if (k && strcmp(d->name, name) == 0)
			return d;
	}
	return NULL;
}

/* The directory as the daemons read it: the scenario's organization, each
 * virtual server also relaying for 127.0.0.1 -- the simulator's own
 * submission client (`send`, DESIGN §8: no AUTH), and no one else. */
static bool write_ldif(struct sim_world *w, char *err, size_t errlen)
{
	FILE *in = fopen(w->org_path, "r");
	if (in == NULL) {
		snprintf(err, errlen, "%s: %s", w->org_path, strerror(errno));
		return false;
	}
	char path[600];
	snprintf(path, sizeof(path), "%s/org.ldif", w->work);
	FILE *out = fopen(path, "w");
	if (out == NULL) {
		fclose(in);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	char *line = NULL;
	size_t cap = 0;
	bool pending = false; /* an mmVirtualServer line was seen: add after its folds */
	ssize_t n;
	while ((n = getline(&line, &cap, in)) > 0) {
		if (pending && line[0] != ' ') {
			fputs("mmRelayAllow: 127.0.0.1/32\n", out);
			pending = false;
		}
		fputs(line, out);
		if (line[n - 1] != '\n')
			fputc('\n', out);
		if (strncasecmp(line, "objectClass:", 12) == 0) {
			const char *v = line + 12;
			while (*v == ' ')
				v++;
			pending = strncasecmp(v, "mmVirtualServer", 15) == 0 &&
			          (v[15] == '\n' || v[15] == '\r' || v[15] == ' ' || v[15] == '\0');
		}
	}
	if (pending)
		fputs("mmRelayAllow: 127.0.0.1/32\n", out);
	free(line);
	fclose(in);
	if (fclose(out) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	w->ldif = mm_xstrdup(path);
	return true;
}

static bool copy_file(const char *from, const char *to)
{
	char buf[8192];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return false;
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = out >= 0;
	ssize_t r;
	while (ok && (r = read(in, buf, sizeof(buf))) > 0)
		ok = write(out, buf, (size_t)r) == r;
	close(in);
	if (out >= 0 && close(out) != 0)
		ok = false;
	return ok;
}

/* names are unique per kind only: a master that shares its cn with a
 * server gets its certificate, --tls directory and log under names of
 * its own */
static bool shares_name(const struct sim_world *w, const struct sim_daemon *d)
{
	for (size_t i = 0; i < w->nd; i++)
		if (&w->d[i] != d && w->d[i].kind != d->kind && strcmp(w->d[i].name, d->name) == 0)
			return true;
	return false;
}

/* WORK/tls-LABEL: the CA of WORK/CA and NAME's pair from there */
static bool tls_dir(struct sim_world *w, const char *ca_dir, const char *name, const char *label,
                    char *dir, size_t len)
{
	char ca[600], a[600], b[600];
	snprintf(dir, len, "%s/tls-%s", w->work, label);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return false;
	snprintf(ca, sizeof(ca), "%s/%s/ca.pem", w->work, ca_dir);
	snprintf(a, sizeof(a), "%s/ca.pem", dir);
	if (!copy_file(ca, a))
		return false;
	const char *ext[] = {".pem", ".key"};
	for (int i = 0; i < 2; i++) {
		snprintf(a, sizeof(a), "%s/%s/%s%s", w->work, ca_dir, name, ext[i]);
		snprintf(b, sizeof(b), "%s/%s%s", dir, name, ext[i]);
		if (!copy_file(a, b))
			return false;
	}
	return true;
}

/* meshctl --directory SRC pki issue --dir WORK/CA_DIR for the daemons
 * `twin` selects (those sharing a name, or the others), and the admin */
static bool issue(struct sim_world *w, const char *ca_dir, bool twin, bool admin, char *err,
                  size_t errlen)
{
	char ca[600], src[700];
	snprintf(ca, sizeof(ca), "%s/%s", w->work, ca_dir);
	snprintf(src, sizeof(src), "ldif:%s", w->ldif);
	size_t n = 0;
	char **argv = mm_xcalloc(w->nd * 2 + 16, sizeof(*argv));
	argv[n++] = w->bin_meshctl;
	argv[n++] = "--directory";
	argv[n++] = src;
	argv[n++] = "pki";
	argv[n++] = "issue";
	argv[n++] = "--dir";
	argv[n++] = ca;
	size_t names = 0;
	for (size_t i = 0; i < w->nd; i++) {
		bool t = w->d[i].kind == SIM_MASTER && shares_name(w, &w->d[i]);
		if (t != twin)
			continue;
		argv[n++] = w->d[i].kind == SIM_SERVER ? "--server" : "--master";
		argv[n++] = w->d[i].name;
		names++;
	}
	if (admin) {
		argv[n++] = "--admin";
		argv[n++] = "meshsim";
	}
	bool ok = (names == 0 && !admin) || run_quiet(argv, err, errlen);
	free(argv);
	return ok;
}

static bool pki(struct sim_world *w, char *err, size_t errlen)
{
	char ca[600];
	snprintf(ca, sizeof(ca), "%s/ca", w->work);
	char *init[] = {w->bin_meshctl,
	                "pki",
	                "init",
	                "--dir",
	                ca,
	                "--org",
	                w->dir.org ? w->dir.org : "mailmesh",
	                NULL};
	if (!run_quiet(init, err, errlen) || !issue(w, "ca", false, true, err, errlen))
		return false;
	bool twins = false;
	for (size_t i = 0; i < w->nd; i++)
		twins |= w->d[i].kind == SIM_MASTER && shares_name(w, &w->d[i]);
	if (twins) {
		/* one issue refuses a name twice: the same CA in a second directory */
		char a[700], b[700];
		snprintf(a, sizeof(a), "%s/ca-masters", w->work);
		if (mkdir(a, 0700) != 0)
			return false;
		const char *files[] = {"ca.pem", "ca.key"};
		for (int i = 0; i < 2; i++) {
			snprintf(a, sizeof(a), "%s/ca/%s", w->work, files[i]);
			snprintf(b, sizeof(b), "%s/ca-masters/%s", w->work, files[i]);
			if (!copy_file(a, b))
				return false;
		}
		if (!issue(w, "ca-masters", true, false, err, errlen))
			return false;
	}
	char dir[600];
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		bool twin = d->kind == SIM_MASTER && shares_name(w, d);
		char label[300];
		snprintf(label, sizeof(label), "%s%s", twin ? "master-" : "", d->name);
		if (!tls_dir(w, twin ? "ca-masters" : "ca", d->name, label, d->tls,
		             sizeof(d->tls))) {
			snprintf(err, errlen, "%s: cannot make its --tls directory", d->name);
			return false;
		}
	}
	if (!tls_dir(w, "ca", "meshsim", "meshsim", dir, sizeof(dir))) {
		snprintf(err, errlen, "the admin's --tls directory");
		return false;
	}
	w->admin_tls = mm_xstrdup(dir);
	return true;
}

/* `DAEMON --help`'s settings: lines "  KEY  DEFAULT  [LO, HI] ..." */
static void keys_of(const char *bin, char ***keys, size_t *n)
{
	char *argv[] = {(char *)bin, "--help", NULL}, *out;
	sim_run_capture(argv, &out, 10000);
	for (char *save = NULL, *l = strtok_r(out, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		char key[64];
		unsigned long long def;
		if (sscanf(l, "  %63[a-z0-9_] %llu", key, &def) == 2) {
			*keys = mm_xrealloc(*keys, *n + 1, sizeof(**keys));
			(*keys)[(*n)++] = mm_xstrdup(key);
		}
	}
	free(out);
}

static bool has_key(char **keys, size_t n, const char *kv)
{
	size_t len = strcspn(kv, "=");
	for (size_t i = 0; i < n; i++)
		if (strlen(keys[i]) == len && strncmp(keys[i], kv, len) == 0)
			return true;
	return false;
}

int sim_live_setup(struct sim_world *w, char *err, size_t errlen)
{
	w->lock_fd = open(LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	bool got = w->lock_fd >= 0 && flock(w->lock_fd, LOCK_EX | LOCK_NB) == 0;
	if (!got && w->lock_fd >= 0 && errno == EWOULDBLOCK) {
		/* one run at a time: the addresses and the nftables table are shared */
		printf("meshsim: waiting for another meshsim run to end (%s)\n", LOCK_PATH);
		fflush(stdout);
		/* polled, not blocking: a signal between the test and a blocking
		 * flock would go unnoticed */
		while (!sim_interrupted && !(got = flock(w->lock_fd, LOCK_EX | LOCK_NB) == 0) &&
		       (errno == EWOULDBLOCK || errno == EINTR))
			sim_sleep_ms(100);
		if (!got && sim_interrupted)
			errno = EINTR;
	}
	if (!got) {
		snprintf(err, errlen, "%s: %s", LOCK_PATH, strerror(errno));
		return sim_interrupted ? 128 + (int)sim_interrupted : 69;
	}
	w->locked = true;
	char tmpl[] = "/tmp/meshsim.XXXXXX";
	if (mkdtemp(tmpl) == NULL) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		return 73;
	}
	chmod(tmpl, 0755);
	w->work = mm_xstrdup(tmpl);
	daemons_of(w);
	if (!write_ldif(w, err, errlen) || !pki(w, err, errlen))
		return 70;
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		snprintf(d->dir, sizeof(d->dir), "%s/%s-%s", w->work,
		         d->kind == SIM_SERVER ? "spool" : "state", d->name);
		snprintf(d->log, sizeof(d->log), "%s/%s%s.log", w->work,
		         d->kind == SIM_MASTER && shares_name(w, d) ? "master-" : "", d->name);
	}
	if (!sim_nft_init(w, err, errlen))
		return 69;
	if (!sim_sinks_start(w, err, errlen))
		return 69;
	return 0;
}

/* DESIGN §8's fast timers, under the scenario's set lines; and on
 * loopback a connection is made in microseconds or never (a cut drops the
 * SYN), so a connect waits 1 s and a reply 10 s, not the defaults' 30 s
 * and minutes that would hide a cut behind a timeout */
static const char *const fast[] = {
    "ping_interval_ms=200",    "glitch_retry_interval_ms=200",
    "glitch_retry_count=2",    "down_probe_interval_ms=500",
    "retry_min_ms=500",        "reroute_hold_ms=500",
    "probe_interval_ms=1000",  "xlink_digest_interval_ms=1000",
    "damp_half_life_ms=10000", "connect_timeout_ms=1000",
    "reply_timeout_s=10",
};

bool sim_daemon_start(struct sim_world *w, struct sim_daemon *d, char *err, size_t errlen)
{
	if (d->pid > 0)
		return true;
	char src[700];
	snprintf(src, sizeof(src), "ldif:%s", w->ldif);
	size_t n = 0, nfast = sizeof(fast) / sizeof(fast[0]);
	char **argv = mm_xcalloc(16 + 2 * (nfast + w->nsettings), sizeof(*argv));
	bool server = d->kind == SIM_SERVER;
	char **keys = server ? w->node_keys : w->master_keys;
	size_t nkeys = server ? w->nnode_keys : w->nmaster_keys;
	argv[n++] = server ? w->bin_meshnode : w->bin_rgmaster;
	argv[n++] = "--directory";
	argv[n++] = src;
	argv[n++] = server ? "--server" : "--name";
	argv[n++] = d->name;
	argv[n++] = server ? "--spool" : "--state";
	argv[n++] = d->dir;
	argv[n++] = "--tls";
	argv[n++] = d->tls;
	argv[n++] = "--log";
	argv[n++] = d->log;
	for (size_t i = 0; i < nfast; i++)
		if (has_key(keys, nkeys, fast[i])) {
			argv[n++] = "--set";
			argv[n++] = (char *)fast[i];
		}
	for (size_t i = 0; i < w->nsettings; i++)
		if (has_key(keys, nkeys, w->settings[i])) {
			argv[n++] = "--set";
			argv[n++] = w->settings[i];
		}
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		free(argv);
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return false;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1); /* meshsim is gone already */
		/* a group of its own: a terminal's Ctrl-C reaches meshsim, which
		 * stops the daemons itself, not every daemon at once */
		setpgid(0, 0);
		dup2(p[1], 1);
		int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (log >= 0)
			dup2(log, 2);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(argv[0], argv);
		_exit(127);
	}
	free(argv);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return false;
	}
	d->pid = pid;
	d->expected = false;
	d->failed = false;
	char buf[256];
	size_t len = 0;
	int64_t deadline = sim_now_ms() + READY_TIMEOUT_MS;
	bool ready = false;
	while (!ready) {
		int64_t left = deadline - sim_now_ms();
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			break;
		ssize_t r = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		ready = strstr(buf, "ready\n") != NULL;
		if (len == sizeof(buf) - 1)
			len = 0;
	}
	close(p[0]);
	if (!ready) {
		snprintf(err, errlen, "%s did not print ready within %d s (its log: %s)", d->name,
		         READY_TIMEOUT_MS / 1000, d->log);
		d->expected = true;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		d->pid = 0;
		return false;
	}
	return true;
}

bool sim_daemon_running(const struct sim_daemon *d)
{
	return d->pid > 0;
}

int sim_daemon_signal(struct sim_world *w, struct sim_daemon *d, int sig, bool wait)
{
	(void)w;
	if (d->pid <= 0)
		return 0;
	d->expected = true;
	kill(d->pid, sig);
	if (!wait)
		return 0;
	int st = 0;
	int64_t deadline = sim_now_ms() + 30000;
	while (waitpid(d->pid, &st, WNOHANG) == 0) {
		if (sim_now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &st, 0);
			break;
		}
		sim_sleep_ms(10);
	}
	d->pid = 0;
	return st;
}

unsigned sim_stop_all(struct sim_world *w)
{
	unsigned unclean = 0;
	for (size_t i = 0; i < w->nd; i++)
		if (w->d[i].pid > 0) {
			w->d[i].expected = true;
			kill(w->d[i].pid, SIGTERM);
		}
	int64_t deadline = sim_now_ms() + 30000;
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		int st = 0;
		while (d->pid > 0 && waitpid(d->pid, &st, WNOHANG) == 0) {
			if (sim_now_ms() > deadline) {
				kill(d->pid, SIGKILL);
				waitpid(d->pid, &st, 0);
				break;
			}
			sim_sleep_ms(10);
		}
		if (d->pid > 0 && st != 0) {
			fprintf(
			    stderr,
			    "meshsim: %s did not stop cleanly on SIGTERM (%s %d); its log: %s\n",
			    d->name, WIFSIGNALED(st) ? "signal" : "exit",
			    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), d->log);
			unclean++;
		}
		d->pid = 0;
	}
	return unclean;
}

void sim_reap(struct sim_world *w)
{
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		int st;
		if (d->pid <= 0 || waitpid(d->pid, &st, WNOHANG) != d->pid)
			continue;
		d->pid = 0;
		if (!d->expected) {
			d->failed = true;
			w->failed++;
			fprintf(stderr,
			        "meshsim: %s %s died unexpectedly (%s %d); the end of its log:\n",
			        d->kind == SIM_SERVER ? "server" : "master", d->name,
			        WIFSIGNALED(st) ? "signal" : "exit",
			        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			char *argv[] = {"/usr/bin/tail", "-n", "20", d->log, NULL}, *out;
			sim_run_capture(argv, &out, 5000);
			fprintf(stderr, "%s", out ? out : "");
			free(out);
		}
	}
}

void sim_live_teardown(struct sim_world *w)
{
	for (size_t i = 0; i < w->nd; i++)
		if (w->d[i].pid > 0)
			sim_daemon_signal(w, &w->d[i], SIGTERM, false);
	int64_t deadline = sim_now_ms() + 10000;
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		while (d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) == 0) {
			if (sim_now_ms() > deadline) {
				kill(d->pid, SIGKILL);
				waitpid(d->pid, NULL, 0);
				break;
			}
			sim_sleep_ms(10);
		}
		d->pid = 0;
	}
	if (w->locked) { /* what is shared is ours to clean only if we held it */
		sim_sinks_stop(w);
		sim_nft_fini(w);
	}
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	w->lock_fd = -1;
	w->locked = false;
}

void sim_world_keys(struct sim_world *w)
{
	keys_of(w->bin_meshnode, &w->node_keys, &w->nnode_keys);
	keys_of(w->bin_rgmaster, &w->master_keys, &w->nmaster_keys);
}

bool sim_setting_known(struct sim_world *w, const char *kv)
{
	return has_key(w->node_keys, w->nnode_keys, kv) ||
	       has_key(w->master_keys, w->nmaster_keys, kv);
}

void sim_world_free(struct sim_world *w)
{
	for (size_t i = 0; i < w->nd; i++) {
		free(w->d[i].name);
		free(w->d[i].group);
	}
	free(w->d);
	for (size_t i = 0; i < w->nnode_keys; i++)
		free(w->node_keys[i]);
	free(w->node_keys);
	for (size_t i = 0; i < w->nmaster_keys; i++)
		free(w->master_keys[i]);
	free(w->master_keys);
	for (size_t i = 0; i < w->nsent; i++) {
		free(w->sent[i].msgid);
		free(w->sent[i].rcpt);
		free(w->sent[i].server);
	}
	free(w->sent);
	for (size_t i = 0; i < w->sinks.ndone; i++) {
		free(w->sinks.done[i].msgid);
		free(w->sinks.done[i].rcpt);
	}
	free(w->sinks.done);
	free(w->sinks.s);
	free(w->cuts);
	free(w->settings);
	free(w->scenario_dir);
	free(w->org_path);
	free(w->work);
	free(w->ldif);
	free(w->admin_tls);
	free(w->bin_meshnode);
	free(w->bin_rgmaster);
	free(w->bin_meshctl);
}

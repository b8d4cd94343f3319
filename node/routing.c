/* The routing engine in meshnode (docs/protocol.md): the driver of the
 * member machine (core/member.h) and the connector-state detector
 * (core/connstate.h) on the libevent loop, TCP 691 through net/net691.h,
 * and the table on disk, SPOOL/table.
 *
 * The engine runs when routing traffic may flow: with --tls (mutual TLS
 * 1.3 with the organization's certificates), or with --set insecure=1
 * (plain TCP, tests only; Hello names the peers). Without either the node
 * takes no part in it, as before: it routes with the directory's table,
 * reports nothing and keeps no SPOOL/table.
 *
 * How it runs (the order member.h gives):
 *   routing_start   SPOOL/table (a corrupt one is logged, kept aside as
 *                   SPOOL/table.corrupt, and ignored) with the directory's
 *                   entries laid under it (mm_member_merge_directory),
 *                   mm_member_init, the router rebuilt from the member's
 *                   view, mm_connstate_init, the table saved, table_changed(),
 *                   then the 691 listener on this server's mmRoutingAddress,
 *                   the source address of dials, mm_member_start.
 *   table_changed() mm_router_update with mm_member_table, mm_qm_table_changed,
 *                   mm_connstate_sync, drain().
 *   drain()         the detector's changes into mm_member_report (the node
 *                   applies its own reports at once), and table_changed()
 *                   again when that changed the view.
 *   link results    env.link_result of the queue manager is called from
 *                   inside its calls: queued, and fed to
 *                   mm_connstate_delivery from an event of their own.
 *   probes          probe.c runs each as an SMTP session and answers it once.
 *   SIGHUP          routing_reload: mm_member_directory (entries of
 *                   incarnation 0 give way to the new directory's, those a
 *                   master issued stay), table_changed().
 *   SIGTERM         routing_stop: mm_member_stop (the master hears "server
 *                   down"); net691 writes out what is queued before it closes.
 *
 * Timers: the member's keys (1..3) and the detector's (target ids, release
 * keys) overlap each other and the queue manager's, so each machine has a
 * map of its own.
 *
 * Accepted connections are for queries (meshctl --connect): an ADMIN Hello,
 * then Query frames answered with Reply (query.c); anything else closes
 * that connection only. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "connstate.h"
#include "damping_file.h"
#include "frame.h"
#include "logfmt.h"
#include "member.h"
#include "net691.h"
#include "node.h"

/* SPOOL/table is read up to this size */
#define TABLE_LIMIT (64u << 20)
/* accepted 691 connections: a Hello or a Query fits easily; the first
 * frame, a Hello, in much less (a header announcing more closes the
 * connection before anything is read into it) */
#define PEER_FRAME_LIMIT (1u << 20)
#define PEER_HELLO_LIMIT (64u << 10)
/* accepted connections: admins, from outside the directory mostly */
#define PEERS_MAX         64
#define PEERS_PER_ADDRESS 8

struct rtimer {
	struct routing *r;
	bool member; /* else the detector's */
	uint64_t key;
	struct event *ev;
};

struct linkres {
	char *connector, *target, *why;
	bool ok;
	struct linkres *next;
};

/* An accepted connection: an admin's queries. */
struct peer {
	struct routing *r;
	uint32_t conn;
	bool cert; /* with TLS: the certificate's identity */
	struct mm_net_peer id;
	bool hello;      /* its Hello taken */
	bool may_change; /* retry, freeze, thaw */
	char name[MM_CERT_NAME_MAX + 1];
	struct mm_frame_reader reader;
	uint64_t seq;
	int64_t last_rx, last_tx;
	struct event *timer;
};

struct routing {
	struct node *n;
	bool member_ready, cs_ready, net_ready, started, stopping;
	struct mm_member m;
	struct mm_connstate cs;
	struct mm_net net;
	struct probes *probes;
	struct mm_u64map mtimers, ctimers;
	struct mm_u64map peers; /* net conn → struct peer */
	struct linkres *links, **links_tail;
	struct event *links_ev;
	/* the table to write to SPOOL/table on the next turn of the loop (the
	 * fsync is kept off the path from a push to the routing it changes) */
	uint8_t *save_buf;
	size_t save_len;
	struct event *save_ev;
	char *path, *tmp, *corrupt;
	/* SPOOL/damping, written on the same turn as the table */
	char *damp_buf;
	size_t damp_len;
	char *damp_path, *damp_tmp;
	char *listen; /* the routing address listened on */
};

static void table_changed(struct routing *r);
static void drain(struct routing *r);

/* The first group (in name order) of t with server self, or NULL. */
static const char *group_of(const struct mm_table *t, const char *self)
{
	for (size_t i = 0; i < t->n; i++)
		for (size_t s = 0; s < t->entries[i]->n_servers; s++)
			if (strcmp(t->entries[i]->servers[s]->name, self) == 0)
				return t->entries[i]->name;
	return NULL;
}

static int64_t now_ms(void *ctx)
{
	(void)ctx;
	return node_now_ms();
}

static void log_line(void *ctx, const char *line)
{
	(void)ctx;
	node_log("%s", line);
}

/* The member's lines, but not those about a dial of its master that
 * failed as the ones before it: the transport counts them and says the
 * count once a minute (net691.h, mm_net_quiet) -- a member whose master is
 * down would otherwise write the same three lines every few seconds. */
static void member_log(void *ctx, const char *line)
{
	struct routing *r = ctx;
	if (r->net_ready && mm_net_quiet(&r->net))
		return;
	node_log("%s", line);
}

/* --- timers -------------------------------------------------------------- */

static void rtimer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct rtimer *t = arg;
	struct routing *r = t->r;
	if (t->member) {
		if (mm_member_timer(&r->m, t->key) & MM_MEMBER_TABLE_CHANGED)
			table_changed(r);
		return;
	}
	mm_connstate_timer(&r->cs, t->key);
	drain(r);
}

static void rtimer_arm(struct routing *r, bool member, uint64_t key, int64_t at_ms)
{
	struct mm_u64map *map = member ? &r->mtimers : &r->ctimers;
	struct rtimer *t = mm_u64map_get(map, key);
	if (t == NULL) {
		t = mm_xcalloc(1, sizeof(*t));
		*t = (struct rtimer){.r = r, .member = member, .key = key};
		t->ev = evtimer_new(r->n->base, rtimer_cb, t);
		mm_u64map_put(map, key, t);
	}
	int64_t d = at_ms - node_now_ms();
	if (d < 0)
		d = 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
	evtimer_add(t->ev, &tv);
}

static void rtimer_cancel(struct routing *r, bool member, uint64_t key)
{
	struct rtimer *t = mm_u64map_del(member ? &r->mtimers : &r->ctimers, key);
	if (t) {
		event_free(t->ev);
		free(t);
	}
}

static void rtimers_free(struct mm_u64map *map)
{
	for (size_t i = 0; i < map->cap; i++) {
		struct rtimer *t = map->slots[i].value;
		if (t) {
			event_free(t->ev);
			free(t);
		}
	}
	mm_u64map_free(map);
}

static void m_timer_arm(void *ctx, uint64_t key, int64_t at_ms)
{
	rtimer_arm(ctx, true, key, at_ms);
}

static void m_timer_cancel(void *ctx, uint64_t key)
{
	rtimer_cancel(ctx, true, key);
}

static void cs_timer_arm(void *ctx, uint64_t key, int64_t at_ms)
{
	rtimer_arm(ctx, false, key, at_ms);
}

static void cs_timer_cancel(void *ctx, uint64_t key)
{
	rtimer_cancel(ctx, false, key);
}

/* --- SPOOL/table ----------------------------------------------------------- */

static bool write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		len -= (size_t)w;
	}
	return true;
}

/* write, fsync, rename, fsync of the directory: a crash leaves the old
 * file or the new one */
static void write_file(struct routing *r, const char *path, const char *tmp, const uint8_t *bytes,
                       size_t len)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !write_all(fd, bytes, len) || fsync(fd) != 0) {
		node_log("routing: cannot write %s: %s; the file on disk is the one before", tmp,
		         strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		node_log("routing: cannot rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return;
	}
	int dfd = open(r->n->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0)
			node_log("routing: fsync of %s: %s", r->n->spool_dir, strerror(errno));
		close(dfd);
	}
}

static void save_pending(struct routing *r)
{
	if (r->save_buf != NULL) {
		write_file(r, r->path, r->tmp, r->save_buf, r->save_len);
		free(r->save_buf);
		r->save_buf = NULL;
	}
	if (r->damp_buf != NULL) {
		write_file(r, r->damp_path, r->damp_tmp, (const uint8_t *)r->damp_buf, r->damp_len);
		free(r->damp_buf);
		r->damp_buf = NULL;
	}
}

/* Flap damping moved: the figures as of now, for the next turn. */
/* The write goes on the next turn of the loop, as a timer: after whatever
 * this turn set going (an X-LINK2STATE flood, the writes to members), so
 * that no fsync (3 ms at the median) lies on the path of a change. */
static void save_soon(struct routing *r)
{
	struct timeval now = {0, 0};
	evtimer_add(r->save_ev, &now);
}

static void save_damping(struct routing *r)
{
	struct mm_damp_saved *s;
	size_t n = mm_connstate_damp_save(&r->cs, &s);
	free(r->damp_buf);
	r->damp_buf = mm_damping_format(s, n, node_wall_ms(), &r->damp_len);
	mm_damp_saved_free(s, n);
	r->cs.damp_changed = false;
	save_soon(r);
}

/* What the last run left of flap damping, decayed by the time passed
 * since (a corrupt file is logged and ignored: damping starts afresh). */
static void load_damping(struct routing *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(r->damp_path, "re");
	if (f == NULL) {
		if (errno != ENOENT)
			node_log("routing: cannot read %s: %s", r->damp_path, strerror(errno));
		return;
	}
	text = mm_xmalloc(MM_DAMPING_FILE_MAX);
	len = fread(text, 1, MM_DAMPING_FILE_MAX, f);
	bool whole = feof(f) && !ferror(f);
	fclose(f);
	struct mm_damp_saved *s = NULL;
	size_t n = 0;
	int64_t at = 0;
	char err[200];
	if (!whole || !mm_damping_parse(text, len, &s, &n, &at, err, sizeof(err))) {
		node_log("routing: %s: %s; flap damping starts afresh", r->damp_path,
		         whole ? err : "too big or unreadable");
		free(text);
		return;
	}
	free(text);
	int64_t elapsed = node_wall_ms() - at;
	mm_connstate_damp_restore(&r->cs, s, n, elapsed);
	node_log("routing: flap damping of %zu connectors from %s, saved %lld s ago", n,
	         r->damp_path, (long long)(elapsed / 1000));
	mm_damp_saved_free(s, n);
}

static void save_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	save_pending(arg);
}

/* The member's save: the latest table waits for the next turn, so that
 * several changes in one turn cost one write, and none waits for it. */
static void save_table(void *ctx, const uint8_t *bytes, size_t len)
{
	struct routing *r = ctx;
	free(r->save_buf);
	r->save_buf = mm_xmalloc(len ? len : 1);
	memcpy(r->save_buf, bytes, len);
	r->save_len = len;
	save_soon(r);
}

/* The table saved by the last run, into t; false when there is none that
 * decodes (a corrupt one is logged and moved aside). */
static bool load_table(struct routing *r, struct mm_table *t)
{
	mm_table_init(t);
	int fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			node_log("routing: cannot read %s: %s; starting from the directory's table",
			         r->path, strerror(errno));
		else
			node_log("routing: no %s yet: starting from the directory's table",
			         r->path);
		return false;
	}
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0;
	bool ok = fstat(fd, &st) == 0 && st.st_size >= 0 && (uint64_t)st.st_size <= TABLE_LIMIT;
	if (ok) {
		len = (size_t)st.st_size;
		buf = mm_xmalloc(len ? len : 1);
		size_t got = 0;
		while (got < len) {
			ssize_t n = read(fd, buf + got, len - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		ok = got == len;
	}
	close(fd);
	if (ok)
		ok = mm_table_decode(buf, len, TABLE_LIMIT, t);
	free(buf);
	if (!ok) {
		mm_table_free(t);
		bool kept = rename(r->path, r->corrupt) == 0;
		node_log("routing: %s is corrupt (%zu bytes, does not decode as a table); "
		         "ignored%s, starting from the directory's table",
		         r->path, len, kept ? ", kept as table.corrupt" : "");
		return false;
	}
	node_log("routing: starting from %s (%zu groups)", r->path, t->n);
	return true;
}

/* --- the machines' results ------------------------------------------------- */

static const Mailmesh__Bridgehead *view_bh(const struct routing *r, const char *conn,
                                           const char *vs)
{
	const mm_entry *e = mm_table_find(mm_member_table(&r->m), r->m.group);
	for (size_t c = 0; e && c < e->n_connectors; c++) {
		const Mailmesh__Connector *cn = e->connectors[c];
		if (strcmp(cn->name, conn) != 0)
			continue;
		for (size_t b = 0; b < cn->n_local_bridgeheads; b++)
			if (strcmp(cn->local_bridgeheads[b]->server, r->n->self) == 0 &&
			    strcmp(cn->local_bridgeheads[b]->virtual_server, vs) == 0)
				return cn->local_bridgeheads[b];
	}
	return NULL;
}

/* The detector's changes: logged when they change what the node routes
 * with, then applied (and sent to the master when one is connected). */
static void drain(struct routing *r)
{
	const struct mm_bh_report *c;
	const char *const *ups;
	size_t k = mm_connstate_changes(&r->cs, &c);
	size_t nups = mm_connstate_ups(&r->cs, &ups);
	if (r->cs.damp_changed)
		save_damping(r);
	if (k == 0 && nups == 0)
		return;
	const char *master = mm_member_master(&r->m);
	for (size_t i = 0; i < k; i++) {
		const Mailmesh__Bridgehead *bh = view_bh(r, c[i].connector, c[i].vserver);
		if (bh == NULL || bh->down == c[i].down)
			continue;
		char q[300];
		node_log("routing: connector %s: bridgehead %s/%s reported %s (%s%s)",
		         mm_logfmt_quote(q, sizeof(q), c[i].connector), r->n->self, c[i].vserver,
		         c[i].down ? "down" : "up", master ? "to master " : "no master connected",
		         master ? master : "; this node's own routing only");
	}
	unsigned res = k ? mm_member_report(&r->m, c, k) : 0;
	/* up means up: the queues to a target that answered are ready now,
	 * not at their retry time (copied: the clear frees them) */
	char **up = mm_xcalloc(nups ? nups : 1, sizeof(*up));
	for (size_t i = 0; i < nups; i++)
		up[i] = mm_xstrdup(ups[i]);
	mm_connstate_clear(&r->cs);
	if (res & MM_MEMBER_TABLE_CHANGED)
		table_changed(r);
	for (size_t i = 0; i < nups; i++) {
		mm_qm_target_up(&r->n->qm, up[i]);
		free(up[i]);
	}
	free(up);
}

/* After every event whose result has MM_MEMBER_TABLE_CHANGED, before
 * anything else touches the router. */
static void table_changed(struct routing *r)
{
	struct node *n = r->n;
	const struct mm_table *t = mm_member_table(&r->m);
	if (mm_router_update(&n->router, t)) {
		/* the moment this node routes by a new table (the convergence
		 * bench reads these lines) */
		char hex[2 * MM_DIGEST_LEN + 1];
		mm_digest_hex(n->router.digest, hex);
		const mm_entry *e = mm_table_find(t, r->m.group);
		const Mailmesh__Version *v = e ? e->version : NULL;
		node_log("routing: table digest %s, group version (%llu, %llu, %llu, %llu)", hex,
		         v ? (unsigned long long)v->incarnation : 0ull,
		         v ? (unsigned long long)v->major : 0ull,
		         v ? (unsigned long long)v->minor : 0ull,
		         v ? (unsigned long long)v->user : 0ull);
	}
	mm_qm_table_changed(&n->qm, &n->dir, &n->router);
	mm_connstate_sync(&r->cs, t);
	xlinks_table_changed(n->xl);
	drain(r);
}

static void after_member(struct routing *r, unsigned res)
{
	if (res & MM_MEMBER_TABLE_CHANGED)
		table_changed(r);
}

bool routing_test_report(struct node *n, const char *connector, const char *vserver, bool down)
{
	struct routing *r = n->rt;
	if (r == NULL || !r->started || r->stopping)
		return false;
	char q[300];
	node_log("routing: test hook: connector %s: bridgehead %s/%s reported %s",
	         mm_logfmt_quote(q, sizeof(q), connector), n->self, vserver, down ? "down" : "up");
	struct mm_bh_report rep = {(char *)connector, (char *)vserver, down};
	after_member(r, mm_member_report(&r->m, &rep, 1));
	return true;
}

/* --- link results and probes ----------------------------------------------- */

void routing_link_result(void *ctx, const char *connector, const char *target, bool ok,
                         const char *why)
{
	struct node *n = ctx;
	struct routing *r = n->rt;
	if (r == NULL || !r->cs_ready || r->stopping)
		return;
	struct linkres *l = mm_xcalloc(1, sizeof(*l));
	*l = (struct linkres){mm_xstrdup(connector), mm_xstrdup(target),
	                      why ? mm_xstrdup(why) : NULL, ok, NULL};
	*r->links_tail = l;
	r->links_tail = &l->next;
	event_active(r->links_ev, 0, 0);
}

static void linkres_free(struct linkres *l)
{
	free(l->connector);
	free(l->target);
	free(l->why);
	free(l);
}

static void links_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct routing *r = arg;
	struct linkres *l;
	while ((l = r->links) != NULL) {
		r->links = l->next;
		if (r->links == NULL)
			r->links_tail = &r->links;
		mm_connstate_delivery(&r->cs, l->connector, l->target, l->ok, l->why);
		linkres_free(l);
		drain(r);
	}
}

static void cs_probe(void *ctx, uint32_t id, const struct mm_cs_probe *p)
{
	struct routing *r = ctx;
	probe_start(r->probes, id, p);
}

static void probe_done(void *ctx, uint32_t id, bool ok, const char *why)
{
	struct routing *r = ctx;
	mm_connstate_probe_result(&r->cs, id, ok, why);
	drain(r);
}

/* --- the member's connection ---------------------------------------------- */

static void m_dial(void *ctx, uint32_t conn, const char *address, const char *candidate)
{
	struct routing *r = ctx;
	mm_net_dial(&r->net, MM_NET_OUT | conn, address, MM_CERT_MASTER, candidate);
}

static void m_send(void *ctx, uint32_t conn, const uint8_t *bytes, size_t len)
{
	struct routing *r = ctx;
	mm_net_send(&r->net, MM_NET_OUT | conn, bytes, len);
}

static void m_close(void *ctx, uint32_t conn)
{
	struct routing *r = ctx;
	mm_net_close(&r->net, MM_NET_OUT | conn);
}

static uint32_t m_random(void *ctx)
{
	struct routing *r = ctx;
	return node_random(r->n);
}

/* --- accepted connections: queries ----------------------------------------- */

static int64_t dead_ms(const struct routing *r)
{
	return (int64_t)r->n->set.ping_interval_ms * (int64_t)r->n->set.dead_after;
}

static void peer_free(struct peer *p)
{
	mm_u64map_del(&p->r->peers, p->conn);
	if (p->timer)
		event_free(p->timer);
	mm_frame_reader_free(&p->reader);
	free(p);
}

/* Close after what was queued is written; nothing more is read. */
static void peer_close(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void peer_close(struct peer *p, const char *fmt, ...)
{
	char why[512], q[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	node_log("691: closing connection %u%s%s: %s", p->conn, p->name[0] ? " of admin " : "",
	         p->name[0] ? mm_logfmt_quote(q, sizeof(q), p->name) : "", why);
	struct routing *r = p->r;
	uint32_t conn = p->conn;
	peer_free(p);
	mm_net_close(&r->net, conn);
}

static void peer_send(struct peer *p, Mailmesh__Frame *f)
{
	f->seq = ++p->seq;
	size_t len;
	uint8_t *bytes = mm_frame_encode(f, &len);
	mm_net_send(&p->r->net, p->conn, bytes, len);
	free(bytes);
	p->last_tx = node_now_ms();
}

/* The next look at p: a ping interval from now, or sooner when it is due
 * to be dead (so that it is closed within one dead interval, not one
 * interval later). */
static void peer_arm(struct peer *p)
{
	int64_t ms = (int64_t)p->r->n->set.ping_interval_ms;
	int64_t dead_in = p->last_rx + dead_ms(p->r) - node_now_ms();
	if (dead_in < ms)
		ms = dead_in < 1 ? 1 : dead_in;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

static void peer_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct peer *p = arg;
	int64_t now = node_now_ms();
	if (now - p->last_rx >= dead_ms(p->r)) {
		peer_close(p, p->hello ? "nothing received for %lld ms" : "no Hello within %lld ms",
		           (long long)(now - p->last_rx));
		return;
	}
	if (p->hello && now - p->last_tx >= (int64_t)p->r->n->set.ping_interval_ms) {
		Mailmesh__Ping ping = MAILMESH__PING__INIT;
		ping.nonce = p->seq + 1;
		Mailmesh__Frame f = MAILMESH__FRAME__INIT;
		f.body_case = MAILMESH__FRAME__BODY_PING;
		f.ping = &ping;
		peer_send(p, &f);
	}
	peer_arm(p);
}

static void peer_open(struct routing *r, uint32_t conn, const struct mm_net_peer *id)
{
	if (r->stopping || r->peers.used >= PEERS_MAX) {
		node_log("691: connection %u refused: %s", conn,
		         r->stopping ? "stopping" : "too many connections");
		mm_net_close(&r->net, conn);
		return;
	}
	struct peer *p = mm_xcalloc(1, sizeof(*p));
	*p = (struct peer){.r = r, .conn = conn};
	if (id) {
		p->cert = true;
		p->id = *id;
	}
	mm_frame_reader_init(&p->reader, PEER_FRAME_LIMIT);
	mm_frame_reader_first(&p->reader, PEER_HELLO_LIMIT);
	p->last_rx = p->last_tx = node_now_ms();
	p->timer = evtimer_new(r->n->base, peer_timer, p);
	mm_u64map_put(&r->peers, conn, p);
	peer_arm(p);
}

static void send_hello(struct peer *p)
{
	struct routing *r = p->r;
	const struct mm_table *base = mm_member_base(&r->m);
	const mm_entry *own = mm_table_find(base, r->m.group);
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	Mailmesh__Version v = MAILMESH__VERSION__INIT;
	if (own && own->version) {
		v.incarnation = own->version->incarnation;
		v.major = own->version->major;
		v.minor = own->version->minor;
		v.user = own->version->user;
		h.version = &v;
	}
	uint8_t d[MM_DIGEST_LEN];
	mm_table_digest(base, d);
	h.name = (char *)r->n->self;
	h.group = r->m.group;
	h.digest = (ProtobufCBinaryData){MM_DIGEST_LEN, d};
	h.proto_major = 1;
	h.proto_minor = 0;
	h.role = MAILMESH__ROLE__ROLE_NODE;
	h.incarnation_seen = r->m.incarnation_seen;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_HELLO;
	f.hello = &h;
	peer_send(p, &f);
}

static const char *role_name(Mailmesh__Role role)
{
	switch (role) {
	case MAILMESH__ROLE__ROLE_NODE: return "node";
	case MAILMESH__ROLE__ROLE_MASTER: return "master";
	case MAILMESH__ROLE__ROLE_ADMIN: return "admin";
	default: return "unknown";
	}
}

/* false: closed */
static bool peer_hello(struct peer *p, const Mailmesh__Hello *h)
{
	char q[200], q2[200];
	if (h->proto_major != 1) {
		peer_close(p, "unknown protocol major version %u (this node speaks 1)",
		           h->proto_major);
		return false;
	}
	if (h->role != MAILMESH__ROLE__ROLE_ADMIN) {
		peer_close(p, "a %s Hello from %s: a node takes only queries (role admin) on 691",
		           role_name(h->role), mm_logfmt_quote(q, sizeof(q), h->name));
		return false;
	}
	if (!mm_cert_name_ok(h->name)) {
		peer_close(p, "an admin Hello naming %s, which no certificate could carry",
		           mm_logfmt_quote(q, sizeof(q), h->name));
		return false;
	}
	if (p->cert && strcmp(p->id.name, h->name) != 0) {
		peer_close(p, "its certificate names %s %s, its Hello admin %s",
		           mm_cert_kind_name(p->id.kind), mm_logfmt_quote(q, sizeof(q), p->id.name),
		           mm_logfmt_quote(q2, sizeof(q2), h->name));
		return false;
	}
	snprintf(p->name, sizeof(p->name), "%s", h->name);
	/* without TLS, Hello alone names the peer */
	p->may_change = !p->cert || p->id.kind == MM_CERT_ADMIN;
	p->hello = true;
	node_log("691: connection %u: admin %s (%s)", p->conn,
	         mm_logfmt_quote(q, sizeof(q), h->name),
	         !p->cert                      ? "no TLS: insecure"
	         : p->id.kind == MM_CERT_ADMIN ? "admin certificate"
	                                       : "read-only: not an admin certificate");
	send_hello(p);
	return true;
}

static void peer_query(struct peer *p, const Mailmesh__Query *qy)
{
	char *body = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&body, &len);
	int status = EX_UNAVAILABLE;
	if (out) {
		status = query_answer(p->r->n, qy->command, qy->n_args,
		                      (const char *const *)qy->args, p->may_change, out);
		if (fclose(out) != 0)
			status = EX_UNAVAILABLE;
	}
	Mailmesh__Reply rep = MAILMESH__REPLY__INIT;
	rep.status = status;
	rep.json =
	    out && body ? body : (char *)"{\"error\":\"the answer cannot be written here\"}\n";
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_REPLY;
	f.reply = &rep;
	peer_send(p, &f);
	free(body);
}

static void peer_data(struct routing *r, uint32_t conn, const uint8_t *data, size_t n)
{
	struct peer *p = mm_u64map_get(&r->peers, conn);
	if (p == NULL)
		return;
	enum mm_frame_status st = mm_frame_feed(&p->reader, data, n);
	while (st != MM_FRAME_TOO_BIG) {
		Mailmesh__Frame *f = NULL;
		st = mm_frame_next(&p->reader, &f);
		if (st != MM_FRAME_OK)
			break;
		/* whole frames keep a connection alive, not bytes: a peer that
		 * trickles a frame it never ends (a Hello, say) is dead after
		 * one dead interval like a silent one */
		p->last_rx = node_now_ms();
		bool open = true;
		if (!p->hello) {
			if (f->body_case != MAILMESH__FRAME__BODY_HELLO) {
				peer_close(p, "a frame (body %d) before Hello", (int)f->body_case);
				open = false;
			} else {
				open = peer_hello(p, f->hello);
			}
		} else {
			switch (f->body_case) {
			case MAILMESH__FRAME__BODY_QUERY: peer_query(p, f->query); break;
			case MAILMESH__FRAME__BODY_PING: {
				Mailmesh__Pong pong = MAILMESH__PONG__INIT;
				pong.nonce = f->ping->nonce;
				Mailmesh__Frame out = MAILMESH__FRAME__INIT;
				out.body_case = MAILMESH__FRAME__BODY_PONG;
				out.pong = &pong;
				peer_send(p, &out);
				break;
			}
			case MAILMESH__FRAME__BODY_HELLO:
				peer_close(p, "a second Hello");
				open = false;
				break;
			case MAILMESH__FRAME__BODY_STATE_REPORT:
			case MAILMESH__FRAME__BODY_TABLE_PUSH:
			case MAILMESH__FRAME__BODY_DIGEST_PROBE:
			case MAILMESH__FRAME__BODY_REPLY:
				peer_close(p, "an admin sends only Query (body %d)",
				           (int)f->body_case);
				open = false;
				break;
			default: break; /* Pong, Ack, or a frame of a later minor version */
			}
		}
		mailmesh__frame__free_unpacked(f, NULL);
		if (!open)
			return;
	}
	if (st == MM_FRAME_TOO_BIG)
		peer_close(p, "a frame over the limit of %u bytes (%u before Hello)",
		           PEER_FRAME_LIMIT, PEER_HELLO_LIMIT);
	else if (st == MM_FRAME_BAD)
		peer_close(p, "a frame that does not decode");
}

/* --- net691 events --------------------------------------------------------- */

static void net_opened(void *ctx, uint32_t conn, const struct mm_net_peer *peer)
{
	struct routing *r = ctx;
	if (!(conn & MM_NET_OUT)) {
		peer_open(r, conn, peer);
		return;
	}
	struct mm_member_peer mp, *pp = NULL;
	if (peer) {
		mp = (struct mm_member_peer){mm_cert_kind_name(peer->kind), peer->name};
		pp = &mp;
	}
	after_member(r, mm_member_conn_open(&r->m, conn & ~MM_NET_OUT, pp));
}

static void net_data(void *ctx, uint32_t conn, const uint8_t *p, size_t n)
{
	struct routing *r = ctx;
	if (!(conn & MM_NET_OUT)) {
		peer_data(r, conn, p, n);
		return;
	}
	after_member(r, mm_member_conn_data(&r->m, conn & ~MM_NET_OUT, p, n));
}

static void net_closed(void *ctx, uint32_t conn, const char *why)
{
	struct routing *r = ctx;
	if (!(conn & MM_NET_OUT)) {
		struct peer *p = mm_u64map_get(&r->peers, conn);
		if (p)
			peer_free(p);
		return;
	}
	after_member(r, mm_member_conn_closed(&r->m, conn & ~MM_NET_OUT, why));
}

/* --- start, reload, stop ----------------------------------------------------- */

static const Mailmesh__Server *self_server(const struct mm_table *t, const char *self)
{
	for (size_t g = 0; g < t->n; g++)
		for (size_t s = 0; s < t->entries[g]->n_servers; s++)
			if (strcmp(t->entries[g]->servers[s]->name, self) == 0)
				return t->entries[g]->servers[s];
	return NULL;
}

static char *spool_path(const struct node *n, const char *name)
{
	size_t len = strlen(n->spool_dir) + strlen(name) + 2;
	char *p = mm_xmalloc(len);
	snprintf(p, len, "%s/%s", n->spool_dir, name);
	return p;
}

/* "ip:port" → "ip:0" (IPv6 in brackets), for the source of dials */
static void source_of(const char *address, char *out, size_t n)
{
	const char *colon = strrchr(address, ':');
	size_t len = colon ? (size_t)(colon - address) : strlen(address);
	snprintf(out, n, "%.*s:0", (int)len, address);
}

bool routing_on(const struct node *n)
{
	return n->rt != NULL && n->rt->started;
}

int routing_start(struct node *n, const char *tls_dir)
{
	if (tls_dir == NULL && !n->set.insecure) {
		node_log("routing engine off: no --tls and not --set insecure=1; routing with the "
		         "directory's table, no 691, no connector-state reports");
		return EX_OK;
	}
	struct routing *r = mm_xcalloc(1, sizeof(*r));
	r->n = n;
	n->rt = r;
	r->links_tail = &r->links;
	r->links_ev = event_new(n->base, -1, 0, links_cb, r);
	r->save_ev = evtimer_new(n->base, save_cb, r);
	r->path = spool_path(n, "table");
	r->tmp = spool_path(n, "table.new");
	r->corrupt = spool_path(n, "table.corrupt");
	r->damp_path = spool_path(n, "damping");
	r->damp_tmp = spool_path(n, "damping.new");
	bool insecure = tls_dir == NULL;

	/* the table: the last one saved with the directory's laid under it */
	struct mm_table t;
	bool saved = load_table(r, &t);
	mm_member_merge_directory(&t, &n->dir.table);
	const char *was = group_of(&t, n->self), *is = group_of(&n->dir.table, n->self);
	if (saved && was && is && strcmp(was, is) != 0) {
		/* the server moved to another group: the saved table would keep
		 * it in the old one, whose master no longer takes it */
		node_log("routing: %s has server %s in group %s, the directory in %s: starting "
		         "from the directory's table",
		         r->path, n->self, was, is);
		mm_table_free(&t);
		mm_table_init(&t);
		mm_member_merge_directory(&t, &n->dir.table);
	}
	struct mm_member_conf mc = MM_MEMBER_DEFAULTS;
	mc.ping_interval_ms = (uint32_t)n->set.ping_interval_ms;
	mc.dead_after = (uint32_t)n->set.dead_after;
	mc.retry_min_ms = (uint32_t)n->set.master_retry_min_ms;
	mc.retry_max_ms = (uint32_t)n->set.master_retry_max_ms;
	mc.insecure = insecure;
	struct mm_member_env me = {.ctx = r,
	                           .now_ms = now_ms,
	                           .random = m_random,
	                           .timer_arm = m_timer_arm,
	                           .timer_cancel = m_timer_cancel,
	                           .dial = m_dial,
	                           .send = m_send,
	                           .close = m_close,
	                           .save_table = save_table,
	                           .log = member_log};
	if (!mm_member_init(&r->m, &mc, &me, n->self, &t)) {
		/* the saved entry of this server's group does not hold it */
		mm_table_free(&t);
		if (saved)
			node_log(
			    "routing: %s has no server %s: starting from the directory's table",
			    r->path, n->self);
		mm_member_merge_directory(&t, &n->dir.table);
		if (!mm_member_init(&r->m, &mc, &me, n->self, &t)) {
			mm_table_free(&t);
			node_log("routing: server %s is not in the directory's table", n->self);
			return EX_DATAERR;
		}
	}
	r->member_ready = true;
	mm_member_directory_cands(&r->m, &n->dir.table);
	struct mm_router router;
	if (!mm_router_init(&router, mm_member_table(&r->m), n->self)) {
		node_log("routing: server %s is not in the table", n->self);
		return EX_DATAERR;
	}
	/* from now on the router routes with the member's view */
	mm_router_free(&n->router);
	n->router = router;
	struct mm_cs_conf cc = MM_CS_DEFAULTS;
	cc.glitch_count = (uint32_t)n->set.glitch_retry_count;
	cc.glitch_interval_ms = (uint32_t)n->set.glitch_retry_interval_ms;
	cc.probe_interval_ms = (uint32_t)n->set.down_probe_interval_ms;
	cc.org_tls = n->tls.server != NULL;
	cc.damp = (struct mm_damp_conf){.penalty = (uint32_t)n->set.damp_penalty,
	                                .suppress = (uint32_t)n->set.damp_suppress,
	                                .reuse = (uint32_t)n->set.damp_reuse,
	                                .half_life_ms = (uint32_t)n->set.damp_half_life_ms,
	                                .max_hold_ms = (uint32_t)n->set.damp_max_hold_ms};
	struct mm_cs_env ce = {.ctx = r,
	                       .now_ms = now_ms,
	                       .timer_arm = cs_timer_arm,
	                       .timer_cancel = cs_timer_cancel,
	                       .probe = cs_probe,
	                       .log = log_line};
	mm_connstate_init(&r->cs, &cc, &ce, n->self);
	load_damping(r);
	r->cs_ready = true;
	r->probes = probes_new(n, probe_done, r);
	/* the table this node starts from is on disk from now on */
	size_t len;
	uint8_t *bytes = mm_table_encode(mm_member_base(&r->m), &len);
	save_table(r, bytes, len);
	free(bytes);
	r->started = true;
	table_changed(r);

	/* 691 */
	struct mm_net_ops ops = {.ctx = r,
	                         .opened = net_opened,
	                         .data = net_data,
	                         .closed = net_closed,
	                         .log = log_line};
	char err[512];
	if (!mm_net_init(&r->net, n->base, &ops, tls_dir, n->self, insecure, err, sizeof(err))) {
		node_log("routing: --tls %s: %s", tls_dir ? tls_dir : "(none)", err);
		return EX_CONFIG;
	}
	r->net_ready = true;
	/* a connection gets one dead interval for its TCP and TLS handshake,
	 * as the master gives (docs/protocol.md, "Liveness") */
	uint64_t dead = n->set.ping_interval_ms * n->set.dead_after;
	r->net.handshake_ms = (uint32_t)(dead < 1000 ? 1000 : dead > 60000 ? 60000 : dead);
	r->net.conn_max = PEERS_MAX;
	r->net.conn_per_address = PEERS_PER_ADDRESS;
	mm_net_directory_table(&r->net, &n->dir.table);
	const Mailmesh__Server *sv = self_server(&n->dir.table, n->self);
	if (sv && sv->routing_address[0]) {
		if (!mm_net_listen(&r->net, sv->routing_address, err, sizeof(err))) {
			node_log("routing: %s", err);
			return EX_UNAVAILABLE;
		}
		r->listen = mm_xstrdup(sv->routing_address);
		char src[128];
		source_of(sv->routing_address, src, sizeof(src));
		mm_net_bind_source(&r->net, src);
	} else {
		node_log("routing: server %s has no mmRoutingAddress: not listening on 691",
		         n->self);
	}
	node_log("routing engine on: 691 %s%s%s, %zu master candidate(s) of %s",
	         r->listen ? "on " : "", r->listen ? r->listen : "not listened on",
	         insecure ? " in plain TCP (insecure=1)" : " with TLS",
	         mm_table_find(mm_member_base(&r->m), r->m.group)->n_masters, r->m.group);
	after_member(r, mm_member_start(&r->m));
	save_pending(r); /* SPOOL/table is there once the node says ready */
	/* X-LINK2STATE runs under TLS only (AUTH EXTERNAL) */
	if (!insecure)
		n->xl = xlinks_new(n);
	xlinks_table_changed(n->xl);
	return EX_OK;
}

void routing_reload(struct node *n)
{
	struct routing *r = n->rt;
	if (!routing_on(n))
		return;
	mm_member_directory(&r->m, &n->dir.table);
	mm_net_directory_table(&r->net, &n->dir.table);
	/* the directory changed whatever the table did: the queue manager
	 * takes it (and the router the view) */
	table_changed(r);
	const Mailmesh__Server *sv = self_server(&n->dir.table, n->self);
	if (sv && (r->listen ? strcmp(r->listen, sv->routing_address) != 0
	                     : sv->routing_address[0] != '\0'))
		node_log("routing: mmRoutingAddress %s -> %s needs a restart",
		         r->listen ? r->listen : "(none)", sv->routing_address);
}

void routing_stop(struct node *n)
{
	struct routing *r = n->rt;
	if (!routing_on(n) || r->stopping)
		return;
	r->stopping = true;
	xlinks_free(n->xl); /* no exchange starts now; those running are dropped */
	n->xl = NULL;
	if (r->net_ready && r->net.listener)
		evconnlistener_disable(r->net.listener);
	mm_member_stop(&r->m);
	/* admins: what they were sent goes out, then the connection closes */
	while (r->peers.used > 0)
		for (size_t i = 0; i < r->peers.cap; i++)
			if (r->peers.slots[i].value) {
				struct peer *p = r->peers.slots[i].value;
				uint32_t conn = p->conn;
				peer_free(p);
				mm_net_close(&r->net, conn);
				break;
			}
}

void routing_free(struct node *n)
{
	struct routing *r = n->rt;
	if (r == NULL)
		return;
	xlinks_free(n->xl);
	n->xl = NULL;
	if (r->member_ready)
		mm_member_free(&r->m);
	if (r->cs_ready && r->started)
		save_damping(r); /* the figures as they stand at the exit */
	if (r->cs_ready)
		mm_connstate_free(&r->cs);
	probes_free(r->probes);
	while (r->peers.used > 0)
		for (size_t i = 0; i < r->peers.cap; i++)
			if (r->peers.slots[i].value) {
				peer_free(r->peers.slots[i].value);
				break;
			}
	mm_u64map_free(&r->peers);
	if (r->net_ready)
		mm_net_free(&r->net);
	rtimers_free(&r->mtimers);
	rtimers_free(&r->ctimers);
	struct linkres *l;
	while ((l = r->links) != NULL) {
		r->links = l->next;
		linkres_free(l);
	}
	if (r->links_ev)
		event_free(r->links_ev);
	save_pending(r); /* the last table, before the node exits */
	if (r->save_ev)
		event_free(r->save_ev);
	free(r->path);
	free(r->tmp);
	free(r->corrupt);
	free(r->damp_path);
	free(r->damp_tmp);
	free(r->listen);
	free(r);
	n->rt = NULL;
}

/* --- for query.c ------------------------------------------------------------- */

const struct mm_table *routing_view(const struct node *n)
{
	return routing_on(n) ? mm_member_table(&n->rt->m) : &n->dir.table;
}

const char *routing_master(const struct node *n)
{
	return routing_on(n) ? mm_member_master(&n->rt->m) : NULL;
}

const struct mm_table *routing_base(const struct node *n)
{
	return routing_on(n) ? mm_member_base(&n->rt->m) : &n->dir.table;
}

bool routing_take(struct node *n, const char *peer, mm_entry **e, size_t k, uint32_t *taken,
                  uint32_t *dropped, char *why, size_t whylen)
{
	struct routing *r = n->rt;
	*taken = *dropped = 0;
	if (!routing_on(n) || r->stopping) {
		for (size_t i = 0; i < k; i++)
			mm_entry_free(e[i]);
		*dropped = (uint32_t)k;
		return true;
	}
	enum mm_take *res = mm_xcalloc(k ? k : 1, sizeof(*res));
	unsigned changed = mm_member_take(&r->m, e, k, peer, res, why, whylen);
	bool ok = true;
	for (size_t i = 0; i < k; i++) {
		*taken += res[i] == MM_TAKE_TAKEN;
		*dropped += res[i] != MM_TAKE_TAKEN;
		ok &= res[i] != MM_TAKE_REFUSED;
	}
	free(res);
	/* at once: the router knows entries by address, and the machine just
	 * freed those it replaced */
	after_member(r, changed);
	return ok;
}

bool routing_trust_load(struct node *n)
{
	if (n->tls_dir == NULL)
		return true;
	char err[4096 + 256];
	struct mm_trust *t = mm_tls_trust(n->tls_dir, err, sizeof(err));
	SSL_CTX *ctxs[4];
	size_t k = 0;
	ctxs[k++] = n->tls.server;
	ctxs[k++] = n->tls.client_verify;
	if (routing_on(n) && n->rt->net_ready && n->rt->net.tls.accept) {
		ctxs[k++] = n->rt->net.tls.accept;
		ctxs[k++] = n->rt->net.tls.dial;
	}
	if (t == NULL || !mm_tls_apply_crl(ctxs, k, n->tls_dir, err, sizeof(err))) {
		node_log("--tls %s: %s", n->tls_dir, err);
		mm_trust_free(t);
		return false;
	}
	if (routing_on(n))
		mm_member_trust(&n->rt->m, t, &n->dir.table);
	mm_trust_free(n->trust);
	n->trust = t;
	/* a certificate revoked now is refused on what is open too */
	if (routing_on(n) && n->rt->net_ready)
		mm_net_recheck(&n->rt->net);
	node_recheck_sessions(n);
	xlinks_drop_sessions(n->xl);
	return true;
}

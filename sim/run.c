/* A live run (DESIGN §8): the scenario's lines in file order, `at` lines
 * when their time comes, `within` as a poll until the condition holds or
 * its time is out, chaos between lines, the accounting at the end, and
 * report.json. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "world.h"

#define POLL_MS 100

/* set by SIGINT/SIGTERM (meshsim.c): the run ends, cleaned up */
extern volatile sig_atomic_t sim_interrupted;

struct runner {
	struct sim_world *w;
	json_t *expectations, *changes;
	size_t nat;
	const struct mm_sim_step **at; /* pending `at` lines */
	bool *at_done;
	int64_t last_converge_check;
	bool table_shown;    /* at the first convergence */
	size_t pending;      /* changes without a convergence time yet */
	char (*befores)[65]; /* per change: the digest agreed on just before it */
};

static int64_t elapsed(struct sim_world *w)
{
	return sim_now_ms() - w->t0;
}

static bool failed_at(struct runner *r, const struct mm_sim_step *s, const char *what,
                      const char *seen)
{
	struct sim_world *w = r->w;
	w->failed++;
	printf("%s:%u: expected %s; seen %s\n", w->sc->file, s->line, what, seen);
	fflush(stdout);
	return false;
}

static void record(struct runner *r, const struct mm_sim_step *s, bool ok, const char *what,
                   const char *seen)
{
	json_array_append_new(r->expectations,
	                      json_pack("{s:i, s:b, s:s, s:s, s:I}", "line", (int)s->line, "ok", ok,
	                                "expected", what, "seen", seen, "at_ms",
	                                (json_int_t)elapsed(r->w)));
	if (ok) {
		printf("%6.1fs  line %u: %s: ok (%s)\n", (double)elapsed(r->w) / 1000, s->line,
		       what, seen);
		fflush(stdout);
	} else {
		failed_at(r, s, what, seen);
	}
}

/* a state change, for report.json's changes: its convergence time is from
 * the change until every daemon agrees on a table other than the one they
 * agreed on before it (measured while the run goes on; null when the table
 * never changed, or they never agreed) */
static void change(struct runner *r, const char *fmt, const char *a, const char *b)
{
	char what[300], seen[300];
	snprintf(what, sizeof(what), fmt, a, b);
	size_t n = json_array_size(r->changes);
	r->befores = mm_xrealloc(r->befores, n + 1, sizeof(*r->befores));
	if (!sim_converged(r->w, seen, sizeof(seen), r->befores[n]))
		r->befores[n][0] = '\0'; /* no agreement now: any later one counts */
	r->pending++;
	json_array_append_new(r->changes,
	                      json_pack("{s:I, s:s, s:n}", "at_ms", (json_int_t)elapsed(r->w),
	                                "what", what, "converged_ms"));
}

/* each change not yet converged gets its time when the daemons agree on a
 * table other than the one they agreed on before it */
static void converge_check(struct runner *r)
{
	struct sim_world *w = r->w;
	if (r->pending == 0 || sim_now_ms() - r->last_converge_check < 250)
		return;
	r->last_converge_check = sim_now_ms();
	char seen[300], now_digest[65];
	if (!sim_converged(w, seen, sizeof(seen), now_digest))
		return;
	int64_t now = elapsed(w);
	json_t *c;
	size_t i;
	json_array_foreach(r->changes, i, c)
	{
		if (!json_is_null(json_object_get(c, "converged_ms")) ||
		    strcmp(now_digest, r->befores[i]) == 0)
			continue;
		json_object_set_new(
		    c, "converged_ms",
		    json_integer(now - json_integer_value(json_object_get(c, "at_ms"))));
		r->pending--;
	}
}

static void chaos_change(void *ctx, const char *what)
{
	change(ctx, "%s%s", what, "");
}

static bool action(struct runner *r, const struct mm_sim_step *s);

/* between lines and while waiting: due `at` lines, daemons that died,
 * chaos, convergence times */
static void service(struct runner *r)
{
	struct sim_world *w = r->w;
	sim_reap(w);
	for (size_t i = 0; i < r->nat; i++)
		if (!r->at_done[i] && elapsed(w) >= (int64_t)r->at[i]->at_ms) {
			r->at_done[i] = true;
			action(r, r->at[i]);
		}
	if (w->chaos && sim_now_ms() >= w->chaos_next) {
		sim_chaos_fault(w);
		uint64_t gap = 60000 / (w->chaos_rate ? w->chaos_rate : 6);
		w->chaos_next = sim_now_ms() + (int64_t)gap;
	}
	converge_check(r);
}

static void pause_ms(struct runner *r, int64_t ms)
{
	int64_t end = sim_now_ms() + ms;
	while (!sim_interrupted) {
		service(r);
		int64_t left = end - sim_now_ms();
		if (left <= 0)
			break;
		sim_sleep_ms(left < POLL_MS ? left : POLL_MS);
	}
}

static struct sim_daemon *daemon_of(struct sim_world *w, const struct mm_sim_name *n)
{
	return sim_daemon_find(w, n->text, n->kind);
}

static size_t index_of(struct sim_world *w, const struct sim_daemon *d)
{
	return (size_t)(d - w->d);
}

static bool cut_apply(struct sim_world *w)
{
	char err[400];
	if (!sim_nft_apply(w, err, sizeof(err))) {
		fprintf(stderr, "meshsim: %s\n", err);
		w->failed++;
		return false;
	}
	return true;
}

static const char *smart_host(struct sim_world *w, const char *connector)
{
	const struct mm_table *t = &w->dir.table;
	for (size_t g = 0; g < t->n; g++)
		for (size_t c = 0; c < t->entries[g]->n_connectors; c++)
			if (strcmp(t->entries[g]->connectors[c]->name, connector) == 0)
				return t->entries[g]->connectors[c]->smart_host;
	return NULL;
}

static bool start(struct runner *r, struct sim_daemon *d)
{
	char err[600];
	if (!sim_daemon_start(r->w, d, err, sizeof(err))) {
		fprintf(stderr, "meshsim: %s\n", err);
		r->w->failed++;
		return false;
	}
	return true;
}

static bool action(struct runner *r, const struct mm_sim_step *s)
{
	struct sim_world *w = r->w;
	char err[600];
	switch (s->verb) {
	case MM_SIM_START:
		if (s->nnames == 0) {
			/* masters first: the servers find them at once */
			for (int k = 1; k >= 0; k--)
				for (size_t i = 0; i < w->nd; i++)
					if ((int)w->d[i].kind == (k ? SIM_MASTER : SIM_SERVER) &&
					    !start(r, &w->d[i]))
						return false;
			return true;
		}
		for (size_t i = 0; i < s->nnames; i++) {
			struct sim_daemon *d = daemon_of(w, &s->names[i]);
			change(r, "start %s%s", d->name, "");
			d->chaos = false; /* the scenario's now */
			if (!start(r, d))
				return false;
		}
		return true;
	case MM_SIM_STOP:
	case MM_SIM_KILL:
	case MM_SIM_RESTART: {
		struct sim_daemon *d = daemon_of(w, &s->names[0]);
		const char *verb = s->verb == MM_SIM_STOP   ? "stop"
		                   : s->verb == MM_SIM_KILL ? "kill"
		                                            : "restart";
		change(r, "%s %s", verb, d->name);
		d->chaos = false;
		int st = sim_daemon_signal(w, d, s->verb == MM_SIM_STOP ? SIGTERM : SIGKILL, true);
		if (s->verb == MM_SIM_STOP && st != 0) {
			/* DESIGN §7a: a daemon stops cleanly on SIGTERM */
			fprintf(stderr,
			        "meshsim: %s:%u: %s did not stop cleanly (wait status %d)\n",
			        w->sc->file, s->line, d->name, st);
			w->failed++;
		}
		if (s->verb == MM_SIM_RESTART && !start(r, d))
			return false;
		return true;
	}
	case MM_SIM_CUT:
	case MM_SIM_HEAL: {
		struct sim_daemon *a = daemon_of(w, &s->names[0]), *b = daemon_of(w, &s->names[1]);
		change(r, s->verb == MM_SIM_CUT ? "cut %s %s" : "heal %s %s", a->name, b->name);
		sim_chaos_disown(w, index_of(w, a), index_of(w, b));
		sim_cut(w, index_of(w, a), index_of(w, b), s->verb == MM_SIM_CUT);
		return cut_apply(w);
	}
	case MM_SIM_ISOLATE:
	case MM_SIM_REJOIN: {
		struct sim_daemon *a = daemon_of(w, &s->names[0]);
		bool cut = s->verb == MM_SIM_ISOLATE;
		change(r, cut ? "isolate %s%s" : "rejoin %s%s", a->name, "");
		for (size_t i = 0; i < w->nd; i++)
			if (&w->d[i] != a) {
				sim_chaos_disown(w, index_of(w, a), i);
				sim_cut(w, index_of(w, a), i, cut);
			}
		a->isolated = cut;
		return cut_apply(w);
	}
	case MM_SIM_REFUSE:
	case MM_SIM_ACCEPT:
		change(r, s->verb == MM_SIM_REFUSE ? "refuse %s%s" : "accept %s%s",
		       s->names[0].text, "");
		sim_sink_refuse(w, smart_host(w, s->names[0].text), s->verb == MM_SIM_REFUSE);
		sim_sink_disown(w, smart_host(w, s->names[0].text));
		return true;
	case MM_SIM_SEND: {
		struct sim_daemon *d = daemon_of(w, &s->names[0]);
		uint64_t ok = sim_send(w, d, s->n, s->address, err, sizeof(err));
		printf("%6.1fs  line %u: sent %llu of %llu from %s to %s%s%s\n",
		       (double)elapsed(w) / 1000, s->line, (unsigned long long)ok,
		       (unsigned long long)s->n, d->name, s->address,
		       ok < s->n ? "; refused: " : "", ok < s->n ? err : "");
		fflush(stdout);
		return true;
	}
	case MM_SIM_CHAOS_ON:
		w->chaos = true;
		w->chaos_rate = s->n;
		w->chaos_next = sim_now_ms() + (int64_t)(60000 / (s->n ? s->n : 6));
		return true;
	case MM_SIM_CHAOS_OFF: {
		w->chaos = false;
		sim_chaos_off(w);
		return true;
	}
	default: return true;
	}
}

/* a `within` condition, polled */
typedef bool (*holds_fn)(struct runner *r, const struct mm_sim_step *s, char *seen, size_t len);

static bool delivered_n(struct runner *r, const struct mm_sim_step *s, char *seen, size_t len)
{
	struct sim_count c;
	sim_account(r->w, s->address, false, &c);
	snprintf(seen, len, "%llu delivered of %llu sent", (unsigned long long)c.delivered,
	         (unsigned long long)c.sent);
	return c.delivered >= s->n;
}

static bool all_delivered(struct runner *r, const struct mm_sim_step *s, char *seen, size_t len)
{
	(void)s;
	struct sim_count c;
	sim_account(r->w, NULL, false, &c);
	snprintf(seen, len, "%llu delivered and %llu bounced of %llu sent",
	         (unsigned long long)c.delivered, (unsigned long long)c.bounced,
	         (unsigned long long)c.sent);
	return c.delivered + c.bounced >= c.sent;
}

static bool route_via(struct runner *r, const struct mm_sim_step *s, char *seen, size_t len)
{
	struct sim_daemon *d = daemon_of(r->w, &s->names[0]);
	return sim_route_via(r->w, d, s->address, &s->names[1], seen, len);
}

static bool state_is(struct runner *r, const struct mm_sim_step *s, char *seen, size_t len)
{
	struct sim_daemon *at = s->nnames > 1 ? daemon_of(r->w, &s->names[1]) : NULL;
	return sim_state_is(r->w, at, &s->names[0], s->up, seen, len);
}

static bool digests_equal(struct runner *r, const struct mm_sim_step *s, char *seen, size_t len)
{
	(void)s;
	return sim_converged(r->w, seen, len, NULL);
}

static bool poll_within(struct runner *r, const struct mm_sim_step *s, holds_fn f, const char *what)
{
	int64_t begin = sim_now_ms();
	char seen[600] = "";
	for (bool first = true;; first = false) {
		service(r);
		/* a sample taken after T is no proof that it held within T */
		int64_t sampled = sim_now_ms();
		if (!first && sampled - begin > (int64_t)s->within_ms)
			break;
		if (f(r, s, seen, sizeof(seen))) {
			record(r, s, true, what, seen);
			return true;
		}
		if (sim_interrupted || sim_now_ms() - begin >= (int64_t)s->within_ms)
			break;
		sim_sleep_ms(POLL_MS);
	}
	char t[700];
	snprintf(t, sizeof(t), "%s after %.1f s", seen, (double)(sim_now_ms() - begin) / 1000);
	record(r, s, false, what, t);
	return false;
}

/* the table as the first running server holds it, as meshctl shows it */
static void show_table(struct sim_world *w, const char *title)
{
	for (size_t i = 0; i < w->nd; i++) {
		struct sim_daemon *d = &w->d[i];
		if (d->pid <= 0 || d->kind != SIM_SERVER)
			continue;
		char *text = sim_query_text(w, d, "table");
		if (text == NULL)
			continue;
		printf("\n%s, at %s (%.1f s):\n%s\n", title, d->name, (double)elapsed(w) / 1000,
		       text);
		free(text);
		fflush(stdout);
		return;
	}
}

static void step(struct runner *r, const struct mm_sim_step *s)
{
	struct sim_world *w = r->w;
	char what[600], seen[600];
	switch (s->verb) {
	case MM_SIM_SET: return; /* given to the daemons when they start */
	case MM_SIM_WAIT: pause_ms(r, (int64_t)s->wait_ms); return;
	case MM_SIM_WAIT_CONVERGED:
		if (poll_within(r, s, digests_equal, "converged (one digest)") && !r->table_shown) {
			r->table_shown = true;
			show_table(w, "the table");
		}
		return;
	case MM_SIM_EXPECT_DELIVERED:
		snprintf(what, sizeof(what), "%llu delivered%s%s", (unsigned long long)s->n,
		         s->address ? " to " : "", s->address ? s->address : "");
		poll_within(r, s, delivered_n, what);
		return;
	case MM_SIM_EXPECT_ALL_DELIVERED: poll_within(r, s, all_delivered, "all delivered"); return;
	case MM_SIM_EXPECT_ROUTE:
		snprintf(what, sizeof(what), "route from %s to %s via %s", s->names[0].text,
		         s->address, s->names[1].text);
		poll_within(r, s, route_via, what);
		return;
	case MM_SIM_EXPECT_STATE:
		snprintf(what, sizeof(what), "%s %s%s%s", s->names[0].text, s->up ? "up" : "down",
		         s->nnames > 1 ? " at " : "", s->nnames > 1 ? s->names[1].text : "");
		poll_within(r, s, state_is, what);
		return;
	case MM_SIM_EXPECT_DIGESTS: poll_within(r, s, digests_equal, "digests equal"); return;
	case MM_SIM_EXPECT_LOST:
	case MM_SIM_EXPECT_DUPLICATES: {
		struct sim_count c;
		sim_account(w, NULL, true, &c);
		bool lost = s->verb == MM_SIM_EXPECT_LOST;
		uint64_t v = lost ? c.lost : c.duplicated;
		snprintf(what, sizeof(what), "%s %llu", lost ? "lost" : "duplicates",
		         (unsigned long long)s->n);
		snprintf(seen, sizeof(seen),
		         "%llu %s (sent %llu, delivered %llu, queued %llu, bounced %llu)",
		         (unsigned long long)v, lost ? "lost" : "duplicated",
		         (unsigned long long)c.sent, (unsigned long long)c.delivered,
		         (unsigned long long)c.queued, (unsigned long long)c.bounced);
		record(r, s, v <= s->n, what, seen);
		return;
	}
	default: action(r, s); return;
	}
}

/* X-LINK2STATE octets on the wire, from the daemons' logs ("xlink: with
 * PEER: ... N octets out, M in"): what every server sent */
static uint64_t xlink_bytes(struct sim_world *w)
{
	uint64_t total = 0;
	for (size_t i = 0; i < w->nd; i++) {
		FILE *f = fopen(w->d[i].log, "r");
		if (f == NULL)
			continue;
		char line[2048];
		while (fgets(line, sizeof(line), f)) {
			const char *p = strstr(line, " octets out, ");
			if (p == NULL || strstr(line, "xlink: with ") == NULL)
				continue;
			while (p > line && p[-1] >= '0' && p[-1] <= '9')
				p--;
			total += strtoull(p, NULL, 10);
		}
		fclose(f);
	}
	return total;
}

/* the table at the end, as the first running server (else daemon) holds it */
static json_t *final_table(struct sim_world *w)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < w->nd; i++) {
			struct sim_daemon *d = &w->d[i];
			if (d->pid <= 0 || (pass == 0 && d->kind != SIM_SERVER))
				continue;
			char *text = sim_query(w, d, "table", NULL);
			json_t *t = text ? json_loads(text, 0, NULL) : NULL;
			free(text);
			if (t)
				return t;
		}
	return NULL;
}

static void write_report(struct runner *r, const char *dir, const struct sim_count *c,
                         json_t *table)
{
	struct sim_world *w = r->w;
	mkdir(dir, 0755);
	sim_pictures(w, dir, table, r->changes);
	json_t *rep = json_pack(
	    "{s:s, s:s, s:I, s:b, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:O, s:I, s:n}",
	    "scenario", w->sc->file, "mode", "live", "seed", (json_int_t)w->seed, "passed",
	    w->failed == 0, "expectations", r->expectations, "messages", "sent",
	    (json_int_t)c->sent, "refused", (json_int_t)c->refused, "delivered",
	    (json_int_t)c->delivered, "queued", (json_int_t)c->queued, "bounced",
	    (json_int_t)c->bounced, "lost", (json_int_t)c->lost, "duplicated",
	    (json_int_t)c->duplicated, "changes", r->changes, "bytes", (json_int_t)xlink_bytes(w),
	    "event_log_sha256");
	char path[1024];
	snprintf(path, sizeof(path), "%s/report.json", dir);
	if (json_dump_file(rep, path, JSON_INDENT(2)) != 0)
		fprintf(stderr, "meshsim: cannot write %s\n", path);
	else
		printf("report: %s\n", path);
	json_decref(rep);
}

int sim_run_live(struct sim_world *w, const char *report_dir)
{
	char err[1024];
	struct runner r = {.w = w, .expectations = json_array(), .changes = json_array()};
	int rc = sim_live_setup(w, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "meshsim: %s\n", err);
		sim_live_teardown(w);
		json_decref(r.expectations);
		json_decref(r.changes);
		return rc;
	}
	for (size_t i = 0; i < w->sc->nsteps; i++)
		if (w->sc->steps[i].has_at) {
			r.at = mm_xrealloc(r.at, r.nat + 1, sizeof(*r.at));
			r.at[r.nat++] = &w->sc->steps[i];
		}
	r.at_done = mm_xcalloc(r.nat + 1, sizeof(*r.at_done));
	w->on_change = chaos_change;
	w->change_ctx = &r;
	printf("meshsim: %s, live, seed %llu: %zu daemons on loopback, work in %s\n", w->sc->file,
	       (unsigned long long)w->seed, w->nd, w->work);
	fflush(stdout);
	w->t0 = sim_now_ms();
	for (size_t i = 0; i < w->sc->nsteps && !sim_interrupted; i++) {
		const struct mm_sim_step *s = &w->sc->steps[i];
		if (!s->has_at)
			step(&r, s);
		service(&r);
	}
	for (size_t i = 0; i < r.nat; i++)
		if (!r.at_done[i])
			printf("%s:%u: not run: the scenario ended before its time (at %.1f s)\n",
			       w->sc->file, r.at[i]->line, (double)r.at[i]->at_ms / 1000);
	/* the last changes' convergence: a few seconds more to see it */
	for (int64_t end = sim_now_ms() + 5000;
	     r.pending && !sim_interrupted && sim_now_ms() < end;) {
		r.last_converge_check = 0;
		converge_check(&r);
		if (r.pending)
			sim_sleep_ms(POLL_MS);
	}
	if (!sim_interrupted)
		show_table(w, "the table at the end");
	struct sim_count c;
	sim_account(w, NULL, true, &c);
	c.refused = w->refused;
	sim_reap(w);
	printf("\nmessages: %llu sent, %llu refused, %llu delivered, %llu queued, %llu bounced, "
	       "%llu lost, %llu duplicated\n",
	       (unsigned long long)c.sent, (unsigned long long)c.refused,
	       (unsigned long long)c.delivered, (unsigned long long)c.queued,
	       (unsigned long long)c.bounced, (unsigned long long)c.lost,
	       (unsigned long long)c.duplicated);
	json_t *table = report_dir ? final_table(w) : NULL;
	w->failed += sim_stop_all(w);
	if (report_dir)
		write_report(&r, report_dir, &c, table);
	json_decref(table);
	sim_live_teardown(w);
	json_decref(r.expectations);
	json_decref(r.changes);
	free(r.at);
	free(r.at_done);
	free(r.befores);
	if (sim_interrupted) {
		printf("interrupted after %.1f s; everything stopped; the run's files are kept in "
		       "%s\n",
		       (double)elapsed(w) / 1000, w->work);
		return 128 + (int)sim_interrupted;
	}
	printf("%s: %s (%u failed) in %.1f s\n", w->sc->file, w->failed ? "FAILED" : "passed",
	       w->failed, (double)elapsed(w) / 1000);
	if (w->failed) {
		printf("the daemons' logs, spools and certificates are kept in %s\n", w->work);
	} else {
		char *argv[] = {"/bin/rm", "-rf", w->work, NULL}, *out;
		sim_run_capture(argv, &out, 60000);
		free(out);
	}
	return w->failed ? 1 : 0;
}

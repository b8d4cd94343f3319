/* chaos on … chaos off in live mode (DESIGN §8): faults drawn from the
 * seed -- a kill, a restart, a cut between two daemons, a smart host
 * refusing -- never every candidate of a group down at once; at `off`
 * chaos's own faults end (its cuts heal, its refusals end, what it killed
 * runs again), and the scenario's own faults stay. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "world.h"

/* said on stdout and kept for the report */
static void told(struct sim_world *w, const char *what)
{
	char line[400];
	snprintf(line, sizeof(line), "chaos: %s", what);
	printf("%s\n", line);
	if (w->on_change)
		w->on_change(w->change_ctx, line);
}

static uint64_t draw(struct sim_world *w, uint64_t n)
{
	/* xorshift64*, seeded from --seed */
	uint64_t x = w->rng ? w->rng : (w->seed * 0x9e3779b97f4a7c15ull) | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return n ? (x * 0x2545f4914f6cdd1dull) % n : 0;
}

/* would killing d leave its group with no running candidate? */
static bool last_candidate(struct sim_world *w, const struct sim_daemon *d)
{
	if (d->kind != SIM_MASTER)
		return false;
	for (size_t i = 0; i < w->nd; i++)
		if (&w->d[i] != d && w->d[i].kind == SIM_MASTER && w->d[i].pid > 0 &&
		    strcmp(w->d[i].group, d->group) == 0)
			return false;
	return true;
}

/* what chaos stopped must run again: a daemon that does not start fails
 * the run */
static void restart_failed(struct sim_world *w, struct sim_daemon *d, const char *err)
{
	fprintf(stderr, "meshsim: chaos could not start %s again: %s\n", d->name, err);
	w->failed++;
}

void sim_chaos_fault(struct sim_world *w)
{
	char err[400];
	switch (draw(w, 3)) {
	case 0: { /* kill a running daemon, or bring back one chaos killed */
		struct sim_daemon *d = &w->d[draw(w, w->nd)];
		if (d->pid > 0 && !last_candidate(w, d)) {
			char what[200];
			snprintf(what, sizeof(what), "kill %s", d->name);
			told(w, what);
			sim_daemon_signal(w, d, SIGKILL, true);
			d->chaos = true;
		} else if (d->pid <= 0 && d->chaos) {
			char what[200];
			snprintf(what, sizeof(what), "start %s", d->name);
			told(w, what);
			if (sim_daemon_start(w, d, err, sizeof(err)))
				d->chaos = false;
			else
				restart_failed(w, d, err);
		}
		break;
	}
	case 1: { /* cut two daemons, or heal chaos's cuts */
		size_t a = draw(w, w->nd), b = draw(w, w->nd);
		if (a == b || (w->nchaos < 2 && sim_is_cut(w, a, b)))
			break; /* the scenario's own cut stays the scenario's */
		if (w->nchaos >= 2) {
			told(w, "heal its cuts");
			for (size_t i = 0; i < w->nchaos; i++)
				sim_cut(w, w->chaos_cuts[i][0], w->chaos_cuts[i][1], false);
			w->nchaos = 0;
		} else {
			char what[300];
			snprintf(what, sizeof(what), "cut %s %s", w->d[a].name, w->d[b].name);
			told(w, what);
			sim_cut(w, a, b, true);
			w->chaos_cuts[w->nchaos][0] = a;
			w->chaos_cuts[w->nchaos][1] = b;
			w->nchaos++;
		}
		sim_nft_apply(w, err, sizeof(err));
		break;
	}
	default: { /* a smart host refuses, or accepts again */
		if (w->sinks.n == 0)
			break;
		struct sim_sink *s = &w->sinks.s[draw(w, w->sinks.n)];
		if (s->refusing && !s->chaos)
			break; /* the scenario's own refusal stays the scenario's */
		char hp[80];
		snprintf(hp, sizeof(hp), "%s:%d", s->host, s->port);
		bool refuse = !s->refusing;
		char what[200];
		snprintf(what, sizeof(what), "%s %s", refuse ? "refuse" : "accept", hp);
		told(w, what);
		sim_sink_refuse(w, hp, refuse);
		s->chaos = refuse;
		break;
	}
	}
	fflush(stdout);
}

void sim_chaos_off(struct sim_world *w)
{
	char err[400];
	for (size_t i = 0; i < w->nchaos; i++)
		sim_cut(w, w->chaos_cuts[i][0], w->chaos_cuts[i][1], false);
	w->nchaos = 0;
	sim_nft_apply(w, err, sizeof(err));
	for (size_t i = 0; i < w->sinks.n; i++)
		if (w->sinks.s[i].chaos) {
			char hp[80];
			snprintf(hp, sizeof(hp), "%s:%d", w->sinks.s[i].host, w->sinks.s[i].port);
			sim_sink_refuse(w, hp, false);
			w->sinks.s[i].chaos = false;
		}
	for (size_t i = 0; i < w->nd; i++)
		if (w->d[i].chaos && w->d[i].pid <= 0) {
			if (sim_daemon_start(w, &w->d[i], err, sizeof(err)))
				w->d[i].chaos = false;
			else
				restart_failed(w, &w->d[i], err);
		}
	printf("chaos off: its cuts healed, its refusals ended, what it stopped runs again\n");
	fflush(stdout);
}

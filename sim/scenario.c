/* The scenario language (scenario.h, DESIGN §8): one line at a time, each
 * split into words, each verb's words checked in order. Pure. */
#include "scenario.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define MAX_WORDS 64

struct words {
	size_t n, i; /* words, and the next one to take */
	char *w[MAX_WORDS];
};

struct parser {
	struct mm_scenario *sc;
	unsigned line;
	bool started; /* a start line was seen: set comes before */
	char *err;
	size_t errlen;
};

static bool fail(struct parser *p, const char *fmt, ...)
{
	int k = snprintf(p->err, p->errlen, "%s:%u: ", p->sc->file, p->line);
	if (k < 0 || (size_t)k >= p->errlen)
		return false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
	va_end(ap);
	return false;
}

bool mm_scenario_duration(const char *s, uint64_t *ms)
{
	uint64_t v = 0;
	const char *c = s;
	if (!isdigit((unsigned char)*c))
		return false;
	for (; isdigit((unsigned char)*c); c++) {
		if (v > MM_SCENARIO_MAX_MS)
			return false;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	uint64_t unit;
	if (strcmp(c, "ms") == 0)
		unit = 1;
	else if (strcmp(c, "s") == 0)
		unit = 1000;
	else if (strcmp(c, "m") == 0)
		unit = 60 * 1000;
	else if (strcmp(c, "h") == 0)
		unit = 3600 * 1000;
	else
		return false;
	if (v > MM_SCENARIO_MAX_MS / unit)
		return false;
	*ms = v * unit;
	return true;
}

/* a count: decimal digits, at most a million */
static bool count(const char *s, uint64_t *n)
{
	uint64_t v = 0;
	if (*s == '\0' || strlen(s) > 7)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > 1000000)
		return false;
	*n = v;
	return true;
}

/* a setting's value: decimal digits, at most 18 of them */
static bool count_any(const char *s, uint64_t *n)
{
	uint64_t v = 0;
	if (*s == '\0' || strlen(s) > 18)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*n = v;
	return true;
}

static const char *next(struct words *w)
{
	return w->i < w->n ? w->w[w->i++] : NULL;
}

static bool is(struct words *w, const char *word)
{
	if (w->i < w->n && strcmp(w->w[w->i], word) == 0) {
		w->i++;
		return true;
	}
	return false;
}

const char *mm_scenario_kind_name(enum mm_sim_kind k)
{
	switch (k) {
	case MM_SIM_SERVER: return "server";
	case MM_SIM_MASTER: return "master";
	case MM_SIM_CONNECTOR: return "connector";
	case MM_SIM_BRIDGEHEAD: return "bridgehead";
	case MM_SIM_ANY: break;
	}
	return "object";
}

/* "what a line allows": "a server or master" */
static void allowed(unsigned want, char *out, size_t len)
{
	out[0] = '\0';
	const enum mm_sim_kind all[] = {MM_SIM_SERVER, MM_SIM_MASTER, MM_SIM_CONNECTOR,
	                                MM_SIM_BRIDGEHEAD};
	size_t k = 0, n = 0;
	for (size_t i = 0; i < 4; i++)
		n += (want & all[i]) != 0;
	for (size_t i = 0; i < 4; i++) {
		if (!(want & all[i]))
			continue;
		size_t used = strlen(out);
		snprintf(out + used, len - used, "%s%s%s",
		         k == 0       ? "a "
		         : k + 1 == n ? " or "
		                      : ", ",
		         mm_scenario_kind_name(all[i]), "");
		k++;
	}
}

/* A name operand: "NAME" or "KIND:NAME". */
static bool name(struct parser *p, struct mm_sim_step *s, const char *w, unsigned want)
{
	if (w == NULL) {
		char a[80];
		allowed(want, a, sizeof(a));
		return fail(p, "%s's name is missing", a);
	}
	struct mm_sim_name n = {.want = want};
	const char *colon = strchr(w, ':');
	if (colon) {
		const enum mm_sim_kind all[] = {MM_SIM_SERVER, MM_SIM_MASTER, MM_SIM_CONNECTOR,
		                                MM_SIM_BRIDGEHEAD};
		for (size_t i = 0; i < 4; i++) {
			const char *k = mm_scenario_kind_name(all[i]);
			if (strlen(k) == (size_t)(colon - w) && strncmp(w, k, strlen(k)) == 0)
				n.kind = all[i];
		}
		if (n.kind == MM_SIM_ANY)
			return fail(
			    p, "\"%.*s:\": no such kind (server, master, connector, bridgehead)",
			    (int)(colon - w), w);
		if (!(want & n.kind)) {
			char a[80];
			allowed(want, a, sizeof(a));
			return fail(p, "%s: the line wants %s", w, a);
		}
		w = colon + 1;
	}
	if (*w == '\0')
		return fail(p, "an empty name");
	n.text = mm_xstrdup(w);
	s->names = mm_xrealloc(s->names, s->nnames + 1, sizeof(*s->names));
	s->names[s->nnames++] = n;
	return true;
}

static bool within(struct parser *p, struct mm_sim_step *s, struct words *w, bool required)
{
	if (!is(w, "within")) {
		if (w->i < w->n)
			return fail(p, "\"%s\": want within T", w->w[w->i]);
		return required ? fail(p, "within T is missing: how long may it take?") : true;
	}
	const char *t = next(w);
	if (t == NULL)
		return fail(p, "within: the duration is missing");
	if (!mm_scenario_duration(t, &s->within_ms))
		return fail(p, "\"%s\": not a duration (250ms, 20s, 2m, 1h)", t);
	s->has_within = true;
	return true;
}

static bool duration(struct parser *p, const char *t, uint64_t *ms)
{
	if (t == NULL)
		return fail(p, "a duration is missing");
	if (!mm_scenario_duration(t, ms))
		return fail(p, "\"%s\": not a duration (250ms, 20s, 2m, 1h)", t);
	return true;
}

static bool number(struct parser *p, const char *t, uint64_t *n, const char *what)
{
	if (t == NULL)
		return fail(p, "%s is missing", what);
	if (!count(t, n))
		return fail(p, "\"%s\": not a count (0 to 1000000)", t);
	return true;
}

#define SRV_OR_MASTER (MM_SIM_SERVER | MM_SIM_MASTER)

/* local@domain: one @, both sides present, the domain dotted labels of
 * letters, digits and hyphens, nothing SMTP would need quoted */
static bool address_ok(const char *a)
{
	if (a == NULL)
		return false;
	const char *at = strchr(a, '@');
	if (at == NULL || at == a || strchr(at + 1, '@') || at[1] == '\0' || strlen(a) > 254)
		return false;
	for (const char *c = a; c < at; c++)
		if (strchr("<>()[]\\,;:\"", *c) || (unsigned char)*c <= ' ')
			return false;
	const char *d = at + 1;
	if (*d == '.' || d[strlen(d) - 1] == '.' || strstr(d, ".."))
		return false;
	for (; *d; d++)
		if (!isalnum((unsigned char)*d) && *d != '-' && *d != '.')
			return false;
	return true;
}

static bool expect_line(struct parser *p, struct mm_sim_step *s, struct words *w)
{
	const char *what = next(w);
	if (what == NULL)
		return fail(
		    p, "expect what? (delivered, all, route, state, digests, lost, duplicates)");
	if (strcmp(what, "delivered") == 0) {
		s->verb = MM_SIM_EXPECT_DELIVERED;
		if (!number(p, next(w), &s->n, "the number delivered"))
			return false;
		if (is(w, "to")) {
			const char *a = next(w);
			if (!address_ok(a))
				return fail(p, "to: \"%s\" is no address (local@domain)",
				            a ? a : "");
			s->address = mm_xstrdup(a);
		}
		return within(p, s, w, true);
	}
	if (strcmp(what, "all") == 0) {
		s->verb = MM_SIM_EXPECT_ALL_DELIVERED;
		if (!is(w, "delivered"))
			return fail(p, "want: expect all delivered within T");
		return within(p, s, w, true);
	}
	if (strcmp(what, "route") == 0) {
		s->verb = MM_SIM_EXPECT_ROUTE;
		if (!name(p, s, next(w), MM_SIM_SERVER))
			return false;
		const char *a = next(w);
		if (a == NULL)
			return fail(p,
			            "expect route SERVER ADDRESS via NAME: the address is missing");
		s->address = mm_xstrdup(a);
		if (!is(w, "via"))
			return fail(p, "want: expect route SERVER ADDRESS via NAME");
		if (!name(p, s, next(w), MM_SIM_CONNECTOR | MM_SIM_SERVER))
			return false;
		return within(p, s, w, true);
	}
	if (strcmp(what, "state") == 0) {
		s->verb = MM_SIM_EXPECT_STATE;
		if (!name(p, s, next(w),
		          MM_SIM_CONNECTOR | MM_SIM_SERVER | MM_SIM_BRIDGEHEAD | MM_SIM_MASTER))
			return false;
		const char *st = next(w);
		if (st == NULL || (strcmp(st, "up") != 0 && strcmp(st, "down") != 0))
			return fail(p, "want: expect state NAME up|down [at SERVER] within T");
		s->up = strcmp(st, "up") == 0;
		if (is(w, "at") && !name(p, s, next(w), MM_SIM_SERVER))
			return false;
		return within(p, s, w, true);
	}
	if (strcmp(what, "digests") == 0) {
		s->verb = MM_SIM_EXPECT_DIGESTS;
		if (!is(w, "equal"))
			return fail(p, "want: expect digests equal within T");
		return within(p, s, w, true);
	}
	if (strcmp(what, "lost") == 0 || strcmp(what, "duplicates") == 0) {
		s->verb = what[0] == 'l' ? MM_SIM_EXPECT_LOST : MM_SIM_EXPECT_DUPLICATES;
		return number(p, next(w), &s->n, "the count");
	}
	return fail(p,
	            "expect %s: no such expectation (delivered, all, route, state, digests, lost, "
	            "duplicates)",
	            what);
}

/* The lines `at T` may schedule, and every other line but org, set,
 * wait and expect. */
static bool action_line(struct parser *p, struct mm_sim_step *s, struct words *w, const char *verb)
{
	static const struct {
		const char *word;
		enum mm_sim_verb verb;
		unsigned want, nmin, nmax;
	} simple[] = {
	    {"stop", MM_SIM_STOP, SRV_OR_MASTER, 1, 1},
	    {"kill", MM_SIM_KILL, SRV_OR_MASTER, 1, 1},
	    {"restart", MM_SIM_RESTART, SRV_OR_MASTER, 1, 1},
	    {"cut", MM_SIM_CUT, SRV_OR_MASTER, 2, 2},
	    {"heal", MM_SIM_HEAL, SRV_OR_MASTER, 2, 2},
	    {"isolate", MM_SIM_ISOLATE, SRV_OR_MASTER, 1, 1},
	    {"rejoin", MM_SIM_REJOIN, SRV_OR_MASTER, 1, 1},
	    {"refuse", MM_SIM_REFUSE, MM_SIM_CONNECTOR, 1, 1},
	    {"accept", MM_SIM_ACCEPT, MM_SIM_CONNECTOR, 1, 1},
	};
	if (strcmp(verb, "start") == 0) {
		s->verb = MM_SIM_START;
		if (is(w, "all"))
			return w->i == w->n || fail(p, "start all: nothing may follow");
		if (w->i == w->n)
			return fail(p, "want: start all | start NAME...");
		while (w->i < w->n)
			if (!name(p, s, next(w), SRV_OR_MASTER))
				return false;
		return true;
	}
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcmp(verb, simple[i].word) != 0)
			continue;
		s->verb = simple[i].verb;
		size_t n = w->n - w->i;
		if (n < simple[i].nmin || n > simple[i].nmax)
			return fail(p, "%s takes %u name%s", verb, simple[i].nmin,
			            simple[i].nmax > simple[i].nmin ? "s or more"
			            : simple[i].nmin > 1            ? "s"
			                                            : "");
		while (w->i < w->n)
			if (!name(p, s, next(w), simple[i].want))
				return false;
		if (s->verb == MM_SIM_CUT || s->verb == MM_SIM_HEAL) {
			if (strcmp(s->names[0].text, s->names[1].text) == 0 &&
			    s->names[0].kind == s->names[1].kind)
				return fail(p, "%s %s %s: one object twice", verb, s->names[0].text,
				            s->names[1].text);
		}
		return true;
	}
	if (strcmp(verb, "send") == 0) {
		s->verb = MM_SIM_SEND;
		if (!number(p, next(w), &s->n, "send N: the number"))
			return false;
		if (s->n == 0)
			return fail(p, "send 0: nothing to send");
		if (!is(w, "from"))
			return fail(p, "want: send N from SERVER to ADDRESS");
		if (!name(p, s, next(w), MM_SIM_SERVER))
			return false;
		if (!is(w, "to"))
			return fail(p, "want: send N from SERVER to ADDRESS");
		const char *a = next(w);
		if (!address_ok(a))
			return fail(p, "send: \"%s\" is no address (local@domain)", a ? a : "");
		s->address = mm_xstrdup(a);
		return w->i == w->n ||
		       fail(p, "\"%s\": nothing may follow the address", w->w[w->i]);
	}
	if (strcmp(verb, "chaos") == 0) {
		if (is(w, "off")) {
			s->verb = MM_SIM_CHAOS_OFF;
			return w->i == w->n || fail(p, "chaos off: nothing may follow");
		}
		if (!is(w, "on"))
			return fail(p, "want: chaos on [N/m] | chaos off");
		s->verb = MM_SIM_CHAOS_ON;
		s->n = 6;
		const char *r = next(w);
		if (r) {
			char digits[16];
			size_t len = strlen(r);
			if (len < 3 || len >= sizeof(digits) || strcmp(r + len - 2, "/m") != 0)
				return fail(p, "\"%s\": want N/m (faults a minute)", r);
			memcpy(digits, r, len - 2);
			digits[len - 2] = '\0';
			if (!count(digits, &s->n) || s->n == 0 || s->n > 6000)
				return fail(p, "\"%s\": want N/m, N from 1 to 6000", r);
		}
		return w->i == w->n || fail(p, "chaos on: nothing may follow the rate");
	}
	return fail(p,
	            "\"%s\": no such line (org, set, start, stop, kill, restart, cut, heal, "
	            "isolate, rejoin, refuse, accept, send, wait, at, chaos, expect)",
	            verb);
}

static bool step_line(struct parser *p, struct words *w)
{
	const char *verb = next(w);
	struct mm_sim_step s = {.line = p->line};
	bool ok;
	if (strcmp(verb, "org") == 0) {
		if (p->sc->org)
			return fail(p, "a second org line (the first is line %u)", p->sc->org_line);
		if (w->n != 2)
			return fail(p, "want: org FILE.ldif");
		p->sc->org = mm_xstrdup(w->w[1]);
		p->sc->org_line = p->line;
		return true;
	}
	if (p->sc->org == NULL)
		return fail(
		    p, "\"%s\" before org: the first line that is not a comment is org FILE", verb);
	if (strcmp(verb, "set") == 0) {
		if (p->started)
			return fail(p, "set after a start: settings are given when daemons start");
		const char *kv = next(w);
		if (kv == NULL || w->i != w->n || strchr(kv, '=') == NULL || kv[0] == '=')
			return fail(p, "want: set KEY=VALUE");
		uint64_t v;
		const char *val = strchr(kv, '=') + 1;
		if (!count_any(val, &v))
			return fail(p, "set %s: the value is no whole number", kv);
		s.verb = MM_SIM_SET;
		s.setting = mm_xstrdup(kv);
		ok = true;
	} else if (strcmp(verb, "wait") == 0) {
		if (is(w, "converged")) {
			s.verb = MM_SIM_WAIT_CONVERGED;
			s.within_ms = 60 * 1000;
			ok = within(p, &s, w, false);
			s.has_within = true;
		} else {
			s.verb = MM_SIM_WAIT;
			ok = duration(p, next(w), &s.wait_ms);
		}
	} else if (strcmp(verb, "expect") == 0) {
		ok = expect_line(p, &s, w);
	} else if (strcmp(verb, "at") == 0) {
		s.has_at = true;
		ok = duration(p, next(w), &s.at_ms);
		const char *action = next(w);
		if (ok && action == NULL)
			ok = fail(p, "at T: the action is missing");
		else if (ok && (strcmp(action, "at") == 0 || strcmp(action, "org") == 0 ||
		                strcmp(action, "set") == 0 || strcmp(action, "wait") == 0 ||
		                strcmp(action, "expect") == 0))
			ok = fail(
			    p,
			    "at T %s: only an action may be timed (start, stop, kill, restart, "
			    "cut, heal, isolate, rejoin, refuse, accept, send, chaos)",
			    action);
		else if (ok)
			ok = action_line(p, &s, w, action);
	} else {
		ok = action_line(p, &s, w, verb);
	}
	if (ok && w->i != w->n)
		ok = fail(p, "\"%s\": unexpected at the end of the line", w->w[w->i]);
	if (ok && s.verb == MM_SIM_START)
		p->started = true;
	struct mm_scenario *sc = p->sc;
	sc->steps = mm_xrealloc(sc->steps, sc->nsteps + 1, sizeof(*sc->steps));
	sc->steps[sc->nsteps++] = s; /* kept even when bad: freed with the rest */
	return ok;
}

bool mm_scenario_parse(struct mm_scenario *sc, const char *file, const char *text, size_t len,
                       char *err, size_t errlen)
{
	*sc = (struct mm_scenario){.file = mm_xstrdup(file)};
	struct parser p = {.sc = sc, .err = err, .errlen = errlen};
	if (errlen)
		err[0] = '\0';
	if (len > MM_SCENARIO_MAX_BYTES)
		return fail(&p, "over %u octets: not a scenario", MM_SCENARIO_MAX_BYTES);
	char buf[MM_SCENARIO_MAX_LINE + 1];
	size_t at = 0;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		at = 3; /* a UTF-8 byte order mark, as some editors write */
	while (at < len) {
		p.line++;
		const char *nl = memchr(text + at, '\n', len - at);
		size_t l = nl ? (size_t)(nl - (text + at)) : len - at;
		if (l > MM_SCENARIO_MAX_LINE)
			return fail(&p, "a line over %u octets", MM_SCENARIO_MAX_LINE);
		memcpy(buf, text + at, l);
		buf[l] = '\0';
		at += l + (nl != NULL);
		if (memchr(buf, '\0', l))
			return fail(&p, "a NUL byte");
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		struct words w = {0};
		for (char *save = NULL, *t = strtok_r(buf, " \t\r\f\v", &save); t;
		     t = strtok_r(NULL, " \t\r\f\v", &save)) {
			if (w.n == MAX_WORDS)
				return fail(&p, "over %d words on a line", MAX_WORDS);
			w.w[w.n++] = t;
		}
		if (w.n == 0)
			continue;
		for (size_t i = 0; i < w.n; i++)
			for (const char *c = w.w[i]; *c; c++)
				if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
					return fail(&p, "a control character");
		if (!step_line(&p, &w))
			return false;
	}
	if (sc->org == NULL) {
		p.line = p.line ? p.line : 1;
		return fail(&p, "no org line: a scenario starts with org FILE.ldif");
	}
	return true;
}

static bool resolve_name(struct parser *p, struct mm_sim_name *n, const struct mm_scenario_org *org)
{
	unsigned k = org->kinds(org->ctx, n->text);
	unsigned want = n->kind != MM_SIM_ANY ? (unsigned)n->kind : n->want;
	unsigned hit = k & want;
	if (hit == 0) {
		char a[80];
		allowed(want, a, sizeof(a));
		if (k != 0)
			return fail(p, "%s is no %s of the organization", n->text, a + 2);
		return fail(p, "%s: the organization has no %s of that name", n->text, a + 2);
	}
	if (hit & (hit - 1))
		return fail(p, "%s names a server and a master (or connector): write KIND:%s",
		            n->text, n->text);
	n->kind = (enum mm_sim_kind)hit;
	return true;
}

bool mm_scenario_resolve(struct mm_scenario *sc, const struct mm_scenario_org *org, char *err,
                         size_t errlen)
{
	struct parser p = {.sc = sc, .err = err, .errlen = errlen};
	for (size_t i = 0; i < sc->nsteps; i++) {
		struct mm_sim_step *s = &sc->steps[i];
		p.line = s->line;
		for (size_t j = 0; j < s->nnames; j++)
			if (!resolve_name(&p, &s->names[j], org))
				return false;
		if ((s->verb == MM_SIM_CUT || s->verb == MM_SIM_HEAL) &&
		    strcmp(s->names[0].text, s->names[1].text) == 0 &&
		    s->names[0].kind == s->names[1].kind)
			return fail(&p, "%s names one %s twice: nothing to cut between",
			            s->names[0].text, mm_scenario_kind_name(s->names[0].kind));
		if ((s->verb == MM_SIM_REFUSE || s->verb == MM_SIM_ACCEPT) &&
		    !org->smart_host(org->ctx, s->names[0].text))
			return fail(&p, "connector %s has no smart host to refuse or accept",
			            s->names[0].text);
		char why[256];
		if (s->verb == MM_SIM_SET &&
		    !org->setting_ok(org->ctx, s->setting, why, sizeof(why)))
			return fail(&p, "set %s: %s", s->setting, why);
	}
	return true;
}

void mm_scenario_free(struct mm_scenario *sc)
{
	for (size_t i = 0; i < sc->nsteps; i++) {
		struct mm_sim_step *s = &sc->steps[i];
		for (size_t j = 0; j < s->nnames; j++)
			free(s->names[j].text);
		free(s->names);
		free(s->address);
		free(s->setting);
	}
	free(sc->steps);
	free(sc->file);
	free(sc->org);
	*sc = (struct mm_scenario){0};
}

#include "settings.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	size_t off;
	uint64_t def, lo, hi; /* the value must lie in [lo, hi] */
	const char *help;
} table[] = {
/* most settings become 32-bit times and counts in the queue manager */
#define S(n, d, h) R(n, d, 0, UINT32_MAX, h)
#define R(n, d, lo, hi, h)                                        \
	{                                                         \
#n, offsetof(struct mm_settings, n), d, lo, hi, h \
	}
    R(expire_s, 172800, 1, 100ull * 365 * 86400,
      "seconds before an undeliverable message is returned (5.4.7)"),
    S(retry_min_ms, 60000, "first retry delay of a next hop"),
    S(retry_max_ms, 3600000, "longest retry delay (backoff doubles up to it)"),
    R(retry_jitter_pct, 20, 0, 100, "retry times vary by +/- this percentage"),
    S(glitch_retry_count, 3, "failed tries before a next hop (and a connector) counts as down"),
    S(glitch_retry_interval_ms, 60000, "delay between glitch retries"),
    R(ping_interval_ms, 1000, 1, UINT32_MAX,
      "routing engine (691): a Ping when nothing else went out for this long"),
    R(dead_after, 3, 1, 1000, "routing engine: intervals of silence that close a connection"),
    R(master_retry_min_ms, 1000, 1, UINT32_MAX,
      "routing engine: first wait between rounds over the master candidates"),
    /* with its jitter (+20 %) at most one dead interval at the default
     * settings (3 s): a master that comes back publishes after one dead
     * interval, and by then every member has dialled it and said how its
     * bridgeheads are, so none is marked down for being late */
    R(master_retry_max_ms, 2500, 1, UINT32_MAX,
      "routing engine: longest wait between rounds (doubling up to it)"),
    R(down_probe_interval_ms, 60000, 1, UINT32_MAX,
      "a connector hop that is down is probed this often (connect, EHLO, QUIT)"),
    S(damp_penalty, 1000, "flap damping: added to a connector's figure at each down"),
    S(damp_suppress, 1500, "flap damping: above this figure a connector is held down"),
    S(damp_reuse, 750, "flap damping: a held connector is released below this figure"),
    R(damp_half_life_ms, 600000, 1, UINT32_MAX, "flap damping: the figure halves this often"),
    S(damp_max_hold_ms, 1800000, "flap damping: longest hold after the last down"),
    S(idle_timeout_s, 300, "SMTP server: idle time before 421"),
    S(command_deadline_s, 120, "SMTP server: a whole command line must arrive within this"),
    S(data_deadline_s, 300, "SMTP server: DATA/BDAT time allowed besides the minimum rate"),
    R(data_min_rate, 500, 1, UINT32_MAX,
      "SMTP server: bytes a second a DATA/BDAT transfer must keep up"),
    S(max_reply_backlog, 65536, "SMTP server: unsent reply bytes before a session is not read"),
    S(max_message_size, 10485760, "message size limit where mmMaxMessageSize is not set"),
    S(connect_timeout_ms, 30000, "SMTP client: connect timeout"),
    S(connection_cache_ms, 2000, "SMTP client: a connection with nothing to carry waits this long"),
    /* a master's push reaches every member in milliseconds: 5 s covers a
     * slow master many times over, and is short against a real outage */
    S(reroute_hold_ms, 5000,
      "mail that would go straight back to the server it came from, under an unchanged "
      "table, waits this long for the table to change (0: never waits)"),
    S(reply_timeout_s, 300, "SMTP client: timeout per reply"),
    S(max_rcpts, 1000, "recipients per transaction (452 4.5.3 beyond)"),
    S(max_sessions_per_ip, 50, "concurrent sessions from one client address"),
    S(max_sessions, 2000, "concurrent SMTP sessions in all"),
    R(max_errors, 20, 1, UINT32_MAX, "protocol errors in a session before 421"),
    R(dest_concurrency, 20, 1, 10000, "connections to one next hop"),
    R(insecure, 0, 0, 1, "1: routing traffic (691) in plain TCP without --tls (tests only)"),
    R(test_hooks, 0, 0, 1,
      "1: the control socket takes test-report (the convergence bench injects reports)"),
    R(sender_login_mismatch, 1, 0, 1,
      "1: a client authenticated by AUTH PLAIN/LOGIN may send only as its own addresses "
      "(553 5.7.1)"),
    R(compact_after_s, 300, 0, 100ull * 365 * 86400,
      "queued messages of an older spool segment move to the current one"),
    R(xlink_digest_interval_ms, 30000, 1, UINT32_MAX,
      "X-LINK2STATE: each bridgehead of a routing-group connector compares digests with one "
      "live remote bridgehead this often (anti-entropy)"),
    R(xlink_max_transfer, 8388608, 1024, 1ull << 30,
      "X-LINK2STATE: largest transfer taken, decoded (552 5.3.4 beyond)"),
    S(xlink_penalty_ms, 60000,
      "X-LINK2STATE: a peer that sent an entry failing a check is not heard for this long"),
#undef S
#undef R
};

#define N (sizeof(table) / sizeof(table[0]))

void mm_settings_default(struct mm_settings *s)
{
	for (size_t i = 0; i < N; i++)
		*(uint64_t *)((char *)s + table[i].off) = table[i].def;
}

bool mm_settings_set(struct mm_settings *s, const char *kv, char *err, size_t errlen)
{
	const char *eq = strchr(kv, '=');
	if (eq == NULL) {
		snprintf(err, errlen, "--set %s: want KEY=VALUE", kv);
		return false;
	}
	for (size_t i = 0; i < N; i++) {
		if (strlen(table[i].name) != (size_t)(eq - kv) ||
		    strncmp(table[i].name, kv, (size_t)(eq - kv)) != 0)
			continue;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(eq + 1, &end, 10);
		if (eq[1] == '\0' || *end != '\0' || errno != 0 || eq[1] == '-') {
			snprintf(err, errlen, "--set %s: not a number", kv);
			return false;
		}
		if (v < table[i].lo || v > table[i].hi) {
			snprintf(err, errlen, "--set %s: out of range [%llu, %llu]", kv,
			         (unsigned long long)table[i].lo, (unsigned long long)table[i].hi);
			return false;
		}
		*(uint64_t *)((char *)s + table[i].off) = v;
		return true;
	}
	snprintf(err, errlen, "--set %.*s: unknown setting (see --help)", (int)(eq - kv), kv);
	return false;
}

void mm_settings_help(FILE *f)
{
	fprintf(f, "settings (--set KEY=VALUE):\n");
	for (size_t i = 0; i < N; i++)
		fprintf(f, "  %-26s %10llu  %s\n", table[i].name, (unsigned long long)table[i].def,
		        table[i].help);
}

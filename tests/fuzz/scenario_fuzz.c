/* libFuzzer target: a meshsim scenario through the parser and, when it
 * parses, the resolver against a small fake organization (every name that
 * starts with an upper-case letter is a server, "M..." a master, "C..." a
 * connector with a smart host, "K..." both a server and a master). */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned kinds(void *ctx, const char *name)
{
	(void)ctx;
	switch (name[0]) {
	case 'M': return MM_SIM_MASTER;
	case 'C': return MM_SIM_CONNECTOR;
	case 'K': return MM_SIM_SERVER | MM_SIM_MASTER;
	default:
		if (strchr(name, '/'))
			return MM_SIM_BRIDGEHEAD;
		return isupper((unsigned char)name[0]) ? MM_SIM_SERVER : 0;
	}
}

static bool smart_host(void *ctx, const char *connector)
{
	(void)ctx;
	return connector[1] != 'x';
}

static bool setting_ok(void *ctx, const char *kv, char *why, size_t len)
{
	(void)ctx;
	if (strncmp(kv, "ping_interval_ms=", 17) == 0)
		return true;
	strncpy(why, "unknown", len);
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_scenario sc;
	char err[512];
	struct mm_scenario_org org = {
	    .kinds = kinds, .smart_host = smart_host, .setting_ok = setting_ok};
	if (mm_scenario_parse(&sc, "fuzz.sim", (const char *)data, size, err, sizeof(err)))
		mm_scenario_resolve(&sc, &org, err, sizeof(err));
	mm_scenario_free(&sc);
	return 0;
}

/* libFuzzer target: the stored-password check of AUTH PLAIN/LOGIN with an
 * arbitrary stored value (directory data users may write themselves).
 * The input is "stored NUL given": the stored value comes first, so the
 * fuzzer grows it past every buffer; a scheme prefix is tried on it too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "password.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const scheme[] = {"", "{SHA}", "{SSHA}", "{SSHA256}"};
	const uint8_t *nul = memchr(data, '\0', size);
	size_t sl = nul ? (size_t)(nul - data) : size;
	const char *given = "secret";
	char *g = NULL;
	if (nul) {
		size_t gl = size - sl - 1;
		g = malloc(gl + 1);
		memcpy(g, nul + 1, gl);
		g[gl] = '\0';
		given = g;
	}
	for (size_t i = 0; i < sizeof(scheme) / sizeof(scheme[0]); i++) {
		size_t pl = strlen(scheme[i]);
		char *stored = malloc(pl + sl + 1);
		memcpy(stored, scheme[i], pl);
		memcpy(stored + pl, data, sl);
		stored[pl + sl] = '\0';
		(void)mm_password_ok(stored, given);
		free(stored);
	}
	free(g);
	return 0;
}

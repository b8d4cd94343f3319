/* libFuzzer target: SPOOL/damping (core/damping_file.h). What parses must
 * format back and parse to the same entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "damping_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MM_DAMPING_FILE_MAX)
		return 0;
	struct mm_damp_saved *s, *t;
	size_t n, m, len;
	int64_t at, at2;
	char err[200];
	if (!mm_damping_parse((const char *)data, size, &s, &n, &at, err, sizeof(err)))
		return 0;
	char *text = mm_damping_format(s, n, at, &len);
	if (!mm_damping_parse(text, len, &t, &m, &at2, err, sizeof(err)) || at2 != at || m > n)
		abort();
	for (size_t i = 0, k = 0; i < n; i++) {
		if (s[i].connector[0] == '\0')
			continue; /* not written */
		if (k >= m || strcmp(s[i].connector, t[k].connector) != 0 ||
		    s[i].figure != t[k].figure || s[i].suppressed != t[k].suppressed ||
		    s[i].last_down_age != t[k].last_down_age)
			abort();
		k++;
	}
	free(text);
	mm_damp_saved_free(s, n);
	mm_damp_saved_free(t, m);
	return 0;
}

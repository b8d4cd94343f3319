/* libFuzzer target: LDIF text through the reader and the directory builder,
 * then the address-space parser and matcher on the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "addrspace.h"
#include "directory.h"
#include "ldif_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_dirents entries = {0};
	struct mm_diag diag = {0};
	if (mm_ldif_parse("fuzz", (const char *)data, size, &entries, &diag) == 0) {
		struct mm_directory dir;
		if (mm_directory_build(&entries, &dir, &diag))
			mm_directory_free(&dir);
	}
	mm_dirents_free(&entries);
	mm_diag_free(&diag);

	char text[MM_ADDRSPACE_MAX + 2];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	struct mm_addrspace as;
	const char *why;
	if (mm_addrspace_parse(text, &as, &why))
		mm_addrspace_match(as.pattern, "a.example.mil");
	return 0;
}

#include "directory.h"

#include <errno.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "addrspace.h"
#include "ldap_read.h"
#include "ldif_read.h"

enum mm_load_status mm_directory_load(const char *spec, struct mm_directory *dir,
                                      struct mm_diag *diag)
{
	struct mm_dirents entries = {0};
	enum mm_load_status st = MM_LOAD_BAD_DATA;
	*dir = (struct mm_directory){0};
	if (strncmp(spec, "ldif:", 5) == 0) {
		if (access(spec + 5, R_OK) != 0) {
			mm_diag_add(diag, spec + 5, "cannot open: %s", strerror(errno));
			st = MM_LOAD_NOINPUT;
		} else if (mm_ldif_read_file(spec + 5, &entries, diag) == 0 &&
		           mm_directory_build(&entries, dir, diag))
			st = MM_LOAD_OK;
	} else if (strncmp(spec, "ldap://", 7) == 0 || strncmp(spec, "ldapi://", 8) == 0) {
		int unavailable = 0;
		if (mm_ldap_read(spec, &entries, diag, &unavailable) != 0)
			st = unavailable ? MM_LOAD_UNAVAILABLE : MM_LOAD_BAD_DATA;
		else if (mm_directory_build(&entries, dir, diag))
			st = MM_LOAD_OK;
	} else {
		mm_diag_add(diag, spec, "a directory is ldif:PATH or ldap://HOST:PORT/BASE-DN");
		st = MM_LOAD_USAGE;
	}
	mm_dirents_free(&entries);
	return st;
}

/* mailstore.h: a server's Maildirs, read for the Message-IDs they hold. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailstore.h"

/* the Message-ID header of a message file, in id (empty: none) */
void sim_message_id(const char *path, char *id, unsigned long cap)
{
	id[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n'))
			break;
		if (strncasecmp(line, "Message-ID:", 11) == 0) {
			char *v = line + 11;
			while (*v == ' ' || *v == '\t')
				v++;
			v[strcspn(v, "\r\n")] = '\0';
			snprintf(id, cap, "%s", v);
			break;
		}
	}
	fclose(f);
}

void sim_mailstore_scan(const char *base,
                        void (*each)(void *ctx, const char *msgid, const char *box), void *ctx)
{
	DIR *top = opendir(base);
	if (top == NULL)
		return;
	struct dirent *box;
	while ((box = readdir(top)) != NULL) {
		if (box->d_name[0] == '.')
			continue;
		const char *sub[] = {"new", "cur"};
		for (int s = 0; s < 2; s++) {
			char path[1400];
			snprintf(path, sizeof(path), "%s/%s/%s", base, box->d_name, sub[s]);
			DIR *md = opendir(path);
			if (md == NULL)
				continue;
			struct dirent *m;
			while ((m = readdir(md)) != NULL) {
				if (m->d_name[0] == '.')
					continue;
				char file[1800], id[512];
				snprintf(file, sizeof(file), "%s/%s", path, m->d_name);
				sim_message_id(file, id, sizeof(id));
				if (id[0])
					each(ctx, id, box->d_name);
			}
			closedir(md);
		}
	}
	closedir(top);
}

#include "json.h"

void json_init(struct json *j, FILE *f)
{
	*j = (struct json){.f = f};
}

/* before a value: a comma unless it is the first in its container, or it
 * follows a key (json_key already placed the comma) */
static void value_prefix(struct json *j)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
}

static void open_(struct json *j, char c)
{
	value_prefix(j);
	fputc(c, j->f);
	if (j->depth < 63)
		j->depth++;
	j->need_comma[j->depth] = false;
}

static void close_(struct json *j, char c)
{
	fputc(c, j->f);
	if (j->depth > 0)
		j->depth--;
}

void json_begin_obj(struct json *j)
{
	open_(j, '{');
}
void json_end_obj(struct json *j)
{
	close_(j, '}');
}
void json_begin_arr(struct json *j)
{
	open_(j, '[');
}
void json_end_arr(struct json *j)
{
	close_(j, ']');
}

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void json_key(struct json *j, const char *key)
{
	value_prefix(j);
	put_string(j->f, key);
	fputc(':', j->f);
	j->need_comma[j->depth] = false; /* the value follows without a comma */
}

void json_str(struct json *j, const char *s)
{
	value_prefix(j);
	if (s)
		put_string(j->f, s);
	else
		fputs("null", j->f);
}

void json_u64(struct json *j, uint64_t v)
{
	value_prefix(j);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_null(struct json *j)
{
	json_str(j, NULL);
}

void json_bool(struct json *j, bool v)
{
	value_prefix(j);
	fputs(v ? "true" : "false", j->f);
}

/* A small streaming JSON writer: commas and escaping are its business, the
 * shape is the caller's. Output is compact, one document per call site. */
#ifndef MM_JSON_H
#define MM_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *f;
	int depth;
	bool need_comma[64];
};

void json_init(struct json *j, FILE *f);
void json_begin_obj(struct json *j);
void json_end_obj(struct json *j);
void json_begin_arr(struct json *j);
void json_end_arr(struct json *j);
void json_key(struct json *j, const char *key);
void json_str(struct json *j, const char *s); /* NULL: null */
void json_u64(struct json *j, uint64_t v);
void json_null(struct json *j);
void json_bool(struct json *j, bool v);

#endif

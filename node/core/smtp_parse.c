#include "smtp_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum mm_smtp_verb verb;
} verbs[] = {
    {"HELO", MM_SMTP_HELO},         {"EHLO", MM_SMTP_EHLO}, {"MAIL", MM_SMTP_MAIL},
    {"RCPT", MM_SMTP_RCPT},         {"DATA", MM_SMTP_DATA}, {"BDAT", MM_SMTP_BDAT},
    {"RSET", MM_SMTP_RSET},         {"NOOP", MM_SMTP_NOOP}, {"QUIT", MM_SMTP_QUIT},
    {"VRFY", MM_SMTP_VRFY},         {"EXPN", MM_SMTP_EXPN}, {"HELP", MM_SMTP_HELP},
    {"STARTTLS", MM_SMTP_STARTTLS}, {"AUTH", MM_SMTP_AUTH}, {"X-LINK2STATE", MM_SMTP_XLINK2STATE},
};

enum mm_smtp_verb mm_smtp_verb(const char *line, const char **arg)
{
	size_t n = strcspn(line, " ");
	*arg = line[n] == ' ' ? line + n + 1 : line + n;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == n && strncasecmp(line, verbs[i].name, n) == 0)
			return verbs[i].verb;
	return MM_SMTP_UNKNOWN;
}

/* RFC 5321 §4.1.2 atext */
static bool atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool dot_string(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (!atext((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static bool quoted_string(const char *s, size_t n)
{
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return false;
	for (size_t i = 1; i < n - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			if (++i >= n - 1 || (unsigned char)s[i] < 32 || (unsigned char)s[i] > 126)
				return false;
		} else if (c < 32 || c > 126 || c == '"') {
			return false;
		}
	}
	return true;
}

static bool domain_name(const char *s, size_t n)
{
	if (n == 0 || n > MM_SMTP_DOMAIN_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (isalnum(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[n - 1] != '-';
}

static bool address_literal(const char *s, size_t n)
{
	if (n < 3 || s[0] != '[' || s[n - 1] != ']')
		return false;
	for (size_t i = 1; i < n - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '.' || c == ':'))
			return false;
	}
	return true;
}

bool mm_smtp_mailbox_valid(const char *s, size_t n)
{
	if (n + 2 > MM_SMTP_PATH_MAX)
		return false;
	const char *at = NULL;
	if (n > 0 && s[0] == '"') {
		/* the @ after the closing quote */
		for (size_t i = 1; i < n; i++) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"') {
				at = i + 1 < n && s[i + 1] == '@' ? s + i + 1 : NULL;
				break;
			}
		}
	} else {
		at = memchr(s, '@', n);
	}
	if (at == NULL)
		return false;
	size_t ln = (size_t)(at - s), dn = n - ln - 1;
	if (ln > MM_SMTP_LOCAL_MAX)
		return false;
	if (!dot_string(s, ln) && !quoted_string(s, ln))
		return false;
	return domain_name(at + 1, dn) || address_literal(at + 1, dn);
}

/* RFC 3461 §4: hexchar = "+" followed by two upper case hexadecimal
 * digits */
static int hexchar(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool mm_smtp_xtext_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			int hi = i + 2 < n ? hexchar((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? hexchar((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return false;
			/* an encoded control character would come out of
			 * the value in a DSN field or a log: refused (RFC
			 * 3461 §4.2 and §4.4 carry addresses and printable
			 * identifiers, neither has them) */
			unsigned v = (unsigned)(hi << 4 | lo);
			if (v < 0x20 || v == 0x7f)
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			/* RFC 3461 §4: xchar is "!" (33) to "~" (126)
			 * except "+" and "=" */
			return false;
		}
	}
	return true;
}

/* RFC 5321 §4.1.2: Atom = 1*atext */
static bool atom(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!atext((unsigned char)s[i]))
			return false;
	return true;
}

/* "FROM:" or "TO:" then a path in angle brackets. A source route
 * (<@a,@b:user@d>) is accepted and dropped (RFC 5321 §4.1.1.3). Returns the
 * rest (parameters) or NULL. */
static const char *path(const char *arg, const char *keyword, char *addr, bool allow_null)
{
	size_t kn = strlen(keyword);
	if (strncasecmp(arg, keyword, kn) != 0)
		return NULL;
	arg += kn;
	if (*arg == ' ') /* tolerated by every MTA in the field */
		arg++;
	if (*arg != '<')
		return NULL;
	const char *end = strchr(arg, '>');
	if (end == NULL || end - arg + 1 > MM_SMTP_PATH_MAX)
		return NULL;
	const char *a = arg + 1;
	if (*a == '@') {
		const char *colon = memchr(a, ':', (size_t)(end - a));
		if (colon == NULL)
			return NULL;
		a = colon + 1;
	}
	size_t n = (size_t)(end - a);
	if (n == 0) {
		if (!allow_null)
			return NULL;
	} else if (!allow_null && a == arg + 1 && n == 10 &&
	           strncasecmp(a, "postmaster", 10) == 0) {
		/* RFC 5321 §4.1.1.3: RCPT TO:<Postmaster> has no domain and is
		 * accepted all the same; the caller gives it one */
	} else if (!mm_smtp_mailbox_valid(a, n)) {
		return NULL;
	}
	memcpy(addr, a, n);
	addr[n] = '\0';
	return end + 1;
}

/* Calls f for each " KEY=VALUE" parameter; stops at the first error. */
typedef const char *(*param_fn)(const char *key, size_t kn, const char *val, size_t vn, void *out);

static const char *params(const char *p, param_fn f, void *out)
{
	while (*p != '\0') {
		if (*p != ' ')
			return "501 5.5.4 Syntax error in parameters";
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		size_t n = strcspn(p, " ");
		const char *eq = memchr(p, '=', n);
		size_t kn = eq ? (size_t)(eq - p) : n;
		const char *val = eq ? eq + 1 : "";
		size_t vn = eq ? n - kn - 1 : 0;
		const char *err = f(p, kn, val, vn, out);
		if (err)
			return err;
		p += n;
	}
	return NULL;
}

static bool key_is(const char *k, size_t kn, const char *want)
{
	return strlen(want) == kn && strncasecmp(k, want, kn) == 0;
}

static bool val_is(const char *v, size_t vn, const char *want)
{
	return strlen(want) == vn && strncasecmp(v, want, vn) == 0;
}

static const char *mail_param(const char *k, size_t kn, const char *v, size_t vn, void *out)
{
	struct mm_mail_args *m = out;
	if (key_is(k, kn, "SIZE")) {
		if (vn == 0 || vn > 19 || m->has_size)
			return "501 5.5.4 Bad SIZE parameter";
		uint64_t s = 0;
		for (size_t i = 0; i < vn; i++) {
			if (!isdigit((unsigned char)v[i]))
				return "501 5.5.4 Bad SIZE parameter";
			s = s * 10 + (uint64_t)(v[i] - '0');
		}
		m->has_size = true;
		m->size = s;
	} else if (key_is(k, kn, "BODY")) {
		if (val_is(v, vn, "8BITMIME"))
			m->body_8bit = true;
		else if (!val_is(v, vn, "7BIT"))
			return "501 5.5.4 BODY is 7BIT or 8BITMIME";
	} else if (key_is(k, kn, "RET")) {
		if (m->ret != MM_RET_DEFAULT)
			return "501 5.5.4 Duplicate RET parameter";
		if (val_is(v, vn, "FULL"))
			m->ret = MM_RET_FULL;
		else if (val_is(v, vn, "HDRS"))
			m->ret = MM_RET_HDRS;
		else
			return "501 5.5.4 RET is FULL or HDRS";
	} else if (key_is(k, kn, "AUTH")) {
		/* RFC 4954 §5: accepted and not trusted; the session's own
		 * authentication is what counts */
		if (vn == 0 || !mm_smtp_xtext_valid(v, vn))
			return "501 5.5.4 Bad AUTH parameter";
	} else if (key_is(k, kn, "ENVID")) {
		/* RFC 3461 §4.4: 1 to 100 characters of xtext */
		if (vn == 0 || vn > MM_SMTP_ENVID_MAX || m->envid[0] != '\0' ||
		    !mm_smtp_xtext_valid(v, vn))
			return "501 5.5.4 Bad ENVID parameter";
		memcpy(m->envid, v, vn);
		m->envid[vn] = '\0';
	} else {
		return "555 5.5.4 Unsupported MAIL parameter";
	}
	return NULL;
}

static const char *rcpt_param(const char *k, size_t kn, const char *v, size_t vn, void *out)
{
	struct mm_rcpt_args *r = out;
	if (key_is(k, kn, "NOTIFY")) {
		if (r->notify != 0 || vn == 0)
			return "501 5.5.4 Bad NOTIFY parameter";
		size_t i = 0;
		while (i < vn) {
			size_t w = 0;
			while (i + w < vn && v[i + w] != ',')
				w++;
			if (val_is(v + i, w, "NEVER"))
				r->notify |= MM_NOTIFY_NEVER;
			else if (val_is(v + i, w, "SUCCESS"))
				r->notify |= MM_NOTIFY_SUCCESS;
			else if (val_is(v + i, w, "FAILURE"))
				r->notify |= MM_NOTIFY_FAILURE;
			else if (val_is(v + i, w, "DELAY"))
				r->notify |= MM_NOTIFY_DELAY;
			else
				return "501 5.5.4 Bad NOTIFY parameter";
			i += w + 1;
		}
		/* RFC 3461 §4.1: NEVER stands alone */
		if ((r->notify & MM_NOTIFY_NEVER) && r->notify != MM_NOTIFY_NEVER)
			return "501 5.5.4 NOTIFY=NEVER stands alone";
	} else if (key_is(k, kn, "ORCPT")) {
		/* RFC 3461 §4.2: orcpt-parameter = "ORCPT=" addr-type ";"
		 * xtext, and addr-type is an RFC 5321 Atom. Both go on to
		 * the next hop and into DSNs as they came, so anything
		 * else (a CR, a control character, nothing) is refused;
		 * so is an empty address. */
		const char *semi = memchr(v, ';', vn);
		size_t tn = semi ? (size_t)(semi - v) : 0;
		size_t an = semi ? vn - tn - 1 : 0;
		if (semi == NULL || vn > MM_SMTP_ORCPT_MAX || r->orcpt[0] != '\0' || !atom(v, tn) ||
		    an == 0 || !mm_smtp_xtext_valid(semi + 1, an))
			return "501 5.5.4 Bad ORCPT parameter";
		memcpy(r->orcpt, v, vn);
		r->orcpt[vn] = '\0';
	} else {
		return "555 5.5.4 Unsupported RCPT parameter";
	}
	return NULL;
}

const char *mm_smtp_parse_mail(const char *arg, struct mm_mail_args *out)
{
	*out = (struct mm_mail_args){0};
	const char *rest = path(arg, "FROM:", out->addr, true);
	if (rest == NULL)
		return "501 5.1.7 Syntax: MAIL FROM:<address>";
	return params(rest, mail_param, out);
}

const char *mm_smtp_parse_rcpt(const char *arg, struct mm_rcpt_args *out)
{
	*out = (struct mm_rcpt_args){0};
	const char *rest = path(arg, "TO:", out->addr, false);
	if (rest == NULL)
		return "501 5.1.3 Syntax: RCPT TO:<address>";
	return params(rest, rcpt_param, out);
}

bool mm_smtp_parse_bdat(const char *arg, uint64_t *size, bool *last)
{
	size_t n = 0;
	uint64_t s = 0;
	while (isdigit((unsigned char)arg[n])) {
		if (n == 19)
			return false;
		s = s * 10 + (uint64_t)(arg[n++] - '0');
	}
	if (n == 0)
		return false;
	*size = s;
	*last = false;
	if (arg[n] == '\0')
		return true;
	if (arg[n] != ' ')
		return false;
	arg += n;
	while (*arg == ' ')
		arg++;
	if (strcasecmp(arg, "LAST") != 0)
		return false;
	*last = true;
	return true;
}

long mm_base64_decode(const char *s, size_t n, unsigned char *out, size_t outlen)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (n % 4 != 0)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			char c = s[i + k];
			const char *p = c ? strchr(alphabet, c) : NULL;
			if (c == '=' && i + 4 == n && k >= 2) {
				pad++;
				v <<= 6;
				continue;
			}
			if (p == NULL || pad)
				return -1;
			v = v << 6 | (uint32_t)(p - alphabet);
		}
		for (int k = 0; k < 3 - pad; k++) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (unsigned char)(v >> (16 - 8 * k));
		}
	}
	out[o] = '\0';
	return (long)o;
}

#include "date.h"

#include <stdio.h>

struct civil {
	int64_t year;
	unsigned month, day, wday, hour, min, sec;
};

/* Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
 * civil_from_days), and the time of day. */
static struct civil civil_of(int64_t s)
{
	int64_t days = s / 86400, rem = s % 86400;
	if (rem < 0)
		rem += 86400, days--;
	struct civil c = {.hour = (unsigned)(rem / 3600),
	                  .min = (unsigned)(rem / 60 % 60),
	                  .sec = (unsigned)(rem % 60)};
	c.wday = (unsigned)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	c.day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	c.month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	c.year = yoe + era * 400 + (c.month <= 2);
	return c;
}

void mm_date_rfc5322(int64_t unix_s, char out[40])
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct civil c = civil_of(unix_s);
	snprintf(out, 40, "%s, %02u %s %04lld %02u:%02u:%02u +0000", days[c.wday], c.day,
	         months[c.month - 1], (long long)c.year, c.hour, c.min, c.sec);
}

void mm_date_iso8601_ms(int64_t unix_ms, char out[32])
{
	int64_t s = unix_ms / 1000, ms = unix_ms % 1000;
	if (ms < 0)
		ms += 1000, s--;
	struct civil c = civil_of(s);
	snprintf(out, 32, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)c.year, c.month,
	         c.day, c.hour, c.min, c.sec, (unsigned)ms);
}

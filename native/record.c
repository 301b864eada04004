/* The holder record's text: the grant's own fields appended to the fixed part
 * that TypeScript formats once per owner and mode. Here, not in TypeScript, so
 * that a wait thread can write the record the moment the kernel grants the
 * lock, with the grant's time, before the event loop runs. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flock.h"

/* The civil date of a count of days since 1970-01-01 (proleptic Gregorian),
 * by eras of 400 years, so no platform's gmtime is needed. */
static void civil_from_days(int64_t days, int *year, unsigned *month, unsigned *day) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  unsigned doe = (unsigned)(days - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *day = doy - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = (int)(yoe + era * 400 + (*month <= 2));
}

int sf_format_record(char *out, size_t cap, const char *fields, size_t fields_len, double serial, double ms) {
  int64_t whole = (int64_t)ms;
  int64_t days = whole / 86400000;
  int64_t in_day = whole % 86400000;
  if (in_day < 0) {
    in_day += 86400000;
    days--;
  }
  int year;
  unsigned month, day;
  civil_from_days(days, &year, &month, &day);
  char time[SF_RECORD_TIME_MAX];
  int n = snprintf(time, sizeof time, "%lld\",\"createdAt\":\"%04d-%02u-%02uT%02u:%02u:%02u.%03uZ\",\"acquiredAt\":%lld}\n", (long long)serial, year,
                   month, day, (unsigned)(in_day / 3600000), (unsigned)(in_day / 60000 % 60), (unsigned)(in_day / 1000 % 60),
                   (unsigned)(in_day % 1000), (long long)whole);
  if (n < 0 || (size_t)n >= sizeof time || fields_len + (size_t)n > cap) return SF_NO_MEMORY;
  memcpy(out, fields, fields_len);
  memcpy(out + fields_len, time, (size_t)n);
  return (int)(fields_len + (size_t)n);
}

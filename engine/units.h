/*
 * engine/units.h — durations and sizes as users write them (units.c).
 */
#ifndef ENGINE_UNITS_H
#define ENGINE_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* "30s", "15m", "1h", "2d", "1w", "1h30m" (units w d h m s, any sequence
 * of number+unit, summed; "0s" is 0): 0 or -EINVAL (empty, no unit, an
 * unknown unit, a sign, spaces, or more than int64 nanoseconds). */
int snap_duration_parse(const char *s, int64_t *ns);
/* The shortest form snap_duration_parse reads back ("1h30m", "7d", "0s";
 * a sub-second rest as "250ms").  out holds at least 48 bytes. */
void snap_duration_format(int64_t ns, char *out, size_t cap);
/* "512K", "10M", "2G", "1T", "1P", plain bytes; binary multiples (K = 1024),
 * case-insensitive, "10MB", "10MiB" and "512B" too: 0 or -EINVAL. */
int snap_size_parse(const char *s, uint64_t *bytes);
/* Bytes as the largest binary unit that divides them ("10M", "1536K",
 * plain "1000"): what snap_size_parse reads back. */
void snap_size_format(uint64_t b, char *out, size_t cap);
/*
 * Read a run of decimal digits at *p into *v (at most UINT64_MAX); 0 and
 * *p past them, or -EINVAL when there are none or the value overflows.
 */
int snap_digits_parse(const char **p, uint64_t *v);

#endif /* ENGINE_UNITS_H */

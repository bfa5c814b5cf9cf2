/*
 * tools/ctl_format.h — how snapctl writes numbers and times for people:
 * sizes in binary units, UTC times to the second, ages and durations,
 * and text others may have chosen, made safe for a terminal.
 * (JSON output gives the exact numbers instead; snapctl(1) JSON OUTPUT.)
 */
#ifndef TOOLS_CTL_FORMAT_H
#define TOOLS_CTL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* "8192 B", "4.0 KiB", "1.5 GiB". */
void ctl_size_human(uint64_t n, char out[32]);
/* ISO-8601 UTC to the second ("2026-11-22T01:49:00Z"). */
void ctl_time_short(int64_t ns, char out[40]);
/* An age or duration for people: "3d4h", "5m12s", "40s", "250ms". */
void ctl_age_human(int64_t ns, char out[48]);
/* s with every control character and non-UTF-8 byte as '?' into out
 * (cap bytes), for text another user may have chosen; returns out. */
const char *ctl_text(const char *s, char *out, size_t cap);

#endif /* TOOLS_CTL_FORMAT_H */

/*
 * tools/ctl_format.h — how snapctl writes numbers and times for people:
 * sizes in binary units, UTC times to the second, ages and durations.
 * (JSON output gives the exact numbers instead; snapctl(1) JSON OUTPUT.)
 */
#ifndef TOOLS_CTL_FORMAT_H
#define TOOLS_CTL_FORMAT_H

#include <stdint.h>

/* "8192 B", "4.0 KiB", "1.5 GiB". */
void ctl_size_human(uint64_t n, char out[32]);
/* ISO-8601 UTC to the second ("2026-11-22T01:49:00Z"). */
void ctl_time_short(int64_t ns, char out[40]);
/* An age or duration for people: "3d4h", "5m12s", "40s", "250ms". */
void ctl_age_human(int64_t ns, char out[48]);
#endif /* TOOLS_CTL_FORMAT_H */

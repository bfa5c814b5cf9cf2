/*
 * engine/util.h — small helpers every floor uses (util.c): time and hex.
 */
#ifndef ENGINE_UTIL_H
#define ENGINE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Format created_ns as "2026-11-22T01:49:00.123Z" (ISO 8601, UTC). */
void snap_time_iso(int64_t ns, char out[40]);
/* Current UTC time in nanoseconds. */
int64_t snap_time_now_ns(void);
/* Lowercase hex of a SHA-256. */
void snap_hex(const uint8_t sha[32], char out[65]);
/*
 * Room for one more element in a growable array: `array` is the address of
 * the array's pointer (NULL at first), *cap its capacity, n the elements in
 * use, size the bytes of one.  When full (n == *cap) it is doubled, from
 * `first`.  0, or -ENOMEM with the array and *cap as they were.
 */
int snap_array_grow(void *array, size_t *cap, size_t n, size_t size,
		    size_t first);
/* Undo the octal escapes of /proc/self/mountinfo ("\040" for a space,
 * "\012" for a newline) in s, in place. */
void snap_octal_unescape(char *s);
/* One line of /proc/self/mountinfo ("ID PARENT MAJ:MIN ROOT MOUNTPOINT
 * OPTIONS [TAGS] - TYPE SOURCE SUPER-OPTIONS") cut into its mount point
 * and source (octal escapes undone), type and super options (NULL when
 * absent), in place; 0, or -1 for a line of another shape. */
int snap_mountinfo_line(char *line, char **point, char **type, char **src,
			char **opts);
/* s with every control character (C0, DEL, C1) and every byte that is
 * not UTF-8 as '?' into out (cap bytes; at most cap - 1 of them), for
 * text another user may have chosen that goes to a terminal or a log;
 * returns out. */
const char *snap_text_safe(const char *s, char *out, size_t cap);
/* What a file of mode is, for a message: "directory", "pipe", "socket",
 * "symbolic link", "device" or "regular file". */
const char *snap_file_kind(mode_t mode);

#endif /* ENGINE_UTIL_H */

/*
 * fs/log.h — logging (log.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_LOG_H
#define FS_LOG_H

#include "ino.h"

/* ---- logging (log.c) ---------------------------------------------------- */

/* Log once: stderr ("snapfs: ...") when foreground, syslog otherwise.
 * LOG_DEBUG lines appear only with -d. */
void snap_log(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void snap_log_setup(int foreground, int debug);

#endif /* FS_LOG_H */

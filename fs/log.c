/*
 * fs/log.c — the daemon's one way to say something.
 *
 * In the foreground (-f, -d) lines go to stderr as "snapfs: <text>", which is
 * what a user starting the daemon by hand or a test harness watching it
 * reads.  Daemonized, they go to syslog (facility daemon, tagged with the
 * pid).  Debug lines are written only with -d.  Control characters and
 * bytes that are not UTF-8 are written as '?' (snap_text_safe): lines name
 * files other users chose.  Each failure is logged once,
 * where it is turned into an errno for the kernel; the engine keeps its own
 * record in the store's event history.
 *
 * Thread-safety: snap_log may be called from any thread; stdio and syslog
 * serialize their own output.  snap_log_setup runs once, before threads.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "fs.h"

static int log_foreground = 1;  /* written once at start-up */
static int log_debug;           /* written once at start-up */

/* Choose stderr or syslog; with syslog, open it tagged "snapfs". */
void snap_log_setup(int foreground, int debug)
{
	log_foreground = foreground;
	log_debug = debug;
	if (!foreground)
		openlog("snapfs", LOG_PID, LOG_DAEMON);
}

/* Log once: stderr when foreground, syslog otherwise; LOG_DEBUG only
 * with -d. */
void snap_log(int prio, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (prio == LOG_DEBUG && !log_debug)
		return;
	char safe[sizeof(line)];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Lines name what users chose (files in restore/, trash names):
	 * no control character of theirs reaches a terminal or the log. */
	snap_text_safe(line, safe, sizeof(safe));
	if (log_foreground)
		fprintf(stderr, "snapfs: %s\n", safe);
	else
		syslog(prio, "%s", safe);
}

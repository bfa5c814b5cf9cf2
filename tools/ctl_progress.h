/*
 * tools/ctl_progress.h — snapctl's progress on stderr: a bar for an engine
 * call that reports progress, a ticker thread ("<what> ... 12s") for one
 * that does not.  Drawn only when stderr is a terminal and only once an
 * operation has run long enough to be worth watching (so small databases
 * never flicker); erased before anything else is printed.
 *
 * Threads: the ticker only draws on stderr; every drawing of the progress
 * line takes one lock (ctl_progress.c), which nothing else is held under.
 */
#ifndef TOOLS_CTL_PROGRESS_H
#define TOOLS_CTL_PROGRESS_H

#include <stdint.h>

/* Decide once, at start, whether progress may be drawn (stderr a tty). */
void ctl_progress_init(void);
/* Erase the progress line if one is shown. */
void ctl_progress_clear(void);
/* A bar: "<what> [#####.....]  45% <detail>". */
void ctl_bar(const char *what, uint64_t done, uint64_t total,
	     const char *detail);
/* Start an operation the bar measures (resets the "worth it" clock). */
void ctl_bar_begin(void);
/* For an engine call that reports no progress: a line "<what> ... 12s"
 * redrawn by a ticker thread until ctl_busy_end(), which erases it. */
void ctl_busy_begin(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* Make the busy line a bar (between engine calls); drawn at the next
 * tick. */
void ctl_busy_bar(const char *what, uint64_t done, uint64_t total,
		  const char *detail);
/* printf on stdout while progress may be drawn: the line is erased first
 * and the ticker cannot draw in the middle. */
void ctl_progress_printf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
void ctl_busy_end(void);

#endif /* TOOLS_CTL_PROGRESS_H */

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

/* Decide once, at start, whether progress may be drawn (stderr a tty);
 * SNAPCTL_PROGRESS_DELAY_MS overrides the 0.3 s before the first drawing. */
void ctl_progress_init(void);
/* Draw no progress from now on (--json). */
void ctl_progress_off(void);
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
/* The same from an engine progress callback (any thread): the bar is
 * also redrawn at once whenever its percentage moves. */
void ctl_busy_progress(const char *what, uint64_t done, uint64_t total,
		       const char *detail);
/* An engine progress callback's context (snap_progress_fn): the bar's
 * text, and where the engine's count sits in a larger whole (several
 * snapshots verified in turn). */
typedef struct ctl_bar_ctx {
	const char *what;       /* "verifying" */
	const char *detail;     /* after the percentage; NULL: "N/M pages" */
	uint64_t unit;          /* bytes per engine unit (page size); 0: 1 */
	uint64_t base;          /* bytes done before this engine call */
	uint64_t total;         /* bytes of the whole; 0: the engine's total */
} ctl_bar_ctx;
/* snap_progress_fn for ctl_busy_progress: ctx is a ctl_bar_ctx. */
void ctl_bar_progress(void *ctx, uint64_t done, uint64_t total);
/* printf on stdout while progress may be drawn: the line is erased first
 * and the ticker cannot draw in the middle. */
void ctl_progress_printf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
void ctl_busy_end(void);

#endif /* TOOLS_CTL_PROGRESS_H */

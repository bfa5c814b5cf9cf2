/*
 * tools/ctl_progress.c — snapctl's progress line on stderr (ctl_progress.h):
 * the bar, and the busy ticker thread for engine calls that report no
 * progress.
 *
 * The line is drawn with "\r" and cut to the terminal's width so that it
 * can be erased; it never reaches a pipe or a log (ctl_progress_tty), and
 * is never drawn with --json (ctl_progress_off).  An engine call that
 * counts its pages (verify, export, import) turns the ticker's line into a
 * bar through ctl_bar_progress, redrawn whenever its percentage moves.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ctl_progress.h"


/*
 * The progress line.  Drawn only when stderr is a terminal, and only once
 * the operation has run CTL_PROGRESS_DELAY_NS (a small database finishes
 * before that and never draws anything).  ctl_out_lock protects the fields
 * below and every write of the progress line, since the busy ticker draws
 * from its own thread; nothing else is ever held while it is.
 */
#define CTL_PROGRESS_DELAY_NS 300000000LL   /* 0.3 s, by default */
#define CTL_TICK_NS 250000000LL             /* ticker redraw, 0.25 s */

static pthread_mutex_t ctl_out_lock = PTHREAD_MUTEX_INITIALIZER;
/* 1 when stderr is a terminal and a progress line may be drawn there. */
static int ctl_progress_tty;
/* The delay: CTL_PROGRESS_DELAY_NS, or SNAPCTL_PROGRESS_DELAY_MS. */
static int64_t ctl_progress_delay = CTL_PROGRESS_DELAY_NS;
/* 1 while a progress line is on the screen and must be erased. */
static int ctl_progress_shown;
/* CLOCK_MONOTONIC ns when the measured operation began. */
static int64_t ctl_progress_start;

/* The busy ticker: a thread that redraws "<what> ... 12s". */
static struct {
	pthread_t thread;
	pthread_cond_t wake;    /* signalled to stop; monotonic clock */
	int running;            /* the thread exists (main thread only) */
	int stop;               /* ctl_out_lock: asks the thread to end */
	char what[512];         /* ctl_out_lock: the text before "..." */
	unsigned spin;          /* ctl_out_lock: spinner position */
	int pct;                /* ctl_out_lock: last percentage drawn */
} ctl_busy;

/* Monotonic time in ns, for the progress delay and the ticker. */
static int64_t ctl_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Columns of the terminal on stderr (80 when it will not say). */
static int ctl_term_cols(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		return ws.ws_col;
	return 80;
}

/* Draw line (cut to the terminal's width, so "\r" can erase it); the
 * caller holds ctl_out_lock. */
static void ctl_progress_draw_locked(const char *line)
{
	int cols = ctl_term_cols() - 1;

	fprintf(stderr, "\r\033[K%.*s", cols, line);
	fflush(stderr);
	ctl_progress_shown = 1;
}

/* Erase the progress line, if any; the caller holds ctl_out_lock. */
static void ctl_progress_clear_locked(void)
{
	if (ctl_progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		ctl_progress_shown = 0;
	}
}

/* Erase the progress line, if one is shown. */
void ctl_progress_clear(void)
{
	pthread_mutex_lock(&ctl_out_lock);
	ctl_progress_clear_locked();
	pthread_mutex_unlock(&ctl_out_lock);
}

/* Start the "worth drawing" clock of a measured operation. */
void ctl_bar_begin(void)
{
	ctl_progress_start = ctl_mono_ns();
}

/* "<what> [#####.....]  45% <detail>" into line. */
static void ctl_bar_format(char *line, size_t cap, const char *what,
			   uint64_t done, uint64_t total, const char *detail)
{
	enum { W = 30 };
	char bar[W + 1];
	int pct, fill, i;

	if (done > total)
		done = total;
	pct = total ? (int)(done * 100 / total) : 100;
	fill = total ? (int)(done * W / total) : W;
	for (i = 0; i < W; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[W] = '\0';
	snprintf(line, cap, "%s [%s] %3d%%%s%s", what, bar, pct,
		 detail && detail[0] ? " " : "", detail ? detail : "");
}

/* Draw the bar, once the operation has run long enough. */
void ctl_bar(const char *what, uint64_t done, uint64_t total,
	     const char *detail)
{
	char line[1024];

	if (!ctl_progress_tty ||
	    ctl_mono_ns() - ctl_progress_start < ctl_progress_delay)
		return;
	ctl_bar_format(line, sizeof(line), what, done, total, detail);
	pthread_mutex_lock(&ctl_out_lock);
	ctl_progress_draw_locked(line);
	pthread_mutex_unlock(&ctl_out_lock);
}

/* Draw the busy line "<what> ... | 12s" once the operation has run long
 * enough; the caller holds ctl_out_lock. */
static void ctl_busy_draw_locked(int64_t now)
{
	static const char spin[] = "|/-\\";
	char line[640], tail[48];
	int room;

	if (now - ctl_progress_start < ctl_progress_delay)
		return;
	/* The text is cut, never the spinner and the time. */
	snprintf(tail, sizeof(tail), " ... %c %llds", spin[ctl_busy.spin++ % 4],
		 (long long)((now - ctl_progress_start) / 1000000000LL));
	room = ctl_term_cols() - 1 - (int)strlen(tail);
	snprintf(line, sizeof(line), "%.*s%s", room > 0 ? room : 0,
		 ctl_busy.what, tail);
	ctl_progress_draw_locked(line);
}

/* The ticker thread: redraw the busy line every CTL_TICK_NS. */
static void *ctl_busy_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ctl_out_lock);
	while (!ctl_busy.stop) {
		struct timespec ts;
		int64_t now = ctl_mono_ns(), at = now + CTL_TICK_NS;

		ctl_busy_draw_locked(now);
		ts.tv_sec = at / 1000000000LL;
		ts.tv_nsec = at % 1000000000LL;
		while (!ctl_busy.stop &&
		       pthread_cond_timedwait(&ctl_busy.wake, &ctl_out_lock,
					      &ts) == 0)
			;
	}
	ctl_progress_clear_locked();
	pthread_mutex_unlock(&ctl_out_lock);
	return NULL;
}

/* Start the ticker thread that redraws "<what> ... 12s". */
void ctl_busy_begin(const char *fmt, ...)
{
	pthread_condattr_t ca;
	va_list ap;

	ctl_bar_begin();
	if (!ctl_progress_tty || ctl_busy.running)
		return;
	va_start(ap, fmt);
	vsnprintf(ctl_busy.what, sizeof(ctl_busy.what), fmt, ap);
	va_end(ap);
	ctl_busy.stop = 0;
	ctl_busy.spin = 0;
	ctl_busy.pct = -1;
	if (pthread_condattr_init(&ca) != 0)
		return;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&ctl_busy.wake, &ca) == 0) {
		/* No ticker is only a missing nicety: go on without one. */
		if (pthread_create(&ctl_busy.thread, NULL, ctl_busy_main,
				   NULL) == 0)
			ctl_busy.running = 1;
		else
			pthread_cond_destroy(&ctl_busy.wake);
	}
	pthread_condattr_destroy(&ca);
}

/* Stop the ticker thread and erase its line. */
void ctl_busy_end(void)
{
	if (!ctl_busy.running)
		return;
	pthread_mutex_lock(&ctl_out_lock);
	ctl_busy.stop = 1;
	pthread_cond_signal(&ctl_busy.wake);
	pthread_mutex_unlock(&ctl_out_lock);
	pthread_join(ctl_busy.thread, NULL);
	pthread_cond_destroy(&ctl_busy.wake);
	ctl_busy.running = 0;
}

/* Make the busy line a bar (ctl_progress.h). */
void ctl_busy_bar(const char *what, uint64_t done, uint64_t total,
		  const char *detail)
{
	if (!ctl_busy.running)
		return;
	pthread_mutex_lock(&ctl_out_lock);
	ctl_bar_format(ctl_busy.what, sizeof(ctl_busy.what), what, done, total,
		       detail);
	pthread_mutex_unlock(&ctl_out_lock);
}

/* Make the busy line a bar and redraw it now when its percentage moved
 * (ctl_progress.h): an engine progress callback, from any thread. */
void ctl_busy_progress(const char *what, uint64_t done, uint64_t total,
		       const char *detail)
{
	int pct = total ? (int)((done > total ? total : done) * 100 / total)
			: 100;

	if (!ctl_busy.running)
		return;
	pthread_mutex_lock(&ctl_out_lock);
	ctl_bar_format(ctl_busy.what, sizeof(ctl_busy.what), what, done, total,
		       detail);
	if (pct != ctl_busy.pct) {
		ctl_busy.pct = pct;
		ctl_busy_draw_locked(ctl_mono_ns());
	}
	pthread_mutex_unlock(&ctl_out_lock);
}

/* snap_progress_fn over ctl_busy_progress (ctl_progress.h). */
void ctl_bar_progress(void *ctx, uint64_t done, uint64_t total)
{
	const ctl_bar_ctx *b = ctx;
	uint64_t unit = b->unit ? b->unit : 1;
	char detail[96];

	if (!b->detail)
		snprintf(detail, sizeof(detail), "%llu/%llu pages",
			 (unsigned long long)done, (unsigned long long)total);
	if (b->total)
		ctl_busy_progress(b->what, b->base + done * unit, b->total,
				  b->detail ? b->detail : detail);
	else
		ctl_busy_progress(b->what, done, total,
				  b->detail ? b->detail : detail);
}

/* printf on stdout with the progress line erased first (ctl_progress.h). */
void ctl_progress_printf(const char *fmt, ...)
{
	va_list ap;

	/* Under the output lock, so the ticker cannot draw mid-line. */
	pthread_mutex_lock(&ctl_out_lock);
	ctl_progress_clear_locked();
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	pthread_mutex_unlock(&ctl_out_lock);
}


/* Progress is drawn only when stderr is a terminal; the delay before
 * the first drawing may be set in milliseconds (tests set 0). */
void ctl_progress_init(void)
{
	const char *d = getenv("SNAPCTL_PROGRESS_DELAY_MS");
	char *end;
	long long ms;

	ctl_progress_tty = isatty(STDERR_FILENO);
	if (d && *d) {
		ms = strtoll(d, &end, 10);
		if (*end == '\0' && ms >= 0 && ms < 3600000)
			ctl_progress_delay = ms * 1000000LL;
	}
}

/* No progress at all (--json: stdout and stderr are for programs). */
void ctl_progress_off(void)
{
	ctl_progress_tty = 0;
}

/*
 * fs/watch.c — the catalog watcher: keeps snapshots/ true to the store,
 * whoever changed it.
 *
 * snapshots/ is the catalog, and many hands change it: snapctl (another
 * process), the daemon's schedule and retention, its handlers (touch,
 * cp in, rm, mv, a restore's safety snapshot).  The kernel caches what the
 * mount said (the directory's attributes for SNAP_TTL_DIR, a snapshot's
 * name for SNAP_TTL_SNAP_ENTRY and its attributes for an hour), and a file
 * manager re-reads a directory only when it is told or when its mtime
 * moved.  So on every change of the listing, by any process:
 *   - snapshots/' mtime and ctime move to the time of the change as the
 *     store records it (snap_store_changed_ns: the newest creation, or
 *     successful delete, relabel or prune) — the same time for every
 *     process and after a remount, not the moment this daemon noticed;
 *   - the kernel forgets what it knew: the directory's attributes (so the
 *     new mtime is asked for), latest.db, a deleted snapshot's name by
 *     notify_delete (the kernel drops the name and the file's link, so an
 *     inotify watch on the file hears IN_DELETE_SELF), a renamed
 *     snapshot's old and new names, and a new snapshot's name (in case a
 *     lookup cached its absence).
 *
 * Noticing a change: an event, not a poll.  inotify on the store
 * directory reports writes to store.db and its WAL.  The directory is
 * watched through the descriptor the engine opened without following a
 * link ("/proc/self/fd/N", which the kernel resolves to that very
 * directory), so no link in the store is ever followed.  A write is not
 * yet a change of the listing (an event record, a verification, a
 * checkpoint), so it is confirmed first: the catalog connection's PRAGMA
 * data_version says whether another connection committed, and only then
 * is the listing read and compared with the last one (snapshot ids and
 * names, latest.db's target).  Nothing moves when nothing changed.  The
 * daemon's own changes through the catalog connection (a delete, a
 * relabel) do not move data_version: the handlers and the timer call
 * snap_watch_changed() after they replied, which forces the comparison.
 * A burst of writes (a snapshot commits several times) costs at most one
 * check every WATCH_COALESCE_MS.  Without inotify (no /proc, no watch
 * left) the thread checks data_version every WATCH_POLL_MS instead, and
 * says so once.
 *
 * Invalidations go to the notifier thread (notify.c): never sent from
 * here, never from a handler before its reply (engine/PITFALLS.md 18).
 *
 * Thread-safety: the thread alone owns the listing it compares with and
 * the inotify descriptor; the directory time is an atomic any handler
 * reads; the wake-up eventfd is written by any thread.  No filesystem
 * lock is taken here, and nothing is held while the engine is called.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

#define WATCH_COALESCE_MS 50    /* at most one check per burst window */
#define WATCH_POLL_MS 2000      /* without inotify */

/* One snapshot as the listing shows it. */
struct watch_ent {
	int64_t id;                   /* store id (its inode number) */
	char name[SNAP_NAME_MAX];     /* listed name */
};

/* What the listing looked like at the last check (the thread's own). */
struct watch_view {
	struct watch_ent *ents;       /* sorted by id */
	size_t n;
	char latest[SNAP_NAME_MAX];   /* latest.db's target, "" = none */
};

static struct {
	snap_store *store;
	struct snap_notify *notify;
	pthread_t thread;
	int running;
	int wake_fd;                  /* eventfd: snap_watch_changed, stop */
	void (*hook)(void);           /* told of each change (atomic) */
	int ino_fd;                   /* inotify, or -1: polling */
	int stop;                     /* atomic */
	int64_t dv;                   /* data_version at the last check */
	struct watch_view view;       /* the last listing */
	int64_t dir_ns;               /* snapshots/' times (atomic) */
} watch = { .wake_fd = -1, .ino_fd = -1 };

/* Now on the monotonic clock, in milliseconds. */
static int64_t watch_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* qsort order of listing entries: by snapshot id. */
static int watch_ent_cmp(const void *a, const void *b)
{
	const struct watch_ent *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The listing as it is now; 0 or a negative errno (logged at debug). */
static int watch_load(struct watch_view *v)
{
	snap_info *list = NULL, si;
	size_t n = 0, i;
	snap_err err;
	int rc;

	memset(v, 0, sizeof(*v));
	snap_err_clear(&err);
	rc = snap_store_list(watch.store, &list, &n, &err);
	if (rc != 0) {
		snap_log(LOG_DEBUG, "watching snapshots/: %s", err.msg);
		return rc;
	}
	if (n > 0) {
		v->ents = calloc(n, sizeof(*v->ents));
		if (!v->ents) {
			free(list);
			return -ENOMEM;
		}
		for (i = 0; i < n; i++) {
			v->ents[i].id = list[i].id;
			snprintf(v->ents[i].name, sizeof(v->ents[i].name), "%s",
				 list[i].name);
		}
		qsort(v->ents, n, sizeof(*v->ents), watch_ent_cmp);
		v->n = n;
	}
	free(list);
	if (snap_store_find(watch.store, "latest", &si, NULL) == 0)
		snprintf(v->latest, sizeof(v->latest), "%s", si.name);
	return 0;
}

/* 1 when a and b list the same names for the same snapshots. */
static int watch_same(const struct watch_view *a, const struct watch_view *b)
{
	size_t i;

	if (a->n != b->n || strcmp(a->latest, b->latest) != 0)
		return 0;
	for (i = 0; i < a->n; i++)
		if (a->ents[i].id != b->ents[i].id ||
		    strcmp(a->ents[i].name, b->ents[i].name) != 0)
			return 0;
	return 1;
}

/* Queue what the kernel must forget going from view a to view b. */
static void watch_invalidate(const struct watch_view *a,
			     const struct watch_view *b)
{
	struct snap_notify *nf = watch.notify;
	size_t i = 0, j = 0;

	while (i < a->n || j < b->n) {
		const struct watch_ent *x = i < a->n ? &a->ents[i] : NULL;
		const struct watch_ent *y = j < b->n ? &b->ents[j] : NULL;

		if (x && (!y || x->id < y->id)) {          /* deleted */
			snap_notify_delete(nf, SNAP_INO_SNAPDIR,
					   snap_ino_of_snapshot(x->id),
					   x->name);
			i++;
		} else if (y && (!x || y->id < x->id)) {   /* new */
			snap_notify_entry(nf, SNAP_INO_SNAPDIR, y->name);
			j++;
		} else {                                   /* both */
			if (strcmp(x->name, y->name) != 0) {
				snap_notify_entry(nf, SNAP_INO_SNAPDIR,
						  x->name);
				snap_notify_entry(nf, SNAP_INO_SNAPDIR,
						  y->name);
			}
			i++;
			j++;
		}
	}
	if (strcmp(a->latest, b->latest) != 0) {
		snap_notify_inode(nf, SNAP_INO_LATEST);
		if (b->latest[0])
			snap_notify_entry(nf, SNAP_INO_SNAPDIR,
					  SNAP_NAME_LATEST);
		else
			snap_notify_delete(nf, SNAP_INO_SNAPDIR,
					   SNAP_INO_LATEST, SNAP_NAME_LATEST);
	}
	snap_notify_inode(nf, SNAP_INO_SNAPDIR);
}

/*
 * Compare the listing with the last one (force: even when no other
 * connection committed) and, when it changed, move the directory's time
 * and queue the invalidations.
 */
static void watch_check(int force)
{
	void (*hook)(void);
	struct watch_view now;
	int64_t dv, t, prev;
	snap_err err;

	snap_err_clear(&err);
	if (snap_store_data_version(watch.store, &dv, &err) == 0) {
		if (!force && dv == watch.dv)
			return;
		watch.dv = dv;
	}
	if (watch_load(&now) != 0)
		return;
	if (watch_same(&watch.view, &now)) {
		free(now.ents);
		return;
	}
	/* The store's own record of the change; a change it has no time
	 * for still moves the directory's time forward. */
	prev = __atomic_load_n(&watch.dir_ns, __ATOMIC_ACQUIRE);
	if (snap_store_changed_ns(watch.store, &t, &err) != 0 || t <= prev) {
		t = snap_time_now_ns();
		if (t <= prev)
			t = prev + 1;
	}
	__atomic_store_n(&watch.dir_ns, t, __ATOMIC_RELEASE);
	snap_log(LOG_DEBUG, "snapshots/ changed: %zu snapshot%s, latest %s",
		 now.n, now.n == 1 ? "" : "s",
		 now.latest[0] ? now.latest : "(none)");
	watch_invalidate(&watch.view, &now);
	free(watch.view.ents);
	watch.view = now;
	hook = __atomic_load_n(&watch.hook, __ATOMIC_ACQUIRE);
	if (hook)
		hook();
}

/* Read what inotify has; 1 when it concerns the catalog (store.db and its
 * journal or WAL; not the -shm, whose writes are mmapped anyway).  A lost
 * watch (the directory is gone) or a read error turns to polling. */
static int watch_events(void)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	int relevant = 0;
	ssize_t n;
	char *p;

	for (;;) {
		n = read(watch.ino_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED))
				relevant = 1;
			if (ev->mask & IN_IGNORED) {
				snap_log(LOG_WARNING, "watching the store "
					 "directory stopped (was it removed?); "
					 "checking it every %d ms instead",
					 WATCH_POLL_MS);
				close(watch.ino_fd);
				watch.ino_fd = -1;
				return 1;
			}
			if (ev->len && strncmp(ev->name, "store.db", 8) == 0 &&
			    strcmp(ev->name, "store.db-shm") != 0)
				relevant = 1;
		}
	}
	if (n < 0 && errno != EAGAIN) {
		snap_log(LOG_WARNING, "watching the store directory: %s; "
			 "checking it every %d ms instead", strerror(errno),
			 WATCH_POLL_MS);
		close(watch.ino_fd);
		watch.ino_fd = -1;
		relevant = 1;
	}
	return relevant;
}

/* The watcher thread: on a change of the store directory, compare the
 * listing. */
static void *watch_main(void *arg)
{
	int64_t due = -1, last = 0, now;   /* due: when to check, -1 none */
	struct pollfd pfd[2];
	uint64_t v;
	int timeout, force, nfd;

	(void)arg;
	while (!__atomic_load_n(&watch.stop, __ATOMIC_ACQUIRE)) {
		timeout = -1;
		if (due >= 0) {
			now = watch_mono_ms();
			timeout = due > now ? (int)(due - now) : 0;
		} else if (watch.ino_fd < 0) {
			timeout = WATCH_POLL_MS;
		}
		pfd[0].fd = watch.wake_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = watch.ino_fd;
		pfd[1].events = POLLIN;
		nfd = watch.ino_fd >= 0 ? 2 : 1;
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, (nfds_t)nfd, timeout) < 0 && errno != EINTR) {
			snap_log(LOG_ERR, "watching snapshots/: poll: %s",
				 strerror(errno));
			break;
		}
		if (__atomic_load_n(&watch.stop, __ATOMIC_ACQUIRE))
			break;
		force = 0;
		if ((pfd[0].revents & POLLIN) &&
		    read(watch.wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			force = 1;
		now = watch_mono_ms();
		if (nfd == 2 && (pfd[1].revents & (POLLIN | POLLERR)) &&
		    watch_events() && due < 0)
			due = last + WATCH_COALESCE_MS > now ?
			      last + WATCH_COALESCE_MS : now;
		if (force || (due >= 0 && now >= due) ||
		    (watch.ino_fd < 0 && due < 0 && timeout >= 0)) {
			watch_check(force);
			last = watch_mono_ms();
			due = -1;
		}
	}
	return NULL;
}

/* Watch the store directory by its descriptor: inotify's fd, or -1 with
 * the reason logged (the caller polls then). */
static int watch_inotify(snap_store *store)
{
	char path[64];
	int fd;

	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		snap_log(LOG_WARNING, "watching the store directory: inotify: "
			 "%s; checking it every %d ms instead", strerror(errno),
			 WATCH_POLL_MS);
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d",
		 snap_store_dir_fd(store));
	if (inotify_add_watch(fd, path, IN_ONLYDIR | IN_MODIFY |
			      IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
			      IN_MOVED_FROM | IN_MOVED_TO) < 0) {
		snap_log(LOG_WARNING, "watching the store directory %s: %s; "
			 "checking it every %d ms instead",
			 snap_store_dir(store), strerror(errno), WATCH_POLL_MS);
		close(fd);
		return -1;
	}
	return fd;
}

/* Read the listing, watch the store directory, start the thread. */
int snap_watch_start(snap_store *store, struct snap_notify *notify,
		     int64_t started_ns)
{
	int64_t t = 0;
	snap_err err;
	int rc;

	watch.store = store;
	watch.notify = notify;
	watch.stop = 0;
	snap_err_clear(&err);
	/* The listing and the time the first getattr is answered with. */
	if (snap_store_data_version(store, &watch.dv, &err) != 0)
		watch.dv = 0;
	watch_load(&watch.view);
	if (snap_store_changed_ns(store, &t, &err) != 0 || t <= 0)
		t = started_ns;
	__atomic_store_n(&watch.dir_ns, t, __ATOMIC_RELEASE);

	watch.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (watch.wake_fd < 0)
		return -errno;
	watch.ino_fd = watch_inotify(store);
	rc = pthread_create(&watch.thread, NULL, watch_main, NULL);
	if (rc != 0) {
		snap_watch_stop();
		return -rc;
	}
	__atomic_store_n(&watch.running, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Stop the watcher (safe when never started). */
void snap_watch_stop(void)
{
	uint64_t one = 1;

	if (watch.running) {
		__atomic_store_n(&watch.stop, 1, __ATOMIC_RELEASE);
		if (write(watch.wake_fd, &one, sizeof(one)) < 0)
			snap_log(LOG_DEBUG, "waking the watcher: %s",
				 strerror(errno));
		pthread_join(watch.thread, NULL);
		__atomic_store_n(&watch.running, 0, __ATOMIC_RELEASE);
	}
	if (watch.ino_fd >= 0)
		close(watch.ino_fd);
	if (watch.wake_fd >= 0)
		close(watch.wake_fd);
	watch.ino_fd = watch.wake_fd = -1;
	free(watch.view.ents);
	memset(&watch.view, 0, sizeof(watch.view));
}

/* The daemon changed the catalog itself: compare the listing now. */
void snap_watch_changed(void)
{
	uint64_t one = 1;

	if (__atomic_load_n(&watch.running, __ATOMIC_ACQUIRE) &&
	    write(watch.wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		snap_log(LOG_DEBUG, "waking the watcher: %s", strerror(errno));
}

/* Call fn (NULL: nothing) from the watcher after each change of the
 * listing. */
void snap_watch_set_hook(void (*fn)(void))
{
	__atomic_store_n(&watch.hook, fn, __ATOMIC_RELEASE);
}

/* snapshots/' mtime and ctime: when its listing last changed (ns). */
int64_t snap_watch_dir_ns(void)
{
	return __atomic_load_n(&watch.dir_ns, __ATOMIC_ACQUIRE);
}

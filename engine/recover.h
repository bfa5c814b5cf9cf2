/*
 * engine/recover.h — crash recovery of an interrupted restore (the design
 * is at the top of recover.c).
 */
#ifndef ENGINE_RECOVER_H
#define ENGINE_RECOVER_H

#include "store.h"

/*
 * Finish what an interrupted restore left: a live database it took out of
 * WAL mode (different page sizes) is switched back.  Whoever opens a store
 * for work calls it right after snap_store_open() (snapctl, the daemon);
 * the store itself does not, being below restore (layers: snapfs.h).
 * Does nothing on a store opened read-only (SNAP_OPEN_READONLY, or a
 * read-only or full filesystem); cheap when there is nothing to do.
 * 0 or -EBUSY.
 */
int snap_restore_recover(snap_store *s);

/*
 * For restore.c: take the live database (WAL mode, live_ps-byte pages)
 * out of WAL mode so that snapshot si can be copied in, recording the
 * marker first; refused (-EBUSY, nothing changed) while another
 * connection has it open.
 */
int snap_recover_leave_wal(snap_store *s, const snap_info *si,
			   int64_t live_ps, snap_err *err);

/* Put the live database back into WAL mode and clear the marker; -EBUSY
 * (the marker stays for the next snap_restore_recover) when it cannot. */
int snap_recover_return_to_wal(snap_store *s, snap_err *err);

#endif /* ENGINE_RECOVER_H */

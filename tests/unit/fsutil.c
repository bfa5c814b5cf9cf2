/*
 * tests/unit/fsutil.c — the fixture of the unit tests of fs/ (fsutil.h).
 */
#include "testutil.h"

#include <stdio.h>

#include "fs.h"
#include "fsutil.h"

int fsu_setup(void **state)
{
	int rc = tu_setup(state);
	tu_env *env = *state;

	if (rc == 0)
		snprintf(snap_fs.staging_dir, sizeof(snap_fs.staging_dir),
			 "%s", env->dir);
	return rc;
}

int fsu_teardown(void **state)
{
	snap_session_shutdown();
	snap_node_free_all();
	if (snap_fs.live)
		snap_live_close(snap_fs.live);
	snap_fs.live = NULL;
	if (snap_fs.store) {
		snap_staging_cleanup(snap_fs.store);
		snap_store_close(snap_fs.store);
	}
	snap_fs.store = NULL;
	snap_fs.db_path = NULL;
	snap_fs.restores_ok = snap_fs.restores_failed = 0;
	snap_fs.conflicts = 0;
	return tu_teardown(state);
}

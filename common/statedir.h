/*
 * statedir — prepares a daemon's persistence directory (syncd --state-dir,
 * l7proxy and l4lb --cache-dir) at start, so persistence never fails
 * quietly later: a directory that does not exist yet is created (with its
 * missing parents) mode 0700, since the files in it hold private keys; an
 * existing one must be a directory this process can write. Otherwise the
 * daemon refuses to start with the reason.
 *
 * Pure file-system calls, no global state, any thread. Callers: the three
 * daemons' main.c, before anything is loaded from or saved to DIR.
 */
#ifndef EDGE_COMMON_STATEDIR_H
#define EDGE_COMMON_STATEDIR_H

#include <stddef.h>

/* 0 (DIR existed), 1 (DIR was created, mode 0700), or -errno with a reason
 * in err ("/x/y: parent /x is not a directory", "...: not writable"). */
int statedir_prepare(const char *dir, char *err, size_t errlen);

#endif

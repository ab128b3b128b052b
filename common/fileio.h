/*
 * fileio — the two file jobs every daemon has: read a whole (bounded) file
 * into memory, and replace a file atomically so that a crash leaves either
 * the old contents or the new, never a mix.
 *
 * Atomic replace is: write PATH.tmp.PID (mode as given, fchmod'ed so a
 * stale temp file with wider bits does not leak them), fsync it, rename it
 * over PATH, fsync the directory (so the rename itself survives a crash).
 * On any failure the temp file is removed and PATH is untouched.
 *
 * Errors: 0 or a negative errno (-ENOENT, -EFBIG, -ENOMEM, -EIO, ...) and,
 * when err is not NULL, a one-line reason that starts with the path
 * ("/var/lib/edge/state.pb: No such file or directory"). Contents never
 * appear in reasons (they may be keys).
 *
 * Callers: l4lb/membership (replica cache), l7proxy/config_store (state
 * cache, --config), syncd/store (state), syncd/main (default certificate),
 * syncd/source_dir, syncd/source_k8s, syncd/default_cert, common/rpc (PEM
 * files). Blocking I/O: call from a thread that may block (start-up, the
 * control-plane loop for small files), never from a data-path worker.
 * Thread-safe: no global state.
 */
#ifndef EDGE_COMMON_FILEIO_H
#define EDGE_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* No size limit for fileio_read (memory is the limit). */
#define FILEIO_NO_LIMIT ((size_t)-1)

/*
 * Reads the regular file at path, at most max bytes. On success *out is a
 * malloc'd buffer the caller frees, NUL-terminated one byte past *len (so
 * text can be used as a C string), and 0 is returned. Fails with -ENOENT
 * when the file does not exist, -EINVAL when it is not a regular file,
 * -EFBIG when it is (or grows while read) larger than max, -ENOMEM, or the
 * open/read errno.
 */
int fileio_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

/*
 * Replaces path atomically with the concatenation of iov[0..iovcnt) (see
 * the top of this file), creating it with mode (0600 for anything that
 * holds keys or state). The directory is path's own (the part before the
 * last '/', "." when none). 0 or a negative errno with a reason.
 */
int fileio_write_atomic(const char *path, const struct iovec *iov, int iovcnt, mode_t mode,
                        char *err, size_t errlen);

/* fileio_write_atomic of one buffer. */
int fileio_write_atomic_buf(const char *path, const void *data, size_t len, mode_t mode, char *err,
                            size_t errlen);

#endif

/*
 * journal — an append-only file of checksummed records: how syncd keeps
 * its state on disk as changes instead of rewriting the whole state per
 * change (an 11 MB file at 10,000 certificates).
 *
 * File: the 8-byte magic "EDGEJNL1", then records. A record is a 12-byte
 * header — u32 payload length, u8 type, 3 zero bytes, u32 CRC-32C of the
 * first 8 header bytes and the payload (all little endian) — and the
 * payload. What the types and payloads mean is the caller's (syncd/persist.c
 * writes store states, deltas and reports).
 *
 * Crash safety: records are appended with one write and fdatasync'd before
 * journal_append returns. A crash can leave a torn last record (short, or
 * with a bad checksum); opening the journal replays every intact record up
 * to the first bad one, reports how many bytes it dropped, and truncates
 * them away so later appends follow the last good record. A bad record is
 * never skipped over: what follows it cannot be trusted to apply in order.
 *
 * Compaction (journal_compact_*): a new file that starts with a record
 * holding the whole state is written beside the journal (PATH.compact),
 * possibly on another thread, while appends go on to the old file; the
 * finish step copies the records appended since the start into the new
 * file, fsyncs it, renames it over PATH and fsyncs the directory. A crash
 * at any point leaves either the old journal or the new one, both whole.
 *
 * Threads: a struct journal belongs to one thread; journal_compact_write
 * touches only its own struct journal_compaction and may run on another.
 * Errors: 0 or a negative errno with a one-line reason (never payload
 * bytes, which may hold keys). Callers: syncd/persist.c, tests.
 */
#ifndef EDGE_SYNCD_JOURNAL_H
#define EDGE_SYNCD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define JOURNAL_MAGIC "EDGEJNL1"
#define JOURNAL_MAGIC_LEN 8
#define JOURNAL_HEADER_LEN 12
/* Largest payload accepted when reading (a bigger length is corruption). */
#define JOURNAL_MAX_PAYLOAD (1u << 30)

/* CRC-32C (Castagnoli), as in iSCSI/ext4: crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t journal_crc32c(uint32_t crc, const void *data, size_t len);

/* Writes the 12-byte header of a record with this type and payload. */
void journal_header(uint8_t out[JOURNAL_HEADER_LEN], uint8_t type, const struct iovec *payload,
                    int n);

/* One intact record, pointing into the scanned buffer. */
struct journal_record {
  uint8_t type;
  const uint8_t *data;
  size_t len;
  uint64_t offset; /* of the header, from the start of the file */
};

/* Called for every intact record in order; a non-zero return stops the
 * scan there (the record and everything after it count as dropped). */
typedef int (*journal_record_fn)(void *ud, const struct journal_record *r);

/*
 * Scans buf[0..len) (a whole journal file, magic included). Returns the
 * number of bytes that form the magic and the intact records accepted by
 * fn (the "good" prefix), or -EINVAL when the magic is missing or wrong.
 * Pure: no I/O.
 */
long long journal_scan(const uint8_t *buf, size_t len, journal_record_fn fn, void *ud);

struct journal;

struct journal_open_info {
  uint64_t records;  /* intact records replayed */
  uint64_t good_len; /* bytes kept */
  uint64_t dropped;  /* bytes of a torn or corrupt tail, truncated away */
  int created;       /* the file did not exist (an empty journal was made) */
};

/*
 * Opens (or creates, mode 0600) the journal at path, replays its intact
 * records through fn, truncates a torn tail, and leaves the file ready
 * for appends. 0 with *out, or a negative errno with a reason (a file
 * that is not a journal at all is -EINVAL and left untouched).
 */
int journal_open(const char *path, journal_record_fn fn, void *ud, struct journal **out,
                 struct journal_open_info *info, char *err, size_t errlen);

/* Appends one record (payload = the iovecs concatenated) and fdatasyncs.
 * On failure the file is truncated back to its previous end. */
int journal_append(struct journal *j, uint8_t type, const struct iovec *payload, int n, char *err,
                   size_t errlen);

/* Current size in bytes, and the size right after the last compaction
 * (or open): the caller's compaction policy compares the two. */
uint64_t journal_size(const struct journal *j);
uint64_t journal_base_size(const struct journal *j);

void journal_close(struct journal *j);

/* ---- compaction ----------------------------------------------------- */

struct journal_compaction;

/* Starts a compaction whose first record is (type, payload); takes
 * ownership of payload (malloc'd). Remembers where the journal ends now. */
int journal_compact_begin(struct journal *j, uint8_t type, uint8_t *payload, size_t len,
                          struct journal_compaction **out);
/* Writes and fsyncs PATH.compact with the magic and the first record.
 * Blocking; may run on any thread. 0 or a negative errno (kept for the
 * finish step, which then abandons the compaction). */
int journal_compact_write(struct journal_compaction *c);
/* Back on the journal's thread: copies the records appended since begin,
 * fsyncs, renames over the journal, switches appends to the new file.
 * Frees c. On any failure the old journal stays in use and the temporary
 * file is removed. 0 or a negative errno with a reason. */
int journal_compact_finish(struct journal *j, struct journal_compaction *c, char *err,
                           size_t errlen);

#endif

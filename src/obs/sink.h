/* sink.h: an output stream that never blocks the thread writing to it.
 *
 * The observers (console, JSON log) format each event into whole lines and
 * hand them to a sink. The sink copies them into a bounded ring buffer that
 * a writer thread drains with ordinary blocking write()s to the FILE's file
 * descriptor (the same for terminals, pipes, files and sockets; the file
 * description's flags are never changed). When a reader is too slow and the
 * buffer is full, whole records are dropped and counted; once the buffer is
 * down to half its size again (or a record marked keep comes and fits), a
 * notice saying how much was dropped (text from the owner's notice
 * function) is queued where the gap is, and writing resumes. A write error (EPIPE: the reader went away) discards all further
 * output. The writer thread blocks every signal, so a SIGPIPE it raises
 * stays pending on it and never reaches the process (write returns EPIPE).
 *
 * Invariant: the bytes written to the fd are the records accepted, in the
 * order they were accepted, each whole; nothing is dropped without being
 * counted in obs_sink_dropped() and, unless output stopped for an error,
 * announced by a notice.
 *
 * A FILE without a file descriptor (fmemopen, open_memstream) is written
 * synchronously with fwrite instead: such streams never block.
 * One thread writes to a sink (the engine's loop); it is not for concurrent
 * producers.
 */
#ifndef DAGRUN_OBS_SINK_H
#define DAGRUN_OBS_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/buf.h"

#define OBS_SINK_CAP ((size_t)4 << 20)   /* 4 MiB buffered before dropping */

/* Appends to out the notice for lines and bytes dropped since the last
 * notice; called on the producer's thread. Returns 0 or < 0 (then no
 * notice is written and the drop stays pending). */
typedef int (*obs_notice_fn)(void *ud, uint64_t lines, uint64_t bytes, struct buf *out);

struct obs_sink;

/* A sink writing to out (flushed first; from then on, write to out only
 * through the sink until obs_sink_free). cap: buffer bytes (0:
 * OBS_SINK_CAP). notice may be NULL (no notice). Returns 0 and *sink, or
 * -ENOMEM / -errno from starting the thread. */
int obs_sink_new(FILE *out, size_t cap, obs_notice_fn notice, void *ud,
		 struct obs_sink **sink);

/* Queues p[0 .. n) as one record, without ever blocking. keep: a record
 * that matters more than bulk (a status change, not task output): it may
 * use the last eighth of the buffer, which bulk records leave free, and it
 * is written as soon as it fits, after a notice for the gap before it.
 * Returns 0 when queued, 1 when dropped (counted), -EPIPE (or another
 * -errno) when output stopped after a write error (discarded, not
 * counted). */
int obs_sink_write(struct obs_sink *s, const char *p, size_t n, bool keep);

/* A record to keep, queued only if it fits now; when it does not, nothing
 * is dropped or counted (returns 1): the caller keeps it for
 * obs_sink_write_wait later. Returns 0, 1 or -errno as above. */
int obs_sink_try_write(struct obs_sink *s, const char *p, size_t n);

/* Like obs_sink_write, but waits for room instead of dropping: for the last
 * records, once blocking no longer delays anything (the run is over and
 * its signal handling gone). A pending drop notice goes first. Returns 0 or
 * -errno as above. */
int obs_sink_write_wait(struct obs_sink *s, const char *p, size_t n);

/* Totals dropped so far (lines: newline characters in the records). */
void obs_sink_dropped(const struct obs_sink *s, uint64_t *lines, uint64_t *bytes);

/* Writes what is still buffered (waiting for the reader: the run is over),
 * with a last notice when records were dropped since the previous one,
 * stops the thread and frees the sink. A write error ends the wait.
 * Accepts NULL. */
void obs_sink_free(struct obs_sink *s);

#endif

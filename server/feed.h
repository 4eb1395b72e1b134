/* The rep API's alert feed (docs/alerts.md): one thread holds a PostgreSQL
 * connection that LISTENs on channel mailbeacon_alerts. A notification
 * (one per transaction that made alerts, the newest id as payload) wakes
 * it; it then reads every alert after the last one it read, in id order
 * (ids are given in commit order), and writes each, as a Server-Sent
 * Event, to the open streams of the alert's rep only: streams are indexed
 * by the reps they read. A lost notification costs latency, never an
 * alert: the next one, or the reconnection after a dropped connection,
 * reads from the last id. Every 15 s each stream gets a heartbeat comment.
 *
 * A stream is a libmicrohttpd response whose connection is suspended
 * while there is nothing to send (MHD_ALLOW_SUSPEND_RESUME), and resumed
 * when the feed writes to it, both by the daemon's thread between its
 * rounds (mb_feed_resume). An idle stream costs its
 * connection's memory and no CPU.
 *
 * Thread-safety: every function may be called from any thread; the
 * streams' state is under one mutex, held only to copy bytes. */
#ifndef MAILBEACON_FEED_H
#define MAILBEACON_FEED_H

#include "mailbeacon/codec.h"
#include "mailbeacon/config.h"

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mb_feed mb_feed;
typedef struct mb_stream mb_stream;

#define MB_FEED_READS_MAX 16 /* reps a stream reads: its own and the shared addresses */
#define MB_FEED_HEARTBEAT_MS 15000
#define MB_FEED_RETRY_MS 3000 /* the "retry:" a stream starts with */

/* Starts the feed thread (cfg must outlive it). It connects on its own
 * and retries while PostgreSQL is down (mailbeacon_api_postgres_up).
 * resumed(cls) is called, from any thread, when streams have something to
 * send again: the thread that runs the daemon must call mb_feed_resume,
 * then run it. NULL with err set when the thread cannot start. */
mb_feed *mb_feed_start(const mb_config *cfg, void (*resumed)(void *), void *cls, char *err, size_t errlen);

/* The newest alert id the feed has read; 0 before its first read. */
int64_t mb_feed_last(mb_feed *f);

/* Opens a stream for connection c reading the alerts of reps (n of them,
 * lower-cased; copied). after < 0: from the next alert the feed reads on;
 * after >= 0 (Last-Event-ID): the caller reads the alerts after it out of
 * the table and hands them to mb_stream_catch_up, and the stream holds
 * back until then. NULL when out of memory or stopping. */
mb_stream *mb_stream_open(mb_feed *f, struct MHD_Connection *c, const char *const *reps, size_t n, int64_t after);

/* The alerts read out of the table for a stream opened with after >= 0:
 * ids[i] with its event text[i] (what mb_feed_event writes), in id order.
 * Then what the feed read meanwhile follows, each alert once. */
void mb_stream_catch_up(mb_stream *s, const int64_t *ids, const char *const *text, size_t n);

/* Suspends the connections of the streams that had nothing to send in the
 * last round, and resumes those that have something again. Call it on the
 * thread that runs the daemon, outside its rounds: before and after each
 * MHD_run. */
void mb_feed_resume(mb_feed *f);

/* The response for the stream: text/event-stream, no-cache, no buffering
 * by proxies. The stream is closed and freed with it. NULL when out of
 * memory (then the stream is freed). */
struct MHD_Response *mb_stream_response(mb_stream *s);

/* One alert as a Server-Sent Event: "id: ID\ndata: JSON\n\n" (the JSON
 * has no newline). 0 or -1 (memory). */
int mb_feed_event(mb_buf *out, int64_t id, const char *json, size_t len);

/* Ends every stream (they finish what they hold and close) and stops
 * taking new ones; the connections are resumed, so that the daemon can
 * stop. Then, once the daemon has stopped, mb_feed_stop. */
void mb_feed_close_streams(mb_feed *f);
/* Streams still open (their connections not yet closed). */
size_t mb_feed_streams(mb_feed *f);

/* Stops the thread, frees. Every stream must be gone. Accepts NULL. */
void mb_feed_stop(mb_feed *f);

#endif

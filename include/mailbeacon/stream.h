/* Writes records to a Redis stream (XADD), falling back to the disk spool
 * when Redis cannot take them, and replaying the spool, in order, on the
 * next successful connect. Never blocks long: connect and command timeouts
 * are short, so a caller on the mail path is never held up by Redis.
 * An mb_stream is used by one thread at a time; it may pass from one
 * thread to another (a pool) with a lock between their uses. */
#ifndef MAILBEACON_STREAM_H
#define MAILBEACON_STREAM_H

#include "mailbeacon/config.h"
#include "mailbeacon/spool.h"

typedef struct mb_stream mb_stream;

/* Connects to Redis at addr ("host:port", "[v6]:port", "unix:/path" or
 * "/path") with the given connect and command timeouts. NULL on failure. */
struct redisContext;
struct redisContext *mb_redis_connect(const char *addr, unsigned connect_ms, unsigned command_ms);

/* Connects to addr and sends PING (2 s each at most), for the check
 * commands: 0, or -1 with why in err. */
int mb_redis_ping(const char *addr, char *err, size_t errlen);

/* Uses c->redis, c->redis_stream and c->spool_dir/spool_name. Returns NULL
 * with err set only when neither Redis is configured nor a spool can be
 * opened; with Redis empty ("off"), returns NULL and err[0] == '\0'. */
mb_stream *mb_stream_new(const mb_config *c, const char *spool_name, char *err, size_t errlen);

/* The same, with the spool's fsync policy chosen (mb_stream_new syncs every append). */
mb_stream *mb_stream_new_fsync(const mb_config *c, const char *spool_name, int fsync_each, char *err, size_t errlen);
void mb_stream_free(mb_stream *s);

enum { MB_STREAM_STORED = 0, MB_STREAM_SPOOLED = 1, MB_STREAM_LOST = -1 };

/* Adds one record. Returns MB_STREAM_STORED (in Redis), MB_STREAM_SPOOLED
 * (on disk, to be replayed) or MB_STREAM_LOST (neither worked; err says why). */
int mb_stream_add(mb_stream *s, const mb_field *fields, size_t nfields, char *err, size_t errlen);

/* Adds n records in order, pipelined: Redis takes what it can, the rest
 * goes to the spool (after anything already spooled, which is replayed
 * first). While Redis is down, or after it failed a command (a timeout:
 * stalled), reconnects are tried at most every retry_ms. Returns how many records went to Redis (the first ones);
 * *spooled gets how many of the rest were spooled. Records neither stored
 * nor spooled (n - returned - *spooled) are lost, and err says why. */
long mb_stream_add_batch(mb_stream *s, const mb_field *const *records, const size_t *nfields, size_t n,
                         unsigned retry_ms, size_t *spooled, char *err, size_t errlen);

/* Replays the spool into Redis now if Redis answers. Returns records replayed or -1. */
long mb_stream_flush_spool(mb_stream *s);

/* 1 while the last exchange with Redis worked. */
int mb_stream_redis_up(const mb_stream *s);

/* Bytes waiting in the spool (0 without one). */
int64_t mb_stream_spool_bytes(mb_stream *s);

/* Bytes of the spool that replays had to skip as unreadable (0 without one). */
int64_t mb_stream_spool_skipped(const mb_stream *s);

/* Whether the stream has its spool (NULL when mb_stream_new could not open
 * it: a record Redis does not take is then lost). */
int mb_stream_has_spool(const mb_stream *s);

/* For a stream kept idle between uses: forgets which entry Redis confirmed
 * to it last. A record whose fate is unknown (sent, reply lost) is then
 * looked for among the stream's newest entries, as with a new stream,
 * rather than after an entry that may be hours old. */
void mb_stream_forget_position(mb_stream *s);

#endif

/* The batcher's set of (message, recipient index) pairs whose hits are no
 * longer stored: their recipient withdrew consent or refused it (or, for
 * index 0, one of the recipients of a copy sent to several did). Rebuilt
 * from PostgreSQL (mailbeacon.silenced, sql/016) and added to as the
 * batcher records withdrawals. One thread's: no locking. No I/O. */
#ifndef MAILBEACON_SILENCED_H
#define MAILBEACON_SILENCED_H

#include "msgkey.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mb_silenced mb_silenced;

mb_silenced *mb_silenced_new(void);
void mb_silenced_free(mb_silenced *s);
void mb_silenced_clear(mb_silenced *s);
/* 0, or -1 when memory ran out (the set is as before). */
int mb_silenced_add(mb_silenced *s, const mb_msgkey *m, uint32_t recipient);
int mb_silenced_has(const mb_silenced *s, const mb_msgkey *m, uint32_t recipient);
size_t mb_silenced_count(const mb_silenced *s);

#endif

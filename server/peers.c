#include "peers.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64 /* a power of two */

typedef struct slot {
  mb_peer p;
  uint32_t count; /* 0: empty */
} slot;

/* Open addressing with linear probing; deletion shifts the run back
 * (no tombstones). Grown at half full. */
typedef struct shard {
  _Alignas(64) pthread_mutex_t mu;
  slot *s;
  size_t cap, n; /* cap a power of two, or 0 */
} shard;

struct mb_peers {
  unsigned char key[crypto_shorthash_KEYBYTES];
  shard shards[SHARDS];
};

int mb_peer_of(const struct sockaddr *sa, socklen_t len, mb_peer *out) {
  memset(out, 0, sizeof *out);
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    out->b[0] = 4;
    memcpy(out->b + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0) { /* an IPv4 client on a dual-stack socket */
      out->b[0] = 4;
      memcpy(out->b + 1, a + 12, 4);
    } else {
      out->b[0] = 6;
      memcpy(out->b + 1, a, 8);
    }
    return 0;
  }
  return -1;
}

mb_peers *mb_peers_new(void) {
  if (sodium_init() < 0) return NULL;
  mb_peers *t = aligned_alloc(64, (sizeof *t + 63) / 64 * 64);
  if (!t) return NULL;
  memset(t, 0, sizeof *t);
  crypto_shorthash_keygen(t->key);
  for (size_t i = 0; i < SHARDS; i++) pthread_mutex_init(&t->shards[i].mu, NULL);
  return t;
}

void mb_peers_free(mb_peers *t) {
  if (!t) return;
  for (size_t i = 0; i < SHARDS; i++) {
    pthread_mutex_destroy(&t->shards[i].mu);
    free(t->shards[i].s);
  }
  free(t);
}

static uint64_t hash(const mb_peers *t, const mb_peer *p) {
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, p->b, sizeof p->b, t->key);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return v;
}

/* The slot of p in sh, or the empty slot where it would go. */
static slot *find(shard *sh, const mb_peer *p, uint64_t h) {
  size_t mask = sh->cap - 1;
  for (size_t i = (size_t)(h >> 6) & mask;; i = (i + 1) & mask)
    if (!sh->s[i].count || memcmp(&sh->s[i].p, p, sizeof *p) == 0) return &sh->s[i];
}

static int grow(mb_peers *t, shard *sh) {
  size_t cap = sh->cap ? sh->cap * 2 : 16;
  slot *old = sh->s, *s = calloc(cap, sizeof *s);
  if (!s) return -1;
  size_t oldcap = sh->cap;
  sh->s = s, sh->cap = cap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].count) *find(sh, &old[i].p, hash(t, &old[i].p)) = old[i];
  free(old);
  return 0;
}

unsigned mb_peers_count(mb_peers *t, const mb_peer *p) {
  uint64_t h = hash(t, p);
  shard *sh = &t->shards[h & (SHARDS - 1)];
  pthread_mutex_lock(&sh->mu);
  unsigned c = sh->cap ? find(sh, p, h)->count : 0;
  pthread_mutex_unlock(&sh->mu);
  return c;
}

unsigned mb_peers_add(mb_peers *t, const mb_peer *p) {
  uint64_t h = hash(t, p);
  shard *sh = &t->shards[h & (SHARDS - 1)];
  pthread_mutex_lock(&sh->mu);
  unsigned c = 0;
  if ((sh->n + 1) * 2 <= sh->cap || grow(t, sh) == 0) {
    slot *s = find(sh, p, h);
    if (!s->count) s->p = *p, sh->n++;
    c = ++s->count;
  }
  pthread_mutex_unlock(&sh->mu);
  return c;
}

void mb_peers_remove(mb_peers *t, const mb_peer *p) {
  uint64_t h = hash(t, p);
  shard *sh = &t->shards[h & (SHARDS - 1)];
  pthread_mutex_lock(&sh->mu);
  slot *s = sh->cap ? find(sh, p, h) : NULL;
  if (s && s->count && --s->count == 0) {
    /* shift back the entries after it whose home is at or before the hole */
    size_t mask = sh->cap - 1, hole = (size_t)(s - sh->s);
    sh->n--;
    for (size_t j = (hole + 1) & mask; sh->s[j].count; j = (j + 1) & mask) {
      size_t home = (size_t)(hash(t, &sh->s[j].p) >> 6) & mask;
      /* j's entry may move to the hole unless its home lies in (hole, j] */
      int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (stays) continue;
      sh->s[hole] = sh->s[j];
      hole = j;
    }
    sh->s[hole].count = 0;
  }
  pthread_mutex_unlock(&sh->mu);
}

size_t mb_peers_addresses(mb_peers *t) {
  size_t n = 0;
  for (size_t i = 0; i < SHARDS; i++) {
    pthread_mutex_lock(&t->shards[i].mu);
    n += t->shards[i].n;
    pthread_mutex_unlock(&t->shards[i].mu);
  }
  return n;
}

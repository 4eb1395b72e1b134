/* The tracking policy's cost at rewrite time (issue 14), for
 * bench/run-consent.sh (not a test):
 *   1. a consent copy of RECORDS addresses written (consent.h), and its size;
 *   2. one recipient's decision (mb_consents_get + mb_policy_decide), for
 *      addresses in the copy and not in it, in random order: ns each;
 *   3. mb_rewrite_message on MESSAGE with the policy off (no consent_copy)
 *      and on (the copy, a recipient who consented), interleaved rounds in
 *      one run: messages/s each and the ratio on/off.
 * usage: mb-bench-consent DIR MESSAGE [RECORDS [ROUNDS]]   (prints JSON lines) */
#include "mime.h"

#include "mailbeacon/consent.h"
#include "mailbeacon/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next_rand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

static void address(char *out, size_t size, uint64_t i) {
  snprintf(out, size, "person.%llu@client%llu.example.de", (unsigned long long)i, (unsigned long long)(i % 977));
}

static double rewrite_round(const mb_config *cfg, const mb_keyring *ring, mb_consents *cs, const char *msg, size_t len,
                            int n) {
  const char *rc[] = {"person.7@client7.example.de"}; /* granted in the copy */
  mb_identity id = {.sender = "rep@ourco.example", .recipients = rc, .nrecipients = 1, .consents = cs};
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    mb_rewrite_result res;
    if (mb_rewrite_message(cfg, ring, &id, msg, len, &res) < 0 || !res.rewritten) {
      fprintf(stderr, "not rewritten: %s\n", res.skip_reason ? res.skip_reason : "out of memory");
      exit(1);
    }
    mb_rewrite_result_free(&res);
  }
  return now_s() - t0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s DIR MESSAGE [RECORDS [ROUNDS]]\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  long records = argc > 3 ? atol(argv[3]) : 1000000, rounds = argc > 4 ? atol(argv[4]) : 5;
  char path[4096], err[512];
  snprintf(path, sizeof path, "%s/consent.cdb", dir);

  /* 1. the copy */
  double t0 = now_s();
  mb_consent_writer *w = mb_consent_writer_begin(path, err, sizeof err);
  if (!w) return fprintf(stderr, "%s\n", err), 1;
  static const mb_consent_state states[] = {MB_CONSENT_GRANTED, MB_CONSENT_REFUSED, MB_CONSENT_WITHDRAWN,
                                            MB_CONSENT_UNKNOWN};
  for (long i = 0; i < records; i++) {
    char a[128];
    address(a, sizeof a, (uint64_t)i);
    mb_consent c = {.state = i == 7 ? MB_CONSENT_GRANTED : states[i % 4], .at_us = 1767225600000000 + i};
    memcpy(c.country, i % 3 ? "DE" : "FR", 3);
    snprintf(c.source, sizeof c.source, "crm export 2026-11");
    if (mb_consent_writer_add(w, a, &c, err, sizeof err) < 0) return fprintf(stderr, "%s\n", err), 1;
  }
  if (mb_consent_writer_commit(w, err, sizeof err) < 0) return fprintf(stderr, "%s\n", err), 1;
  struct stat st;
  stat(path, &st);
  printf("{\"step\":\"copy\",\"records\":%ld,\"bytes\":%lld,\"seconds\":%.3f}\n", records, (long long)st.st_size,
         now_s() - t0);

  /* 2. one recipient's decision */
  mb_config cfg;
  mb_config_defaults(&cfg);
  if (mb_config_set(&cfg, "base_url", "https://t.mailbeacon.test", "bench", err, sizeof err) < 0 ||
      mb_config_set(&cfg, "track_default_eu", "none", "bench", err, sizeof err) < 0)
    return fprintf(stderr, "%s\n", err), 1;
  mb_consents *cs = mb_consents_new(path);
  mb_consent c;
  int erased;
  if (!cs || mb_consents_get(cs, "warm@up.example", &c, &erased, err, sizeof err) < 0)
    return fprintf(stderr, "%s\n", err), 1;
  enum { LOOKUPS = 1000000 };
  static char(*addrs)[128];
  addrs = malloc((size_t)LOOKUPS * sizeof *addrs);
  for (int pass = 0; pass < 3; pass++) { /* in the copy (its pages touched first here), again, not in it */
    int miss = pass == 2;
    for (long i = 0; i < LOOKUPS; i++) {
      uint64_t k = next_rand() % (uint64_t)records;
      address(addrs[i], sizeof addrs[i], miss ? k + (uint64_t)records : k);
    }
    long found = 0;
    double t = now_s();
    for (long i = 0; i < LOOKUPS; i++) {
      mb_decision d;
      int got = mb_consents_get(cs, addrs[i], &c, &erased, err, sizeof err);
      mb_policy_decide(&cfg, addrs[i], &c, erased, &d);
      found += got == 1;
    }
    t = now_s() - t;
    printf("{\"step\":\"decide\",\"in_copy\":%s,\"first_touch\":%s,\"lookups\":%d,\"found\":%ld,\"ns_each\":%.0f}\n",
           miss ? "false" : "true", pass == 0 ? "true" : "false", LOOKUPS, found, t * 1e9 / LOOKUPS);
  }
  free(addrs);

  /* 3. the rewriter, policy off and on */
  FILE *f = fopen(argv[2], "rb");
  if (!f) return perror(argv[2]), 1;
  mb_buf msg;
  mb_buf_init(&msg);
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) mb_buf_append(&msg, buf, n);
  fclose(f);
  uint8_t secret[1][MB_KEY_BYTES] = {{1, 2, 3}};
  uint8_t id = 1;
  mb_keyring *ring = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secret, &id, 1, 0);
  if (!ring) return fprintf(stderr, "no key ring\n"), 1;
  mb_config on = cfg, off; /* off: the built-in defaults, no copy: every recipient tracked */
  snprintf(on.consent_copy, sizeof on.consent_copy, "%s", path);
  mb_config_defaults(&off);
  snprintf(off.base_url, sizeof off.base_url, "%s", cfg.base_url);
  int per = 1;
  while (rewrite_round(&off, ring, NULL, msg.data, msg.len, per) < 0.25) per *= 2; /* a round of about 0.25 s */
  double off_s = 0, on_s = 0;
  for (long r = 0; r < rounds; r++) {
    off_s += rewrite_round(&off, ring, NULL, msg.data, msg.len, per);
    on_s += rewrite_round(&on, ring, cs, msg.data, msg.len, per);
  }
  double total = (double)per * (double)rounds;
  printf("{\"step\":\"rewrite\",\"message\":\"%s\",\"bytes\":%zu,\"messages\":%.0f,\"off_per_s\":%.0f,"
         "\"on_per_s\":%.0f,\"ratio_on_off\":%.4f}\n",
         argv[2], msg.len, total, total / off_s, total / on_s, off_s / on_s);
  mb_keyring_free(ring);
  mb_consents_free(cs);
  mb_buf_free(&msg);
  return 0;
}

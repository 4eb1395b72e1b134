/* The tracking policy per recipient (issue 14): whether a message to an
 * address may carry an open pixel, tracked links, both or neither, decided
 * when the message is rewritten. Inputs, in order: the erased list, the
 * never_track list, the recipient's consent state, then a default per
 * region for consent not known (docs/privacy.md).
 *
 * Pure functions of their arguments and the configuration: no I/O, no
 * global state, thread-safe. Strings returned are static. */
#ifndef MAILBEACON_POLICY_H
#define MAILBEACON_POLICY_H

#include "mailbeacon/config.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
  MB_CONSENT_NONE = 0, /* no record for the address */
  MB_CONSENT_UNKNOWN,  /* a record that says nothing yet (it may give the country) */
  MB_CONSENT_GRANTED,
  MB_CONSENT_REFUSED,
  MB_CONSENT_WITHDRAWN,
} mb_consent_state;

#define MB_CONSENT_SOURCE_MAX 128

/* A recipient's consent as the CRM (or the withdrawal page) recorded it. */
typedef struct mb_consent {
  mb_consent_state state;
  char country[3]; /* ISO 3166-1 alpha-2, upper case; "" when not known */
  int64_t at_us;   /* when it was given or withdrawn; 0 when not known */
  char source[MB_CONSENT_SOURCE_MAX];
} mb_consent;

#define MB_TRACK_OPENS 1u
#define MB_TRACK_CLICKS 2u
#define MB_TRACK_ALL (MB_TRACK_OPENS | MB_TRACK_CLICKS)

typedef enum { MB_REGION_EU, MB_REGION_OTHER, MB_REGION_UNKNOWN } mb_region;

typedef struct mb_decision {
  unsigned track; /* MB_TRACK_* */
  /* what decided: erased, never_track, consent_granted, consent_refused,
   * consent_withdrawn, default_eu, default_other, default_unknown */
  const char *basis;
  int consent_based; /* tracked because the recipient consented */
  mb_region region;  /* the recipient's region, as far as it counts */
} mb_decision;

/* "none", "unknown", "granted", "refused", "withdrawn". */
const char *mb_consent_state_name(mb_consent_state s);
/* Parses one of those names (any case; "" is unknown). 0 or -1. */
int mb_consent_state_parse(const char *s, size_t n, mb_consent_state *out);

/* "opens,clicks", "opens", "clicks" or "none". */
const char *mb_track_name(unsigned track);
const char *mb_region_name(mb_region r);

/* Checks and normalises a country code into out[3] (upper case; "UK" is
 * GB). "" stays "". 0, or -1 when it is not two letters. */
int mb_country_parse(const char *s, size_t n, char out[3]);

/* The country an address's domain names (its last label when that is a
 * country code not commonly used as a generic one; .uk is GB, .eu is "EU"),
 * in out[3]; "" when it names none. */
void mb_domain_country(const char *address, char out[3]);

/* The region of a country code ("" is unknown), by cfg's eu_countries. */
mb_region mb_policy_region(const mb_config *cfg, const char *country);

/* The decision for one recipient: consent is NULL (or state NONE) when
 * there is no record; erased when the address is on the erased list. */
void mb_policy_decide(const mb_config *cfg, const char *address, const mb_consent *consent, int erased,
                      mb_decision *out);

/* The policy's version: "p1-" and 12 hex digits of a hash of the settings
 * that decide (stored with each message as proof of what applied). */
#define MB_POLICY_VERSION_LEN 16
void mb_policy_version(const mb_config *cfg, char out[MB_POLICY_VERSION_LEN]);

#endif

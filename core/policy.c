#include "mailbeacon/policy.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const state_names[] = {"none", "unknown", "granted", "refused", "withdrawn"};

const char *mb_consent_state_name(mb_consent_state s) {
  return (size_t)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "none";
}

int mb_consent_state_parse(const char *s, size_t n, mb_consent_state *out) {
  if (n == 0) {
    *out = MB_CONSENT_UNKNOWN;
    return 0;
  }
  for (size_t i = 1; i < sizeof state_names / sizeof state_names[0]; i++)
    if (strlen(state_names[i]) == n && strncasecmp(state_names[i], s, n) == 0) {
      *out = (mb_consent_state)i;
      return 0;
    }
  return -1;
}

const char *mb_track_name(unsigned track) {
  switch (track & MB_TRACK_ALL) {
  case MB_TRACK_ALL: return "opens,clicks";
  case MB_TRACK_OPENS: return "opens";
  case MB_TRACK_CLICKS: return "clicks";
  default: return "none";
  }
}

const char *mb_region_name(mb_region r) {
  switch (r) {
  case MB_REGION_EU: return "eu";
  case MB_REGION_OTHER: return "other";
  default: return "unknown";
  }
}

int mb_country_parse(const char *s, size_t n, char out[3]) {
  out[0] = '\0';
  if (n == 0) return 0;
  if (n != 2 || !isalpha((unsigned char)s[0]) || !isalpha((unsigned char)s[1])) return -1;
  out[0] = (char)toupper((unsigned char)s[0]);
  out[1] = (char)toupper((unsigned char)s[1]);
  out[2] = '\0';
  if (strcmp(out, "UK") == 0) memcpy(out, "GB", 3);
  return 0;
}

/* Country-code domains sold and used as generic ones: they say nothing of
 * where the recipient is (docs/privacy.md). */
static const char generic_cc[][3] = {"ai", "am", "cc", "co", "fm", "gg", "io", "la",
                                     "ly", "me", "nu", "sh", "to", "tv", "ws"};

void mb_domain_country(const char *address, char out[3]) {
  out[0] = '\0';
  const char *at = strrchr(address, '@');
  const char *domain = at ? at + 1 : address;
  size_t dl = strlen(domain);
  while (dl && domain[dl - 1] == '.') dl--; /* a fully qualified name's root */
  const char *dot = NULL;
  for (size_t i = dl; i > 0; i--)
    if (domain[i - 1] == '.') {
      dot = domain + i - 1;
      break;
    }
  if (!dot || (size_t)(domain + dl - dot - 1) != 2) return;
  char tld[3] = {(char)tolower((unsigned char)dot[1]), (char)tolower((unsigned char)dot[2]), '\0'};
  if (!isalpha((unsigned char)tld[0]) || !isalpha((unsigned char)tld[1])) return;
  for (size_t i = 0; i < sizeof generic_cc / sizeof generic_cc[0]; i++)
    if (strcmp(generic_cc[i], tld) == 0) return;
  (void)mb_country_parse(tld, 2, out);
}

mb_region mb_policy_region(const mb_config *cfg, const char *country) {
  if (!country || strlen(country) != 2) return MB_REGION_UNKNOWN;
  if (strcmp(country, "EU") == 0) return MB_REGION_EU;                      /* .eu: somewhere in the Union */
  for (const char *p = cfg->eu_countries; (p = strstr(p, country)); p += 2) /* "AA, BB": codes at even steps of 4 */
    if ((p - cfg->eu_countries) % 4 == 0) return MB_REGION_EU;
  return MB_REGION_OTHER;
}

static unsigned track_of(const char *setting) {
  if (strcmp(setting, "all") == 0) return MB_TRACK_ALL;
  if (strcmp(setting, "opens") == 0) return MB_TRACK_OPENS;
  if (strcmp(setting, "clicks") == 0) return MB_TRACK_CLICKS;
  return 0;
}

void mb_policy_decide(const mb_config *cfg, const char *address, const mb_consent *consent, int erased,
                      mb_decision *out) {
  memset(out, 0, sizeof *out);
  mb_consent_state st = consent ? consent->state : MB_CONSENT_NONE;
  char country[3] = "";
  if (consent && consent->country[0]) memcpy(country, consent->country, 3);
  else mb_domain_country(address, country);
  out->region = mb_policy_region(cfg, country);
  if (erased) {
    out->basis = "erased";
    return;
  }
  if (mb_config_never_track(cfg, address)) {
    out->basis = "never_track";
    return;
  }
  switch (st) {
  case MB_CONSENT_GRANTED:
    out->track = MB_TRACK_ALL;
    out->basis = "consent_granted";
    out->consent_based = 1;
    return;
  case MB_CONSENT_REFUSED: out->basis = "consent_refused"; return;
  case MB_CONSENT_WITHDRAWN: out->basis = "consent_withdrawn"; return;
  default: break;
  }
  switch (out->region) {
  case MB_REGION_EU:
    out->track = track_of(cfg->track_default_eu);
    out->basis = "default_eu";
    break;
  case MB_REGION_OTHER:
    out->track = track_of(cfg->track_default_other);
    out->basis = "default_other";
    break;
  default:
    out->track = track_of(cfg->track_default_unknown);
    out->basis = "default_unknown";
    break;
  }
}

void mb_policy_version(const mb_config *cfg, char out[MB_POLICY_VERSION_LEN]) {
  char text[sizeof cfg->eu_countries + sizeof cfg->never_track + 128];
  int n = snprintf(text, sizeof text, "eu=%s\nother=%s\nunknown=%s\ncountries=%s\nnever=%s\n", cfg->track_default_eu,
                   cfg->track_default_other, cfg->track_default_unknown, cfg->eu_countries, cfg->never_track);
  unsigned char h[crypto_generichash_BYTES_MIN];
  crypto_generichash(h, sizeof h, (const unsigned char *)text, n > 0 ? (size_t)n : 0, NULL, 0);
  snprintf(out, MB_POLICY_VERSION_LEN, "p1-%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5]);
}

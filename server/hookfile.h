/* The webhooks file (webhooks_file; docs/alerts.md "Webhooks"): where each
 * rep's alerts are posted. One endpoint per line:
 *
 *   # address (or * for every rep without a line of its own)  URL  secret  [format]
 *   *                   https://crm.example/hooks/mailbeacon  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
 *   dana@ourco.example  https://hooks.slack.com/services/T0/B0/x  -  slack
 *
 * The secret is Standard Webhooks' "whsec_" and the base64 of 24 to 64
 * bytes, or "-" for none (a Slack incoming webhook's URL is its own
 * secret); the format is "standard" (the default) or "slack". An address
 * may have several lines; a rep with none of its own gets the "*" lines.
 *
 * Parsing does no I/O. A parsed set is read-only: any number of threads
 * may read it; its owner frees it. */
#ifndef MAILBEACON_HOOKFILE_H
#define MAILBEACON_HOOKFILE_H

#include <stddef.h>
#include <stdint.h>

#define MB_HOOK_URL_MAX 2048
#define MB_HOOK_SECRET_MAX 64

typedef enum mb_hook_format { MB_HOOK_STANDARD, MB_HOOK_SLACK } mb_hook_format;

typedef struct mb_hook {
  char address[256]; /* lower-cased, or "*" */
  char url[MB_HOOK_URL_MAX];
  uint8_t secret[MB_HOOK_SECRET_MAX]; /* the key, decoded */
  size_t secret_len;                  /* 0: none */
  mb_hook_format format;
} mb_hook;

typedef struct mb_hooks {
  size_t n;
  mb_hook hooks[]; /* in the order of the file */
} mb_hooks;

/* Parses the len bytes of text (name is used in messages). The set (free
 * with free()), or NULL with "name:line: why" in err; a set of no hooks
 * when there are no lines. */
mb_hooks *mb_hooks_parse(const char *name, const char *text, size_t len, char *err, size_t errlen);

/* The hooks of rep (lower-cased): its own lines, else the "*" lines. Up to
 * max into out; returns how many there are. */
size_t mb_hooks_for(const mb_hooks *h, const char *rep, const mb_hook **out, size_t max);

#endif

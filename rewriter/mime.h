/* Whole-message rewrite: finds the HTML parts worth rewriting with GMime,
 * rewrites each with the streaming HTML rewriter, and splices the results
 * into the original bytes, so that everything outside those parts stays
 * byte-identical (headers, boundaries, preamble, epilogue, other parts,
 * line endings). */
#ifndef MAILBEACON_MIME_H
#define MAILBEACON_MIME_H

#include "links.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/config.h"
#include "mailbeacon/consent.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/policy.h"
#include "mailbeacon/sent.h"

#include <stddef.h>
#include <stdint.h>

/* Who the message is from and to; NULL/0 fields come from the headers. */
typedef struct mb_identity {
  const char *sender;
  const char *const *recipients;
  size_t nrecipients;
  const uint8_t *message; /* message UUID to use; NULL: a new random one */
  /* A copy for one recipient (per-recipient re-injection): the list is then
   * To and Cc, followed by the envelope recipients above (all of them, the
   * same for every copy) that are in neither (Bcc); its tokens carry this
   * recipient's index in it (added when absent), and only this recipient is
   * checked against never_track. */
  const char *copy_for;
  /* The address of the client that submitted the message to the MTA (the
   * rep's machine: the milter's connection, or an option of the pipe and
   * re-inject modes); kept in the sent record when it is an IP address. */
  const char *client_ip;
  /* The consent copy the tracking policy reads (policy.h, consent.h); NULL:
   * none configured, every recipient's consent unknown. */
  mb_consents *consents;
} mb_identity;

/* The tracking policy's decision for one recipient of the message. */
typedef struct mb_recipient_policy {
  int decided; /* 0: a copy for another recipient */
  mb_decision d;
  mb_consent consent; /* state MB_CONSENT_NONE: no record */
} mb_recipient_policy;

/* One change to the input: msg[start..end) gives way to data. */
typedef struct mb_edit {
  size_t start, end;
  mb_buf data;
} mb_edit;

/* Where the message to send on goes, a piece at a time; returns 0, or -1
 * to stop. */
typedef int mb_rewrite_write_fn(void *ctx, const char *p, size_t n);

typedef struct mb_rewrite_result {
  int rewritten;           /* the output differs from the input in the HTML */
  const char *skip_reason; /* why nothing was rewritten; NULL when rewritten */
  char skip_text[400];     /* where a skip reason made for this message is kept */
  int skip_problem;        /* skipped for a problem of the installation (the consent copy): worth a warning */
  /* The message to send on is the input with these spliced in (sorted by
   * start, none overlapping; none at all: the input itself). It is never
   * assembled unless asked: mb_rewrite_write hands it on in pieces. */
  mb_edit *edits;
  size_t nedits, edits_cap;
  const char *input; /* the input it was made from (borrowed: keep it while the result is used) */
  size_t input_len;
  /* identity and links, for the sent record */
  uint8_t message[16];
  char *message_id;
  char *subject;
  char *rep;
  char client_ip[46]; /* "" when unknown */
  char **recipients;
  char **recipient_names; /* each one's display name in To or Cc, "" when none */
  size_t nrecipients;
  uint16_t token_recipient;
  mb_links links;
  unsigned parts_rewritten;
  unsigned parts_skipped; /* HTML parts left alone (bad encoding, charset, ...) */
  /* the tracking policy: what this copy carries (MB_TRACK_*: every
   * recipient it goes to allows it), its version, each recipient's decision */
  unsigned track;
  int disclosed; /* the disclosure line and its withdrawal link are in its HTML */
  char policy[MB_POLICY_VERSION_LEN];
  mb_recipient_policy *policies; /* as recipients */
  mb_sent_policy *sent_policies; /* the same for the sent record */
} mb_rewrite_result;

/* Rewrites msg. Returns 0 with res filled (its edits make the message to
 * send on: the input itself when skipped, less an "X-Mailbeacon: off"
 * header), or -1 when memory ran out (send the input unchanged). Free res
 * with mb_rewrite_result_free either way. Thread-safe. */
int mb_rewrite_message(const mb_config *cfg, const mb_keyring *ring, const mb_identity *id, const char *msg, size_t len,
                       mb_rewrite_result *res);

void mb_rewrite_result_free(mb_rewrite_result *res);

/* The message to send on: its length; handed to write in order, a piece
 * at a time (the input's bytes between edits are not copied); or appended
 * to out (reserved once). Return 0, or -1 when write stopped or memory ran
 * out. The input must still be there. */
size_t mb_rewrite_len(const mb_rewrite_result *res);
int mb_rewrite_write(const mb_rewrite_result *res, mb_rewrite_write_fn *write, void *ctx);
int mb_rewrite_assemble(const mb_rewrite_result *res, mb_buf *out);

/* For a process that rewrites one message after another (the milter): the
 * memory one message used is kept for the next, not given back to the
 * system and faulted in again. Without it (one message a process: pipe,
 * re-inject) a large part's buffers are given back as soon as they have
 * been read, for the least peak memory. Call once, before any rewrite. */
void mb_rewrite_keep_memory(uint64_t max_message_size);

/* Fills a sent record from a result (pointers into res). */
void mb_rewrite_sent(const mb_rewrite_result *res, mb_sent *sent);

#endif

#include "mailbeacon/sent.h"

#include <string.h>
#include <uuid/uuid.h>

static const char *const names[MB_SENT_FIELDS] = {"type",    "v",          "message",         "message_id",
                                                  "rep",     "recipients", "token_recipient", "subject",
                                                  "sent_at", "links",      "client_ip",       "policy"};

int mb_sent_fields(const mb_sent *s, mb_buf *store, mb_field fields[MB_SENT_FIELDS]) {
  size_t start[MB_SENT_FIELDS + 1];
  size_t k = 0;
  char uuid[37];
  uuid_unparse_lower(s->message, uuid);
  int rc = 0;
  start[k++] = store->len, rc |= mb_buf_puts(store, "sent");
  start[k++] = store->len, rc |= mb_buf_puts(store, "1");
  start[k++] = store->len, rc |= mb_buf_puts(store, uuid);
  start[k++] = store->len, rc |= mb_buf_puts(store, s->message_id ? s->message_id : "");
  start[k++] = store->len, rc |= mb_buf_puts(store, s->rep ? s->rep : "");
  start[k++] = store->len;
  rc |= mb_buf_puts(store, "[");
  for (size_t i = 0; i < s->nrecipients; i++) {
    rc |= mb_buf_printf(store, "%s{\"i\":%zu,\"addr\":", i ? "," : "", i + 1);
    rc |= mb_buf_json_str(store, s->recipients[i], strlen(s->recipients[i]));
    const char *name = s->recipient_names ? s->recipient_names[i] : NULL;
    if (name && *name) {
      rc |= mb_buf_puts(store, ",\"name\":");
      rc |= mb_buf_json_str(store, name, strlen(name));
    }
    const mb_sent_policy *p = s->policies ? &s->policies[i] : NULL;
    if (p && p->track) {
      rc |= mb_buf_printf(store, ",\"track\":\"%s\",\"basis\":\"%s\"", p->track, p->basis ? p->basis : "");
      if (p->consent_source && *p->consent_source) {
        rc |= mb_buf_puts(store, ",\"consent_source\":");
        rc |= mb_buf_json_str(store, p->consent_source, strlen(p->consent_source));
      }
      if (p->consent_at_us) rc |= mb_buf_printf(store, ",\"consent_at\":%lld", (long long)p->consent_at_us);
    }
    rc |= mb_buf_puts(store, "}");
  }
  rc |= mb_buf_puts(store, "]");
  start[k++] = store->len, rc |= mb_buf_printf(store, "%u", s->token_recipient);
  start[k++] = store->len, rc |= mb_buf_puts(store, s->subject ? s->subject : "");
  start[k++] = store->len, rc |= mb_buf_printf(store, "%lld", (long long)s->sent_at_us);
  start[k++] = store->len;
  rc |= mb_buf_puts(store, "[");
  for (size_t i = 0; i < s->nlinks; i++) {
    rc |= mb_buf_printf(store, "%s{\"i\":%u,\"url\":", i ? "," : "", s->links[i].index);
    rc |= mb_buf_json_str(store, s->links[i].url, s->links[i].url_len);
    rc |= mb_buf_puts(store, "}");
  }
  rc |= mb_buf_puts(store, "]");
  start[k++] = store->len, rc |= mb_buf_puts(store, s->client_ip ? s->client_ip : "");
  start[k++] = store->len, rc |= mb_buf_puts(store, s->policy ? s->policy : "");
  start[k] = store->len;
  if (rc) return -1;
  /* Pointers are taken only now: the buffer may have moved while growing. */
  for (size_t i = 0; i < MB_SENT_FIELDS; i++) {
    fields[i].name = names[i];
    fields[i].name_len = strlen(names[i]);
    fields[i].value = store->data + start[i];
    fields[i].value_len = start[i + 1] - start[i];
  }
  return 0;
}

/* One configuration for both programs.
 *
 * File: lines of "key = value" (or "key value"); '#' starts a comment line;
 * a value may be wrapped in double quotes. Every key K may also be set by the
 * environment variable MAILBEACON_<K upper-cased>, which wins over the file,
 * so a run needs no file at all. Unknown keys and bad values are errors that
 * name the file, line and key. The key table is in core/config.c and
 * docs/config.md. */
#ifndef MAILBEACON_CONFIG_H
#define MAILBEACON_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define MB_NEVER_TRACK_MAX 256
#define MB_REP_MAP_MAX 1024

/* "key=address" entries, parsed: keys lower-cased, in the order written
 * (a key may come several times), pointing into buf. */
typedef struct mb_addr_map {
  size_t n;
  const char *key[MB_REP_MAP_MAX], *addr[MB_REP_MAP_MAX];
  char buf[16384];
} mb_addr_map;

typedef struct mb_config {
  char base_url[512]; /* tracking base, no trailing '/' */
  char key_file[PATH_MAX];
  char never_track[8192]; /* as written: comma-separated domains and addresses */
  char redis[256];        /* host:port or unix socket path; empty = off */
  char redis_stream[128];
  char spool_dir[PATH_MAX];
  uint64_t max_message_size;
  uint64_t max_mime_parts;   /* a message with more passes through untouched (its parse would cost too much) */
  uint64_t max_header_lines; /* the same for lines of header blocks */
  uint64_t max_html_parts;   /* the same for HTML parts to rewrite */
  /* re-injection (mailbeacon-rewrite --reinject) */
  char reinject_via[16]; /* "sendmail" or "smtp" */
  char sendmail_path[PATH_MAX];
  char reinject_smtp[256]; /* host:port of a listener without the content filter */
  int per_recipient;       /* one copy per recipient, each with its own tokens */
  int honeypot;            /* one hidden honeypot link per tracked HTML part (docs/rewriter.md) */
  /* the tracking server (mailbeacon-server) */
  char listen[256];                /* public listener host:port */
  char admin_listen[256];          /* /healthz and /metrics of the roles all and edge */
  char batcher_admin_listen[256];  /* the same for --role batcher (its own port: both roles run from one config) */
  char trusted_proxies[2048];      /* comma-separated addresses whose X-Forwarded-For is believed */
  int ip_truncate;                 /* store IPv4 /24, IPv6 /48 */
  char edge_id[64];                /* names this edge in events (default: the host name) */
  uint64_t http_threads;           /* 0: one per core */
  uint64_t max_connections;        /* public connections at most; 0: what the file descriptor limit leaves */
  uint64_t max_connections_per_ip; /* per client address (IPv6: /64), trusted proxies aside; 0: no cap */
  uint64_t
      request_header_timeout_ms; /* a request's headers must be in this long after the connection or the last answer */
  uint64_t queue_size;           /* bytes of events held in memory for the writer */
  int spool_fsync;               /* fdatasync every spool append */
  uint64_t spool_max_bytes;      /* a spool file grows no further: what does not fit is lost, and counted */
  /* the batcher (stream -> PostgreSQL) */
  char postgres[1024];         /* libpq connection string; empty = no batcher */
  uint64_t batch_size;         /* events per PostgreSQL transaction, at most (about) */
  uint64_t batch_wait_ms;      /* how long a batch waits to fill */
  char batcher_group[128];     /* Redis consumer group of the batchers */
  uint64_t reclaim_idle_ms;    /* entries pending this long with a dead consumer are taken over */
  uint64_t batch_max_attempts; /* refusals of a batch before its entries are loaded one by one, and one rejected */
  uint64_t partitions_ahead;   /* months of events partitions created ahead */
  uint64_t retention_days;     /* events partitions and messages older than this are dropped; 0 = keep */
  uint64_t ip_retention_days;  /* IPs of events older than this are truncated; 0 = never */
  char rules_file[PATH_MAX];   /* the classifier's rules (docs/classifier.md); "": none, reloaded on SIGHUP */
  char log_file[PATH_MAX];     /* "", "stderr", "syslog" or a file (log.h); reopened on SIGHUP */
  char log_level[16];          /* error, warning, info or debug */
  /* the rep of a message sent by an authenticated user (mb_config_rep) */
  char auth_domain[256];         /* a bare login L is the address L@auth_domain; "": none */
  char rep_map[16384];           /* as written: "login=address" entries, comma-separated */
  uint64_t alert_reopen_seconds; /* "opened again" at most once per message and recipient in this long */
  char alert_share[16384];       /* as written: "shared=rep" entries: rep reads the shared address's alerts */
  char webhooks_file[PATH_MAX];  /* where alerts are posted (server/hookfile.h); "": no webhooks */
  /* the rep API (docs/alerts.md) */
  char rep_listen[256];        /* host:port; "": no API in role all */
  char rep_tls_cert[PATH_MAX]; /* PEM certificate (chain) and key: HTTPS; both "": plain HTTP */
  char rep_tls_key[PATH_MAX];
  char api_admin_listen[256]; /* /healthz and /metrics of --role api */
  /* the tracking policy per recipient (policy.h, docs/privacy.md) */
  char consent_copy[PATH_MAX];    /* the consent copy the rewriter reads (consent.h); "": none */
  char track_default_eu[16];      /* consent not known, recipient in eu_countries: all, opens, clicks or none */
  char track_default_other[16];   /* ... in another country */
  char track_default_unknown[16]; /* ... country not known */
  char eu_countries[512];         /* country codes, comma-separated: the region track_default_eu covers */
  char disclosure[16];       /* the line with the withdrawal link: consent (when tracked by consent), always, off */
  char disclosure_text[512]; /* its text (plain text; escaped where shown) */
  char disclosure_link_text[256]; /* its link's text */
  /* never_track parsed into lower-case entries pointing into never_track_buf */
  size_t never_track_n;
  const char *never_track_list[MB_NEVER_TRACK_MAX];
  char never_track_buf[8192];
  mb_addr_map rep_map_parsed;     /* logins, lower-cased, each with its address */
  mb_addr_map alert_share_parsed; /* shared addresses, lower-cased, each with a rep who reads its alerts */
} mb_config;

/* The file to read when the command line names none: the installed one
 * (SYSCONFDIR/mailbeacon/mailbeacon.conf, /etc/mailbeacon/mailbeacon.conf
 * from the package) when it exists, else NULL (defaults and environment
 * only). `given` when it is set. Thread-safe. */
const char *mb_config_path(const char *given);

/* Fills c with defaults, then the file at path (NULL: no file), then the
 * environment. Returns 0, or -1 with a message in err. */
int mb_config_load(mb_config *c, const char *path, char *err, size_t errlen);

/* Parses config text held in memory (name is used in messages), on top of
 * whatever c holds; no environment. For tests and the fuzzer. */
int mb_config_parse(mb_config *c, const char *name, const char *text, size_t len, char *err, size_t errlen);

/* Sets c to the defaults. */
void mb_config_defaults(mb_config *c);

/* Sets one key from a string value; origin names where it came from. */
int mb_config_set(mb_config *c, const char *key, const char *value, const char *origin, char *err, size_t errlen);

/* Prints every key with its value as "key = value" lines to the buffer (for --print-config). */
struct mb_buf;
int mb_config_dump(const mb_config *c, struct mb_buf *out);

/* 1 when addr (an e-mail address, any case) matches the never_track list:
 * an entry with '@' matches the whole address, any other entry matches the
 * domain and its subdomains. */
int mb_config_never_track(const mb_config *c, const char *addr);

/* The rep of a message: always an e-mail address. login is the SASL login
 * the message was submitted with (the milter's {auth_authen}, pipe(8)'s
 * ${sasl_username}; NULL or "": none), sender the envelope sender.
 *   - a login in rep_map (any case): its address;
 *   - a login that is an address: itself;
 *   - a bare login with auth_domain set: login@auth_domain;
 *   - otherwise (no login, or a bare one nothing maps): sender.
 * Writes at most outlen bytes with the NUL into out (a longer result is
 * cut). Returns 0, or 1 when a login was given that could not be made an
 * address (the caller says so: rep_map or auth_domain is missing it). */
int mb_config_rep(const mb_config *c, const char *login, const char *sender, char *out, size_t outlen);

/* The addresses whose alerts rep (any case) reads besides its own: the
 * shared addresses alert_share gives it. Up to max of them into out
 * (pointers into c). Returns how many there are. */
size_t mb_config_shared_with(const mb_config *c, const char *rep, const char **out, size_t max);

#endif

/* The schema migrations (sql/NNN_name.sql), compiled into the binary by
 * cmake/embed-sql.cmake so that `mailbeacon-server migrate` needs no files. */
#ifndef MAILBEACON_MIGRATIONS_H
#define MAILBEACON_MIGRATIONS_H

#include <stddef.h>

typedef struct mb_migration {
  unsigned version; /* NNN */
  const char *name; /* NNN_name.sql */
  const char *sql;
  size_t len;
} mb_migration;

extern const mb_migration mb_migrations[]; /* in version order */
extern const unsigned mb_nmigrations;

#endif

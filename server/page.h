/* The rep page's files (server/page/), compiled in by
 * cmake/embed-page.cmake: read-only, any thread. */
#ifndef MAILBEACON_PAGE_H
#define MAILBEACON_PAGE_H

#include <stddef.h>

typedef struct mb_page_file {
  const char *path; /* "/index.html" */
  const char *type; /* its Content-Type */
  const unsigned char *data;
  size_t len;
} mb_page_file;

extern const mb_page_file mb_page_files[];
extern const unsigned mb_npage_files;

/* The file at path, or NULL. */
const mb_page_file *mb_page_find(const char *path);

#endif

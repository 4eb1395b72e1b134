/* Small byte codecs shared by both programs: base64url, percent-encoding,
 * hex, JSON string escaping and a growable byte buffer.
 * None of these allocate except mb_buf; all are thread-safe. */
#ifndef MAILBEACON_CODEC_H
#define MAILBEACON_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Length of the unpadded base64url text for n bytes. */
#define MB_B64URL_LEN(n) (((n)*4 + 2) / 3)

/* Writes the unpadded base64url text of src into dst (MB_B64URL_LEN(n) bytes, no NUL). */
void mb_b64url_encode(char *dst, const uint8_t *src, size_t n);

/* Decodes unpadded base64url text of exactly len characters into dst (capacity
 * cap). Returns the number of bytes written, or -1 on a bad character, a bad
 * length, non-zero trailing bits or too small a dst. */
int mb_b64url_decode(uint8_t *dst, size_t cap, const char *src, size_t len);

/* Percent-encodes src for use as a query parameter value: every byte except
 * A-Z a-z 0-9 - . _ ~ : / becomes %XX. Returns the length written (at most
 * 3*n), dst must hold 3*n bytes. */
size_t mb_pct_encode(char *dst, const char *src, size_t n);

/* The length mb_pct_encode would write for src. */
size_t mb_pct_encoded_len(const char *src, size_t n);

/* Decodes %XX escapes of src into dst (capacity >= n). '+' is kept literally.
 * Returns the decoded length or -1 on a malformed escape. */
int mb_pct_decode(char *dst, const char *src, size_t n);

/* Hex: mb_hex_decode returns bytes written or -1. */
void mb_hex_encode(char *dst, const uint8_t *src, size_t n);
int mb_hex_decode(uint8_t *dst, size_t cap, const char *src, size_t len);

/* Writes v in decimal at d (at most 20 bytes, no NUL); returns the end. */
char *mb_put_dec(char *d, uint64_t v);

/* Makes room for at least need elements of elem_size bytes in an array:
 * items is the address of the array's pointer (a T **), *cap its capacity
 * in elements; doubles from initial. May reallocate the array. Returns 0, or -1 when memory runs out or the size
 * overflows (the array is then unchanged). Use: mb_grow(&v, &cap, n + 1,
 * sizeof *v, 64) before v[n++] = x. */
int mb_grow(void *items, size_t *cap, size_t need, size_t elem_size, size_t initial);

/* A growable byte buffer. Functions that may reallocate say so: all the
 * append functions do. They return 0, or -1 when memory runs out (the
 * buffer is then unchanged). */
typedef struct mb_buf {
  char *data;
  size_t len;
  size_t cap;
} mb_buf;

void mb_buf_init(mb_buf *b);
void mb_buf_free(mb_buf *b);
int mb_buf_reserve(mb_buf *b, size_t extra);
/* Room for extra more bytes, the size asked and no more (mb_buf_reserve
 * doubles): for a size known beforehand. Returns 0, or -1 (out of memory). */
int mb_buf_reserve_exact(mb_buf *b, size_t extra);
int mb_buf_append(mb_buf *b, const void *p, size_t n);
int mb_buf_puts(mb_buf *b, const char *s);
int mb_buf_printf(mb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal with its quotes. Bytes that are not
 * valid UTF-8 are written as \u00XX of their Latin-1 value. */
int mb_buf_json_str(mb_buf *b, const char *s, size_t n);
/* Appends s[0..n) as HTML text or a quoted attribute value: & < > " ' escaped. 0 or -1. */
int mb_buf_html(mb_buf *b, const char *s, size_t n);
/* Appends the whole file at path, at most max bytes of it. 0, or -1 with
 * errno set (ENOENT and the like from opening it, EFBIG over max, ENOMEM);
 * what was appended stays (the caller frees b). */
int mb_buf_read_file(mb_buf *b, const char *path, size_t max);

#endif

/* HTML character references as the WHATWG tokenizer decodes them inside an
 * attribute value ("character reference state" with the attribute rules:
 * a legacy named reference without ';' followed by '=' or an alphanumeric
 * stays literal, so "&copy=2" is kept while "&copy;" and a final "&gt" are
 * decoded). Thread-safe, no allocation. */
#ifndef MAILBEACON_CHARREF_H
#define MAILBEACON_CHARREF_H

#include <stddef.h>

/* Decodes the references of an attribute value of n bytes into out, which
 * must hold 2*n + 4 bytes. Returns the decoded length. */
size_t mb_charref_decode_attr(const char *in, size_t n, char *out);

#endif

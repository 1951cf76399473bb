/* utf8.h: UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing past U+10FFFF. Checked where text goes to a
 * parser or a database that insists on it (jsondoc.c, store_pg.c). */
#ifndef TLSRPTD_UTF8_H
#define TLSRPTD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length (1 to 4) of the valid sequence at p, of which at most avail
 * bytes may be read; 0 when it is not one or is cut short. Reads no further
 * than the first byte that breaks the sequence, so a NUL-terminated string
 * may be given with avail SIZE_MAX. */
size_t utf8_sequence(const unsigned char *p, size_t avail);
/* Whether the NUL-terminated s is valid UTF-8. */
bool utf8_valid(const char *s);
/* s with each byte that starts no valid sequence replaced by '?'
 * (malloc'd; NULL when out of memory). */
char *utf8_repair(const char *s);

#endif

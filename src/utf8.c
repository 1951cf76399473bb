/* utf8.c: checking and repairing UTF-8 (utf8.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/utf8.h"

size_t utf8_sequence(const unsigned char *p, size_t avail)
{
    if (avail == 0)
        return 0;
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong form */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogate */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* no overlong form */
        else if (c == 0xf4)
            hi = 0x8f; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_sequence(p, SIZE_MAX);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

char *utf8_repair(const char *s)
{
    char *out = strdup(s);
    if (out == NULL)
        return NULL;
    unsigned char *p = (unsigned char *)out;
    while (*p) {
        size_t n = utf8_sequence(p, SIZE_MAX);
        if (n)
            p += n;
        else
            *p++ = '?';
    }
    return out;
}

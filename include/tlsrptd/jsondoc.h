/* jsondoc.h: a read-only JSON document, parsed in one pass into one arena.
 *
 * The report validator reads each document once, in order, and never changes
 * it; a general tree of reference-counted values (jansson's) costs it a
 * malloc per value and per key and a hash table per object. A jsondoc holds
 * every value, member array and unescaped string in a few large blocks that
 * are freed at once.
 *
 * It takes the JSON that jansson takes with JSON_DECODE_ANY |
 * JSON_REJECT_DUPLICATES: RFC 8259 text with any value at the top, strings of
 * valid UTF-8 without U+0000, integers that fit a long long, finite reals, no
 * key twice in one object, at most 2048 values deep. One difference, on
 * purpose: jansson loses a NUL byte that follows a number or a literal
 * ("[1\0]" is [1] to it), which is not JSON, and jsondoc refuses it. What
 * jsondoc refuses, report.c hands to jansson for its description of the fault.
 * jsondoc_from_jansson() builds a document from a jansson tree, so that tests
 * and the fuzz target can hold the two parsers to the same values. */
#ifndef TLSRPTD_JSONDOC_H
#define TLSRPTD_JSONDOC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/err.h"

enum jd_type { JD_NULL, JD_TRUE, JD_FALSE, JD_INTEGER, JD_REAL, JD_STRING, JD_ARRAY, JD_OBJECT };

struct jd_member;

struct jd_value {
    enum jd_type type;
    size_t len; /* STRING: bytes (no NUL among them); ARRAY: elements; OBJECT: members */
    union {
        const char *str; /* NUL-terminated UTF-8 */
        long long integer;
        double real;
        const struct jd_value *items;
        const struct jd_member *members; /* in document order */
    } u;
};

struct jd_member {
    const char *key; /* NUL-terminated UTF-8 */
    size_t keylen;
    struct jd_value value;
};

struct jsondoc;

/* Parse text[0..len) (a leading byte order mark is not skipped). TR_OK with
 * *out set (free it with jsondoc_free); TR_EPARSE when the text is not JSON as
 * described above, with *where (unless NULL) the offset of the byte where it
 * stops being JSON; TR_ENOMEM. */
tr_err jsondoc_parse(const char *text, size_t len, struct jsondoc **out, size_t *where);
/* The same document from a jansson tree. TR_OK or TR_ENOMEM. */
tr_err jsondoc_from_jansson(const json_t *root, struct jsondoc **out);
const struct jd_value *jsondoc_root(const struct jsondoc *doc);
void jsondoc_free(struct jsondoc *doc);

/* The member key of obj; NULL when there is none or obj is not an object. */
const struct jd_value *jd_get(const struct jd_value *obj, const char *key);

/* The value of c as a hex digit of a \u escape; -1 when it is not one. */
int jd_hex_digit(unsigned char c);

/* Whether a and b hold the same values, members in the same order. */
bool jd_equal(const struct jd_value *a, const struct jd_value *b);

static inline bool jd_is(const struct jd_value *v, enum jd_type type)
{
    return v != NULL && v->type == type;
}

#endif

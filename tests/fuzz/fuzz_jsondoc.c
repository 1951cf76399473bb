/* fuzz_jsondoc.c: libFuzzer target that holds jsondoc_parse() (jsondoc.c) to
 * jansson, the parser it stands in for. On any input both must agree on
 * whether it is JSON (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES), and where
 * both take it, the two documents must hold the same values in the same
 * order; otherwise the target aborts. One disagreement is allowed, on
 * purpose (jsondoc.h): a NUL byte right after a number or a literal, which
 * jansson's lexer loses ("[1\0]" is [1] to it) and jsondoc refuses. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tlsrptd/jsondoc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jsondoc *doc = NULL, *ref = NULL;
    tr_err rc = jsondoc_parse((const char *)data, size, &doc, NULL);
    if (rc == TR_ENOMEM)
        return 0;
    json_error_t jerr;
    json_t *j =
        json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    bool jansson_quirk = rc == TR_EPARSE && j != NULL && memchr(data, 0, size) != NULL;
    if ((rc == TR_OK) != (j != NULL) && !jansson_quirk)
        abort(); /* one parser takes what the other refuses */
    if (rc == TR_OK && j != NULL) {
        if (jsondoc_from_jansson(j, &ref) == TR_OK &&
            !jd_equal(jsondoc_root(doc), jsondoc_root(ref)))
            abort(); /* both take it and read different values */
        jsondoc_free(ref);
    }
    json_decref(j);
    jsondoc_free(doc);
    return 0;
}

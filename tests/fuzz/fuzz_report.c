/* fuzz_report.c: libFuzzer target for report_parse() (report.c), the RFC 8460
 * JSON validator. Inputs of odd length are parsed with a fallback domain (the
 * TLS-Report-Domain of a mail message), even ones without, so both branches of
 * the policy-domain rule are reached from the same corpus. Every borrowed
 * string of an accepted report is read back, so a dangling pointer into the
 * parsed document shows up under AddressSanitizer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <jansson.h>
#include "tlsrptd/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink; /* keeps the reads below from being optimised away */

static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

static size_t touch_report(const struct report *r)
{
    size_t n = touch(r->organization_name) + touch(r->report_id) + touch(r->contact_info) +
               touch(r->start_text) + touch(r->end_text);
    char when[32];
    report_format_time(r->start_time, when, sizeof when);
    report_format_time(r->end_time, when, sizeof when);
    for (size_t i = 0; i < r->npolicies; i++) {
        const struct report_policy *p = &r->policies[i];
        n += touch(p->policy_type) + touch(p->policy_domain);
        n += json_array_size(p->policy_strings) + json_array_size(p->mx_hosts);
        for (size_t k = 0; k < json_array_size(p->policy_strings); k++)
            n += touch(json_string_value(json_array_get(p->policy_strings, k)));
        for (size_t k = 0; k < json_array_size(p->mx_hosts); k++)
            n += touch(json_string_value(json_array_get(p->mx_hosts, k)));
        for (size_t k = 0; k < p->nfailures; k++) {
            const struct report_failure *f = &p->failures[k];
            n += touch(f->result_type) + touch(f->sending_mta_ip) +
                 touch(f->receiving_mx_hostname) + touch(f->receiving_mx_helo) +
                 touch(f->receiving_ip) + touch(f->additional_information) +
                 touch(f->failure_reason_code);
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct report_options opt = {0, (size & 1) ? "Fallback.Example." : NULL, NULL};
    struct report r;
    struct diag_list diags = {0};
    char first[TR_ERRLEN];

    tr_err e = report_parse(data, size, &opt, &r, &diags);
    if (e == TR_OK)
        sink = touch_report(&r);
    diag_first_error(&diags, first, sizeof first);
    sink = strlen(first);
    json_t *j = diag_list_json(&diags);
    json_decref(j);
    report_free(&r);
    diag_list_free(&diags);
    return 0;
}

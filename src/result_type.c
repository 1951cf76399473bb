/* result_type.c: the RFC 8460 §4.3 result types, their meaning and fix (see
 * result_type.h). The RFC's registry may grow: unknown types are stored and
 * shown as they come, just without a hint. */
#include <string.h>
#include "tlsrptd/result_type.h"

static const struct result_type types[] = {
    {"starttls-not-supported", "the MX did not offer STARTTLS", "enable STARTTLS on it"},
    {"certificate-host-mismatch", "the MX certificate does not name the MX host",
     "add the name to the certificate"},
    {"certificate-expired", "the MX presented an expired certificate", "renew it"},
    {"certificate-not-trusted", "the MX certificate chain does not lead to a trusted root",
     "serve the full chain of a public CA"},
    {"validation-failure", "the certificate or policy could not be validated",
     "check the chain and MX names"},
    {"tlsa-invalid", "the DANE TLSA record does not match the certificate", "fix the TLSA record"},
    {"dnssec-invalid", "DNSSEC validation failed for the TLSA lookup", "fix the zone's signatures"},
    {"dane-required", "the sender requires DANE and found no usable TLSA record", "publish one"},
    {"sts-policy-fetch-error", "the MTA-STS policy could not be fetched",
     "check https://mta-sts.<domain>/.well-known/mta-sts.txt"},
    {"sts-policy-invalid", "the MTA-STS policy file is malformed", "fix its syntax"},
    {"sts-webpki-invalid", "the mta-sts.<domain> web server's certificate is not valid",
     "renew or fix it"},
};

const struct result_type *result_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

const struct result_type *result_types(size_t *n)
{
    *n = sizeof types / sizeof *types;
    return types;
}

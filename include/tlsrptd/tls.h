/* tls.h: the certificate chain and private key of the HTTPS listeners, read
 * and checked with GnuTLS before libmicrohttpd is given them: at start and on
 * every SIGHUP, so a bad renewal is refused while the old material keeps
 * serving. Knows nothing of sockets or HTTP; only tls.c includes GnuTLS. */
#ifndef TLSRPTD_TLS_H
#define TLSRPTD_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"

#define TLS_MAX_PEM ((size_t)1 << 20) /* a certificate chain or key file, at most */

/* PEM text (NUL-terminated) of a checked pair. */
struct tls_material {
    struct buf cert, key;
    int64_t not_after; /* the first certificate's expiry, Unix seconds */
};

/* Read cert_path and key_path (plain paths: resolve credential:NAME first,
 * config_resolve_file), parse the chain and the key, and check that the key
 * belongs to the first certificate. On failure out is empty and err names
 * the key (tls_cert or tls_key), the file, what is wrong and what to do;
 * TR_ECONFIG. The caller frees out with tls_material_free. */
tr_err tls_load(const char *cert_path, const char *key_path, struct tls_material *out, char *err);
void tls_material_free(struct tls_material *m);

/* Check a GnuTLS priority string (tls_priorities); TR_ECONFIG naming where it fails. */
tr_err tls_check_priorities(const char *priorities, char *err);

#endif

/* tls.c: read and check the HTTPS certificate chain and key with GnuTLS
 * (tls.h). A pair is accepted only when both parse and the key matches the
 * first certificate, which is what libmicrohttpd would otherwise find out
 * while it takes over a listening socket. Opens no sockets. */
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>
#include "tlsrptd/tls.h"

void tls_material_free(struct tls_material *m)
{
    buf_free(&m->cert);
    buf_free(&m->key);
    m->not_after = 0;
}

static tr_err read_pem(const char *key, const char *path, struct buf *b, char *err)
{
    char detail[TR_ERRLEN];
    buf_init(b, TLS_MAX_PEM);
    if (buf_read_file(b, path, detail) == TR_OK)
        return TR_OK;
    /* detail is "PATH: reason" */
    return tr_fail(err, TR_ECONFIG, "%s %s: make the file readable by the service (%s)", key, path,
                   detail);
}

/* The chain's first certificate must parse; its expiry goes to *not_after. */
static tr_err check_chain(const char *path, const struct buf *b, int64_t *not_after, char *err)
{
    gnutls_datum_t data = {b->data, (unsigned)b->len};
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int r = gnutls_x509_crt_list_import2(&crts, &n, &data, GNUTLS_X509_FMT_PEM, 0);
    if (r < 0 || n == 0)
        return tr_fail(err, TR_ECONFIG,
                       "tls_cert %s: no PEM certificate in it (%s): give the certificate chain "
                       "(fullchain.pem)",
                       path, r < 0 ? gnutls_strerror(r) : "empty");
    *not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crts[0]);
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    return TR_OK;
}

static tr_err check_key(const char *path, const struct buf *b, char *err)
{
    gnutls_x509_privkey_t pk = NULL;
    gnutls_datum_t data = {b->data, (unsigned)b->len};
    int r = gnutls_x509_privkey_init(&pk);
    if (r == 0)
        r = gnutls_x509_privkey_import2(pk, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(pk);
    if (r < 0)
        return tr_fail(err, TR_ECONFIG,
                       "tls_key %s: not an unencrypted PEM private key (%s): give the key "
                       "(privkey.pem)",
                       path, gnutls_strerror(r));
    return TR_OK;
}

tr_err tls_load(const char *cert_path, const char *key_path, struct tls_material *out, char *err)
{
    memset(out, 0, sizeof *out);
    gnutls_certificate_credentials_t cred = NULL;
    tr_err rc = read_pem("tls_cert", cert_path, &out->cert, err);
    if (rc == TR_OK)
        rc = read_pem("tls_key", key_path, &out->key, err);
    if (rc == TR_OK)
        rc = check_chain(cert_path, &out->cert, &out->not_after, err);
    if (rc == TR_OK)
        rc = check_key(key_path, &out->key, err);
    if (rc == TR_OK) {
        /* what libmicrohttpd does with the pair: GnuTLS checks that they match */
        gnutls_datum_t c = {out->cert.data, (unsigned)out->cert.len};
        gnutls_datum_t k = {out->key.data, (unsigned)out->key.len};
        int r = gnutls_certificate_allocate_credentials(&cred);
        if (r == 0)
            r = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
            rc = tr_fail(err, TR_ECONFIG,
                         "tls_key %s does not match the certificate in tls_cert %s: give the key "
                         "the certificate was issued for",
                         key_path, cert_path);
        else if (r < 0)
            rc = tr_fail(err, TR_ECONFIG, "tls_cert %s with tls_key %s: %s", cert_path, key_path,
                         gnutls_strerror(r));
    }
    if (cred)
        gnutls_certificate_free_credentials(cred);
    if (rc != TR_OK)
        tls_material_free(out);
    return rc;
}

tr_err tls_check_priorities(const char *priorities, char *err)
{
    gnutls_priority_t p = NULL;
    const char *where = NULL;
    int r = gnutls_priority_init(&p, priorities, &where);
    if (r < 0)
        return tr_fail(err, TR_ECONFIG,
                       "tls_priorities = %s: not a GnuTLS priority string (at '%.40s'): fix it or "
                       "remove the line for the default",
                       priorities, where ? where : "");
    gnutls_priority_deinit(p);
    return TR_OK;
}

/* imap.h: mailed reports from IMAP mailboxes (DESIGN §14), used by
 * `tlsrptd imap URL...` and by `tlsrptd serve --imap URL`.
 *
 * A pass over one mailbox (imaps://user@host[:port]/FOLDER, or imap:// with
 * STARTTLS) logs in (a password from a file, or an OAuth2 bearer token read
 * from its file at every pass), searches the folder's unseen messages, fetches
 * each one whole without marking it seen (BODY.PEEK[], at most max_message
 * bytes), prepares it (ingest_prepare, source kind "imap") and hands it to
 * the database writer (writer.h). Only after the writer has committed a round
 * are its messages moved: a stored or duplicate report to the done folder
 * (UID MOVE, or UID COPY + \Deleted + UID EXPUNGE where the server lacks
 * MOVE), where it is then marked \Seen; a message with no acceptable report
 * to the quarantine folder (left unseen there, for a person to look at).
 * Both folders are created (and subscribed) when missing. When storage is
 * unavailable the messages stay unseen in the folder and are retried.
 *
 * Crash safety (the rules of DESIGN §5): nothing on the server changes before
 * the commit, and a message leaves the folder only by the move, so a crash at
 * any point leaves every message either in the folder, unseen (read again
 * next time; its report is then a duplicate) or in the done folder with its
 * report committed. A crash between the move and the \Seen flag leaves it
 * unseen in the done folder, which loses nothing.
 *
 * libcurl (only this file uses it) resolves, connects, does TLS (certificates
 * always verified; STARTTLS required for imap:// unless insecure) and logs in
 * (SASL PLAIN/LOGIN, or XOAUTH2/OAUTHBEARER with the bearer token); the few
 * IMAP commands after the login are tlsrptd's own, over the connection
 * libcurl set up (curl_easy_send/recv), because libcurl's URL interface
 * fetches with BODY[] (which marks a message seen before its commit) and has
 * no MOVE. */
#ifndef TLSRPTD_IMAP_H
#define TLSRPTD_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/writer.h"

#define IMAP_DEFAULT_DONE_FOLDER       "TLSRPT/Processed"
#define IMAP_DEFAULT_QUARANTINE_FOLDER "TLSRPT/Quarantine"

struct imap_options {
    const char *done_folder;       /* NULL: IMAP_DEFAULT_DONE_FOLDER; '/' separates levels */
    const char *quarantine_folder; /* NULL: IMAP_DEFAULT_QUARANTINE_FOLDER */
    const char *password_file;     /* first line is the password */
    const char *oauth2_token_file; /* first line is the bearer token; read at every pass */
    const char *ca_file;           /* PEM CAs trusted besides the system's */
    bool insecure;                 /* imap:// without TLS allowed */
    unsigned poll_seconds;         /* watcher: poll this often (0: 300) */
    unsigned timeout_seconds;      /* connect, and wait for any answer (0: 60) */
    struct ingest_limits lim;      /* lim.max_input bounds a message (max_message) */
};

/* What went wrong with a mailbox, worst last (a pass reports the worst). */
enum imap_failure {
    IMAP_OK,
    IMAP_EUNAVAILABLE, /* unreachable, connection lost, timeout, server said NO: retry */
    IMAP_ELOGIN,       /* the server refused the credentials */
    IMAP_ECONFIG       /* bad URL, credentials unreadable, certificate not trusted: fix it */
};

struct imap_stats {
    size_t messages;    /* fetched (or found too large) */
    size_t stored;      /* moved to the done folder, a report stored */
    size_t duplicates;  /* moved to the done folder, every report already stored */
    size_t quarantined; /* moved to the quarantine folder */
    size_t deferred;    /* left unseen in the folder: storage unavailable or not movable */
};

/* Check a mailbox URL and the options without connecting (scheme, user, no
 * password in the URL, no URL options, a credentials file given and
 * readable). TR_EUSAGE with err set when something is wrong. */
tr_err imap_check(const char *url, const struct imap_options *opt, char *err);

/* One pass over every mailbox: process what is unseen now, then return. The
 * counts are added to *stats. Returns the worst failure of any mailbox (err
 * describes the first one); IMAP_OK also when messages were deferred. */
enum imap_failure imap_run_once(char *const *urls, size_t n, struct writer *w,
                                const struct imap_options *opt, struct imap_stats *stats,
                                char *err);

struct imap_watch;

/* Poll the mailboxes on a thread of its own: a pass over each at once, then
 * every poll_seconds; after a failure, again after a backoff (2 s doubling, at
 * most max(poll_seconds, 60)); while storage is unavailable, after 1 s
 * doubling to 60 s. NULL with err set when a URL is unusable. */
struct imap_watch *imap_watch_start(char *const *urls, size_t n, struct writer *w,
                                    const struct imap_options *opt, char *err);
/* Finish the round in progress (its messages are committed and moved), then
 * stop. *stats (may be NULL) gets the totals. NULL is a no-op. */
void imap_watch_stop(struct imap_watch *iw, struct imap_stats *stats);

/* Append the IMAP metrics in the Prometheus text format, one series per
 * mailbox polled by this process (nothing when there is none):
 * tlsrptd_imap_errors_total and tlsrptd_imap_last_success_timestamp_seconds.
 * Fails only when out is full. */
tr_err imap_metrics(struct buf *out);

#endif

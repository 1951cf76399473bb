/* main.c: the tlsrptd binary: subcommand dispatch and shared option helpers.
 * Each subcommand lives in its own cli_*.c file. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/config.h"
#include "tlsrptd/log.h"

bool cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tlsrptd %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'tlsrptd %s --help'.\n", cmd);
    return EXIT_USAGE;
}

void cli_print_mail_tally(const char *cmd, size_t messages, size_t stored, size_t duplicates,
                          size_t quarantined, size_t deferred, const char *where)
{
    printf("%s: %zu message%s: %zu stored, %zu duplicate%s, %zu quarantined, %zu left %s\n", cmd,
           messages, messages == 1 ? "" : "s", stored, duplicates, duplicates == 1 ? "" : "s",
           quarantined, deferred, where);
}

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", cmd_serve, "the daemon: the https rua endpoint"},
    {"ingest", cmd_ingest, "store reports from files, directories or stdin (also an MDA)"},
    {"validate", cmd_validate, "check reports against RFC 8460 without storing them"},
    {"maildir", cmd_maildir, "store the reports mailed into Maildirs (once, or --watch)"},
    {"imap", cmd_imap, "store the reports mailed into IMAP mailboxes (once, or --watch)"},
    {"summary", cmd_summary, "print failure summaries from the database"},
    {"show", cmd_show, "print one stored report: its JSON, source and warnings"},
    {"record", cmd_record, "generate, parse or check the _smtp._tls TXT record"},
    {"quarantine", cmd_quarantine, "list, show, export or re-ingest rejected inputs"},
    {"migrate", cmd_migrate, "copy a whole database into another (SQLite to PostgreSQL)"},
    {"prune", cmd_prune, "remove what is older than the retention settings"},
    {"forget", cmd_forget, "delete everything stored about a domain"},
    {"alerts", cmd_alerts, "alert history; run the rules once (--evaluate); test channels"},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: tlsrptd COMMAND [OPTIONS] [ARGS]\n\n"
                 "Collects SMTP TLS Reporting (RFC 8460) reports and summarises them.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nEvery command reads -c FILE, or else " TLSRPTD_CONFIG_FILE " when it exists;\n"
                 "every key of that file is also a flag (see tlsrptd.conf(5)).\n"
                 "'tlsrptd COMMAND --help' describes a command's options.\n"
                 "'tlsrptd --version' prints the version.\n");
}

/* fds 0, 1 and 2 open, on /dev/null when they were closed: otherwise the next
 * socket or file opened would get one, and a log line (fd 2) or a printf
 * (fd 1) would go to a client or into a database. */
static void std_fds_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int nul = open("/dev/null", O_RDWR); /* the lowest free fd: this one */
        if (nul >= 0 && nul != fd)
            close(nul); /* cannot happen: the lower fds are open */
    }
}

int main(int argc, char **argv)
{
    std_fds_open();
    /* Keep freed memory instead of handing it back to the kernel after every
     * report (and faulting it in again for the next): thousands of reports a
     * second allocate and free the same few hundred KiB. No more than 8 MiB:
     * a thread's malloc heap gives back the free memory at its top only past
     * this threshold (malloc_trim(), which prepool.c calls after a spike,
     * releases only the free memory below the top), so after a spike of
     * reports of several MiB each a larger threshold would keep it all. */
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    /* Setting the trim threshold also fixes glibc's mmap threshold at its
     * 128 KiB default, so every 128 KiB read or inflate buffer would be an
     * mmap and munmap of its own; serve them from the heap up to 4 MiB. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    tr_log_setup(TR_LOG_STDERR, LOG_INFO, "tlsrptd");
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("tlsrptd %s\n", TLSRPTD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tlsrptd: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

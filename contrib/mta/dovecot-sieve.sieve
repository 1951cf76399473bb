# Sieve script (RFC 5228, run by Dovecot's Pigeonhole plugin; Debian package
# dovecot-sieve) for the mailbox that receives TLS-RPT reports. Used by
# contrib/mta/dovecot-lda.conf, installed as /etc/dovecot/sieve/tlsrpt.sieve.
#
# Reports are filed into the folder TLSRPT, which on disk is the Maildir
# /var/lib/tlsrptd/Maildir/.TLSRPT that tlsrptd watches:
#
#     tlsrptd serve --maildir /var/lib/tlsrptd/Maildir/.TLSRPT ...
#
# Everything else stays in INBOX (/var/lib/tlsrptd/Maildir/new), out of
# tlsrptd's way, for a person to read or delete. tlsrptd would quarantine such
# mail anyway; filtering here just keeps spam out of its quarantine.
#
# Why fileinto and not vnd.dovecot.pipe: with a pipe, tlsrptd would run inside
# the delivery, and when it fails (exit 75: database busy or unwritable) the
# Sieve action fails and Dovecot keeps the message in INBOX instead. Nothing is
# lost, but nothing retries it either. A message filed into the watched Maildir
# stays in new/ until tlsrptd has committed it, and tlsrptd retries by itself.
#
# After editing, compile it as root (dovecot-lda runs as tlsrptd and cannot
# write the compiled file next to the script):
#     sievec -c /etc/dovecot/tlsrpt-lda.conf /etc/dovecot/sieve/tlsrpt.sieve

require ["fileinto", "mailbox"];

# RFC 8460 section 5.3: a report mail carries a TLS-Report-Domain header and is
# a multipart/report with report-type "tlsrpt" (senders write it quoted or
# not). Header tests ignore letter case and see folded headers as one line.
if anyof (exists "TLS-Report-Domain",
          allof (header :contains "Content-Type" "multipart/report",
                 header :contains "Content-Type" "tlsrpt")) {
    # :create makes the folder (tmp/, new/, cur/) on the first report.
    fileinto :create "TLSRPT";
    stop;
}

keep;

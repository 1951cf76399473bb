#!/usr/bin/env python3
"""A real MTA end to end: OpenSMTPD on 127.0.0.1 delivers mailed reports into a
Maildir that `tlsrptd serve --maildir` watches; swaks sends every corpus .eml;
the reports must be in the database within seconds.

  real OpenSMTPD (mta.py: private mount namespace, a `virtual` table so any local
  part at reports.example is accepted, delivery into the Maildir)
  real swaks (each corpus .eml sent unchanged over SMTP)
  real tlsrptd serve --maildir (inotify): stored reports in cur/ (seen), the
  non-report in .Quarantine, totals equal to EXPECTED.tsv for those files

Needs root and the Debian packages opensmtpd and swaks (scripts/deps.sh test
installs them); a missing one is a failure, not a skip.

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_mta.py
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mta  # noqa: E402
import tlsrptd_test as T  # noqa: E402
from test_maildir import Background, files  # noqa: E402

SLOW = T.SLOW


class RealMTA(T.TlsrptdTestCase):
    def test_opensmtpd_swaks_serve_maildir(self):
        ok, why = mta.available()
        self.assertTrue(ok, "OpenSMTPD and swaks are needed: %s" % why)
        corpus = T.corpus_dir()
        rows = {r["file"]: r for r in T.load_expected()}
        emls = sorted(f for f in rows if f.endswith(".eml"))
        self.assertGreater(len(emls), 5)

        md = self.path("Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub))
        with mta.OpenSMTPD(md, self.tmp) as smtpd:
            port = T.free_port()
            bg = Background(self, ["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                                   "--maildir", md], "serve")
            self.assertTrue(bg.wait_log("serving", 15 * SLOW), bg.log())
            t0 = time.monotonic()
            for f in emls:
                mta.send_with_swaks(smtpd.port, os.path.join(corpus, f),
                                    to="tlsrpt+%d@reports.example" % emls.index(f))

            accepted = [f for f in emls if rows[f]["accepted"] == "yes"]
            rejected = [f for f in emls if rows[f]["accepted"] == "no"]
            distinct = {(rows[f]["org"], rows[f]["report_id"]) for f in accepted}

            def settled():
                return (len(files(md, "cur")) == len(accepted) and
                        len(files(md, ".Quarantine/new")) == len(rejected) and
                        not files(md, "new"))
            deadline = time.monotonic() + 30 * SLOW
            while not settled() and time.monotonic() < deadline:
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
            self.assertTrue(settled(), "after %.1f s: new=%r cur=%d quarantine=%r\n%s\n%s" % (
                elapsed, files(md, "new"), len(files(md, "cur")),
                files(md, ".Quarantine/new"), bg.log()[-3000:], smtpd.describe()))
            rc, _ = bg.stop()
            self.assertEqual(rc, 0, bg.log()[-3000:])
            self.assertNotRegex(bg.log(), T._SANITIZER_RE)

        self.assertTrue(all(n.endswith(":2,S") for n in files(md, "cur")))
        # what OpenSMTPD delivered is what was stored: every distinct report once
        listed = T.stored_reports(self.db)
        self.assertEqual(len(listed), len(distinct))
        stored = {(r["organization_name"], r["report_id"]) for r in listed}
        self.assertEqual(stored, distinct)
        self.assertEqual({r["source"]["kind"] for r in listed}, {"maildir"})
        names = {r["source"]["name"] for r in listed}
        self.assertTrue(names <= {n[:-len(":2,S")] for n in files(md, "cur")}, names)
        ok = sum(int(rows[f]["success"]) for f in {(rows[f]["org"], rows[f]["report_id"]): f
                                                   for f in accepted}.values())
        self.assertEqual(self.summary_json()["totals"]["successful_sessions"], ok)
        self.assertEqual(len(T.quarantine(self.db)), len(rejected))
        print("\n%d mails through OpenSMTPD into the database in %.1f s" % (len(emls), elapsed),
              file=sys.stderr)


if __name__ == "__main__":
    T.main()

#!/usr/bin/env python3
"""Issue 17 through the real binary: the acceptance rules for peers' edge cases,
`validate --strict` on mail that breaks RFC 8460 §5.1/§5.3 or §4.4, and the
overlapping tlsa + sts policies of docs/acceptance.md.

Every mail and report here is written by the test itself (the shared corpus is
not touched). Outcomes are asserted on exit codes, the printed findings (each
--strict finding names its RFC section), what ingest stores and what summary
counts.

  StrictMailFormat   one conforming mail, then one defect per case: plain validate
                     and ingest still accept it; validate --strict names the section
  StrictFieldFormats §4.4 IP addresses and additional-information as a URI
  AcceptanceRules    failure-details not an array, blank names, dates without a
                     time, 2.0, "mx-host": "", a TLS-Report-Domain of another domain
  OverlappingPolicies the worked example of docs/acceptance.md, output for output
"""
import base64
import gzip
import json
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

START, END = 1793664000, 1793750399  # 2026-11-03T00:00:00Z, 2026-11-03T23:59:59Z
GOOD_NAME = "sender.example!mail.example!%d!%d.json.gz" % (START, END)


def report(**changes):
    """A conforming report for mail.example from sender.example (a dict)."""
    r = {
        "organization-name": "Sender Example",
        "date-range": {"start-datetime": "2026-11-03T00:00:00Z",
                       "end-datetime": "2026-11-03T23:59:59Z"},
        "contact-info": "tlsrpt@sender.example",
        "report-id": "2026-11-03T00:00:00Z_mail.example",
        "policies": [{
            "policy": {"policy-type": "sts",
                       "policy-string": ["version: STSv1", "mode: enforce",
                                         "mx: mx1.mail.example", "max_age: 604800"],
                       "policy-domain": "mail.example",
                       "mx-host": ["mx1.mail.example"]},
            "summary": {"total-successful-session-count": 90,
                        "total-failure-session-count": 10},
            "failure-details": [{
                "result-type": "certificate-expired",
                "sending-mta-ip": "198.51.100.7",
                "receiving-mx-hostname": "mx1.mail.example",
                "receiving-ip": "203.0.113.25",
                "failed-session-count": 10,
                "additional-information": "https://sender.example/tlsrpt/info?id=1"}],
        }],
    }
    r.update(changes)
    return r


def report_bytes(doc):
    return json.dumps(doc, indent=1).encode()


def mail(content_type='multipart/report; report-type="tlsrpt"; boundary="b1"',
         report_domain="mail.example", submitter="sender.example",
         part_type="application/tlsrpt+gzip", filename=GOOD_NAME, gzipped=True, doc=None):
    """A report mail as RFC 8460 §5.3 writes it; each argument can break one thing
    (None leaves a header field out; content_type "" makes the report the whole
    message)."""
    body = report_bytes(doc if doc is not None else report())
    if gzipped:
        body = gzip.compress(body, mtime=0)
    b64 = base64.encodebytes(body).decode()
    head = ["From: TLS reporting <tlsrpt@sender.example>", "To: rua@mail.example",
            "Date: Wed, 04 Nov 2026 00:10:00 +0000",
            "Subject: Report Domain: mail.example Submitter: sender.example",
            " Report-ID: <2026-11-03T00:00:00Z_mail.example@sender.example>",
            "Message-ID: <r1@sender.example>"]
    if report_domain is not None:
        head.append("TLS-Report-Domain: %s" % report_domain)
    if submitter is not None:
        head.append("TLS-Report-Submitter: %s" % submitter)
    head.append("MIME-Version: 1.0")
    part = ["Content-Type: %s" % part_type, "Content-Transfer-Encoding: base64"]
    if filename is not None:
        part.append('Content-Disposition: attachment; filename="%s"' % filename)
    if content_type == "":
        lines = head + part + ["", b64]
    else:
        lines = head + ["Content-Type: %s" % content_type, "",
                        "--b1", "Content-Type: text/plain; charset=us-ascii", "",
                        "This is an aggregate TLS report from sender.example.", "",
                        "--b1"] + part + ["", b64, "--b1--", ""]
    return "\r\n".join(lines).encode()


def findings(res, name, level):
    """The printed findings of one level: [(path, message)]."""
    out = []
    prefix = "%s: %s: " % (name, level)
    for ln in res.out.splitlines():
        if ln.startswith(prefix):
            rest = ln[len(prefix):]
            path, _, msg = rest.partition(": ")
            out.append((path, msg))
    return out


# name, mail() arguments, [(path, message regex, section)] that --strict must print
MAIL_DEFECTS = [
    ("multipart-related", dict(content_type='multipart/related; boundary="b1"'),
     [("message Content-Type", r"multipart/related, not multipart/report", "§5.3")]),
    ("multipart-mixed", dict(content_type='multipart/mixed; boundary="b1"'),
     [("message Content-Type", r"multipart/mixed, not multipart/report", "§5.3")]),
    ("no-report-type", dict(content_type='multipart/report; boundary="b1"'),
     [("message Content-Type", r"without report-type=tlsrpt", "§5.3")]),
    ("other-report-type",
     dict(content_type='multipart/report; report-type=delivery-status; boundary="b1"'),
     [("message Content-Type", r"report-type=delivery-status, not tlsrpt", "§5.3")]),
    ("not-multipart", dict(content_type=""),
     [("message Content-Type", r"application/tlsrpt\+gzip: the message is not multipart",
       "§5.3")]),
    ("part-application-json",
     dict(part_type="application/json", gzipped=False,
          filename="sender.example!mail.example!%d!%d.json" % (START, END)),
     [("report part Content-Type",
       r"application/json, not application/tlsrpt\+json or application/tlsrpt\+gzip",
       "§5.3")]),
    ("part-application-tlsrpt", dict(part_type="application/tlsrpt"),
     [("report part Content-Type", r"application/tlsrpt, not", "§5.3")]),
    ("part-octet-stream", dict(part_type="application/octet-stream"),
     [("report part Content-Type", r"application/octet-stream, not", "§5.3")]),
    ("json-in-json-gz", dict(gzipped=False),
     [("report part Content-Type", r"holds uncompressed JSON, not gzip", "§5.3"),
      ("report part filename", r"ends in \.json\.gz but the part holds uncompressed JSON",
       "§5.1")]),
    ("gzip-under-json",
     dict(part_type="application/tlsrpt+json",
          filename="sender.example!mail.example!%d!%d.json" % (START, END)),
     [("report part Content-Type", r"application/tlsrpt\+json, but the part holds gzip",
       "§5.3"),
      ("report part filename", r"ends in \.json but the part holds gzip", "§5.1")]),
    ("no-filename", dict(filename=None),
     [("report part filename", r"^none; .*sender!policy-domain!begin-timestamp", "§5.1")]),
    ("filename-convention", dict(filename="report-2026-11-03.json.gz"),
     [("report part filename", r"does not follow sender!policy-domain!begin-timestamp",
       "§5.1")]),
    ("filename-domain",
     dict(filename="sender.example!other.example!%d!%d.json.gz" % (START, END)),
     [("report part filename", r"policy domain other\.example", "§5.1")]),
    ("filename-timestamps",
     dict(filename="sender.example!mail.example!%d!%d.json.gz" % (START, END + 1)),
     [("report part filename", r"end-timestamp %d is not end-datetime" % (END + 1), "§5.1")]),
    ("filename-sender",
     dict(filename="mx.sender.example!mail.example!%d!%d.json.gz" % (START, END)),
     [("report part filename", r"sender mx\.sender\.example is not sender\.example", "§5.1")]),
    ("no-report-domain", dict(report_domain=None),
     [("message TLS-Report-Domain", r"missing", "§5.3")]),
    ("bad-report-domain", dict(report_domain="mail_example"),
     [("message TLS-Report-Domain", r"not a domain name", "§5.3"),
      ("policies[0].policy.policy-domain", r"TLS-Report-Domain header names mail_example",
       "§5.6")]),
    ("no-submitter", dict(submitter=None),
     [("message TLS-Report-Submitter", r"missing", "§5.3")]),
    ("submitter-not-contact", dict(submitter="mailer.sender.example"),
     [("message TLS-Report-Submitter",
       r"mailer\.sender\.example is not sender\.example, the domain of contact-info", "§5.3")]),
    ("report-domain-not-body", dict(report_domain="other.example"),
     [("policies[0].policy.policy-domain",
       r"TLS-Report-Domain header names other\.example.*\(--strict; a note without it\)",
       "§5.6")]),
]


class StrictMailFormat(T.TlsrptdTestCase):
    """validate --strict finds each §5.1/§5.3 defect; plain validate and ingest accept."""

    def test_conforming_mail_passes_strict(self):
        f = self.write("good.eml", mail())
        res = T.run(["validate", "--strict", f])
        self.assertExit(res, T.EX_OK)
        self.assertEqual(findings(res, f, "error"), [], res)
        self.assertRegex(res.out, r"(?m)^%s: valid \(--strict\): Sender Example " % re.escape(f))
        # and its uncompressed form, +json and .json
        f = self.write("good-json.eml", mail(
            part_type="application/tlsrpt+json", gzipped=False,
            filename="sender.example!mail.example!%d!%d!01.json" % (START, END)))
        self.assertExit(T.run(["validate", "--strict", f]), T.EX_OK)

    def test_each_defect(self):
        for name, args, expected in MAIL_DEFECTS:
            with self.subTest(defect=name):
                f = self.write(name + ".eml", mail(**args))
                # plain validate: every real sender's mail keeps being accepted
                plain = T.run(["validate", f])
                self.assertExit(plain, T.EX_OK)
                self.assertRegex(plain.out, r"(?m)^%s: valid: " % re.escape(f))
                # --strict names each defect and the RFC 8460 section it breaks
                strict = T.run(["validate", "--strict", f])
                self.assertExit(strict, T.EX_DATAERR)
                self.assertRegex(strict.out, r"(?m)^%s: invalid \(--strict\): " % re.escape(f))
                errors = findings(strict, f, "error")
                self.assertEqual(len(errors), len(expected), strict)
                for path, regex, section in expected:
                    self.assertTrue(
                        any(p == path and re.search(regex, m) and ("RFC 8460 " + section) in m
                            for p, m in errors),
                        "no error at %s matching %r naming RFC 8460 %s\n%r" %
                        (path, regex, section, strict))
                # ingest stores it and counts it
                db = self.new_db(name)
                res = self.ingest(f, db=db)
                self.assertExit(res, T.EX_OK)
                self.single_outcome(res, "stored")
                s = self.summary_json(db)
                self.assertEqual((s["totals"]["successful_sessions"],
                                  s["totals"]["failed_sessions"]), (90, 10))

    def test_strict_mail_checks_apply_to_mail_only(self):
        # a report file has no mail around it: only the JSON is checked
        f = self.write(GOOD_NAME, gzip.compress(report_bytes(report())))
        self.assertExit(T.run(["validate", "--strict", f]), T.EX_OK)
        f = self.write("report.json", report_bytes(report()))
        self.assertExit(T.run(["validate", "--strict", f]), T.EX_OK)

    def test_several_defects_at_once(self):
        # a generator that gets everything wrong hears about everything
        f = self.write("all.eml", mail(content_type='multipart/related; boundary="b1"',
                                       part_type="application/json", gzipped=False,
                                       filename="report.json.gz", report_domain=None,
                                       submitter=None))
        strict = T.run(["validate", "--strict", f])
        self.assertExit(strict, T.EX_DATAERR)
        paths = [p for p, _ in findings(strict, f, "error")]
        self.assertEqual(sorted(paths), sorted([
            "message Content-Type", "message TLS-Report-Domain", "message TLS-Report-Submitter",
            "report part Content-Type", "report part filename"]), strict)


class StrictFieldFormats(T.TlsrptdTestCase):
    """RFC 8460 §4.4 field formats: notes for ingest, errors naming §4.4 under --strict."""

    CASES = [
        ("sending-mta-ip", "198.51.100.300", r"is not an IP address"),
        ("receiving-ip", "x.x.x.x", r"is not an IP address"),
        ("sending-mta-ip", "2001:db8::1::2", r"is not an IP address"),
        ("additional-information", "https://sender.example/info ? id = 1", r"is not a URI"),
        ("additional-information", "sender.example/info", r"is not a URI"),
    ]

    def test_each_field_format(self):
        for key, value, regex in self.CASES:
            with self.subTest(field=key, value=value):
                doc = report()
                doc["policies"][0]["failure-details"][0][key] = value
                f = self.write("r.json", report_bytes(doc))
                path = "policies[0].failure-details[0].%s" % key
                plain = T.run(["validate", f])
                self.assertExit(plain, T.EX_OK)
                notes = findings(plain, f, "note")
                self.assertTrue(any(p == path and re.search(regex, m) and "RFC 8460 §4.4" in m
                                    for p, m in notes), plain)
                strict = T.run(["validate", "--strict", f])
                self.assertExit(strict, T.EX_DATAERR)
                self.assertEqual([p for p, _ in findings(strict, f, "error")], [path], strict)
                self.assertIn("RFC 8460 §4.4", strict.out)
                # the text is kept as sent
                db = self.new_db("f")
                self.assertExit(self.ingest(f, db=db), T.EX_OK)
                col = {"sending-mta-ip": "sending_mta_ip", "receiving-ip": "receiving_ip",
                       "additional-information": "additional_information"}[key]
                (rep,) = T.stored(db)
                self.assertEqual(rep["policies"][0]["failure_details"][0].get(col), value)

    def test_well_formed_fields_pass(self):
        doc = report()
        d = doc["policies"][0]["failure-details"][0]
        d["sending-mta-ip"] = "2001:db8::25"
        d["additional-information"] = "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"
        f = self.write("r.json", report_bytes(doc))
        res = T.run(["validate", "--strict", f])
        self.assertExit(res, T.EX_OK)


class AcceptanceRules(T.TlsrptdTestCase):
    """The three acceptance changes and the diagnostics of issue 17, stored and counted."""

    def ingest_doc(self, doc, name="r.json", db=None):
        f = self.write(name, report_bytes(doc) if isinstance(doc, dict) else doc)
        return f, self.ingest(f, db=db)

    def test_failure_details_not_an_array_counts_the_summary(self):
        for shape in ({"result-type": "certificate-expired", "failed-session-count": 10},
                      "certificate-expired"):
            with self.subTest(shape=shape):
                doc = report()
                doc["policies"][0]["failure-details"] = shape
                db = self.new_db("fd")
                f, res = self.ingest_doc(doc, db=db)
                self.assertExit(res, T.EX_OK)
                o = self.single_outcome(res, "stored")
                self.assertIn("90 successful, 10 failed, 1 warning", o.line)
                s = self.summary_json(db)
                dom = s["domains"][0]
                self.assertEqual((dom["policy_domain"], dom["successful_sessions"],
                                  dom["failed_sessions"]), ("mail.example", 90, 10))
                self.assertEqual(dom["failures"], {})  # the breakdown is unknown
                (rep,) = T.stored(db)
                self.assertEqual(rep["policies"][0]["failure_details"], [])
                v = T.run(["validate", f])
                self.assertExit(v, T.EX_OK)
                w = findings(v, f, "warning")
                self.assertEqual([p for p, _ in w], ["policies[0].failure-details"])
                self.assertRegex(w[0][1], r"not an array.*breakdown by result type is unknown")

    def test_blank_names_are_rejected(self):
        for key, value in (("organization-name", "   "), ("organization-name", "\u00a0\t"),
                           ("report-id", " "), ("report-id", "\u3000\u200b")):
            with self.subTest(key=key, value=value):
                doc = report(**{key: value})
                raw = report_bytes(doc)
                db = self.new_db("blank")
                f, res = self.ingest_doc(raw, db=db)
                self.assertRejectedAndQuarantined(res, raw, r"^%s: empty \(only white space\)$"
                                                  % key, db=db)
        # the other side: a name with spaces around it is a name
        f, res = self.ingest_doc(report(**{"organization-name": " Sender "}))
        self.assertExit(res, T.EX_OK)

    def test_date_without_time(self):
        doc = report(**{"date-range": {"start-datetime": "2026-11-03",
                                       "end-datetime": "2026-11-03"}})
        f, res = self.ingest_doc(doc)
        self.assertExit(res, T.EX_OK)
        self.assertIn("2 warnings", self.single_outcome(res, "stored").line)
        # counted from 2026-11-03T00:00:00Z: summary windows [since, until) on the start
        self.assertEqual(T.totals(self.db, "--since", "2026-11-03T00:00:00Z",
                                  "--until", "2026-11-03T00:00:01Z")["reports"], 1)
        self.assertEqual(T.totals(self.db, "--until", "2026-11-03T00:00:00Z")["reports"], 0)
        v = T.run(["validate", f])
        w = dict(findings(v, f, "warning"))
        self.assertRegex(w["date-range.start-datetime"],
                         r"date without a time.*taken as 2026-11-03T00:00:00Z")
        self.assertRegex(w["date-range.end-datetime"],
                         r"date without a time.*taken as 2026-11-03T23:59:59Z")
        # a report with a full date-time for the same day is the same report (the same
        # start and end, 2026-11-03T23:59:59Z: duplicates are found by both)
        f2, res = self.ingest_doc(report(), name="same.json")
        self.single_outcome(res, "duplicate")

    def test_count_with_zero_fraction(self):
        raw = report_bytes(report()).replace(b'"total-failure-session-count": 10',
                                             b'"total-failure-session-count": 10.0')
        self.assertIn(b"10.0", raw)
        f, res = self.ingest_doc(raw)
        self.assertExit(res, T.EX_OK)
        self.assertIn("90 successful, 10 failed, 1 warning", self.single_outcome(res).line)
        v = T.run(["validate", f])
        self.assertEqual(findings(v, f, "warning"),
                         [("policies[0].summary.total-failure-session-count",
                           "10.0 is written with a fraction (RFC 8460 §4.4 wants an integer); "
                           "counted as 10")])
        # the other side: a real fraction is refused
        raw = raw.replace(b"10.0", b"9.5")
        frac = self.new_db("frac")
        f, res = self.ingest_doc(raw, name="frac.json", db=frac)
        self.assertRejectedAndQuarantined(
            res, raw, r"policies\[0\]\.summary\.total-failure-session-count: not an integer",
            db=frac)

    def test_empty_mx_host_is_not_a_host(self):
        doc = report()
        doc["policies"][0]["policy"]["mx-host"] = ["", "mx1.mail.example"]
        f, res = self.ingest_doc(doc)
        self.assertExit(res, T.EX_OK)
        self.assertIn("1 warning", self.single_outcome(res, "stored").line)
        (rep,) = T.stored(self.db)
        self.assertEqual(rep["policies"][0]["mx_hosts"], ["mx1.mail.example"])
        doc["policies"][0]["policy"]["mx-host"] = ""
        doc["report-id"] = "2"
        f, res = self.ingest_doc(doc, name="r2.json")
        self.assertExit(res, T.EX_OK)
        self.assertEqual(T.show(self.db, "2")["policies"][0]["mx_hosts"], [])
        v = T.run(["validate", f])
        self.assertEqual(findings(v, f, "warning"),
                         [("policies[0].policy.mx-host", "empty; not stored as a host")])

    def test_report_domain_header_of_another_domain(self):
        f = self.write("other.eml", mail(report_domain="other.example"))
        res = self.ingest(f)
        self.assertExit(res, T.EX_OK)
        self.assertNotIn("warning", self.single_outcome(res, "stored").line)
        s = self.summary_json()
        self.assertEqual([d["policy_domain"] for d in s["domains"]], ["mail.example"])
        v = T.run(["validate", f])
        self.assertExit(v, T.EX_OK)
        self.assertEqual(findings(v, f, "note"), [(
            "policies[0].policy.policy-domain",
            "the TLS-Report-Domain header names other.example, no policy of the report does; "
            "the report body is counted (RFC 8460 §5.6)")])
        # the other side: the header's domain in another letter case
        f = self.write("same.eml", mail(report_domain="MAIL.Example."))
        v = T.run(["validate", "--strict", f])
        self.assertExit(v, T.EX_OK)


class OverlappingPolicies(T.TlsrptdTestCase):
    """docs/acceptance.md's worked example: each command it shows prints what it says."""

    def test_worked_example_in_the_docs(self):
        with open(os.path.join(T.PROJECT, "docs", "acceptance.md"), encoding="utf-8") as fh:
            doc = fh.read()
        m = re.search(r"<!-- worked example -->\n```\n(.*?)```", doc, re.S)
        self.assertIsNotNone(m, "docs/acceptance.md has no worked example block")
        shown = m.group(1)
        commands = re.findall(r"^\$ (tlsrptd .*)$", shown, re.M)
        self.assertGreaterEqual(len(commands), 3, shown)
        outputs = re.split(r"^\$ tlsrptd .*\n", shown, flags=re.M)[1:]
        os.symlink(T.samples_dir(), self.path("samples"))
        for cmd, expected in zip(commands, outputs):
            with self.subTest(command=cmd):
                res = T.run(cmd.split()[1:], cwd=self.tmp)
                self.assertExit(res, T.EX_OK)
                self.assertEqual(res.out, expected, "docs/acceptance.md shows another output")

    def test_rates_and_separation(self):
        res = self.ingest(T.sample("overlap.json"))
        self.assertExit(res, T.EX_OK)
        s = self.summary_json()
        dom = s["domains"][0]
        # both policies add up: the sender's 100 sessions show as 200
        self.assertEqual((dom["successful_sessions"], dom["failed_sessions"]), (196, 4))
        by = json.loads(T.run(["summary", "--db", self.db, "--by", "policy-type",
                               "--format", "json"]).out)
        groups = {g["policy_type"]: g for g in by["groups"]}
        self.assertEqual(sorted(groups), ["sts", "tlsa"])
        for g in groups.values():
            self.assertEqual((g["successful_sessions"], g["failed_sessions"]), (98, 2))
            self.assertAlmostEqual(g["failure_rate"], dom["failure_rate"])


if __name__ == "__main__":
    T.main()

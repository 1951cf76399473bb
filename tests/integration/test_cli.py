#!/usr/bin/env python3
"""Hostile and edge inputs through the tlsrptd CLI: gzip bombs, truncated and
multi-member gzip, deep nesting, invalid UTF-8, duplicate keys; validate;
directory walking; --help, unknown options; summary on empty/missing databases."""
import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

MiB = 1 << 20
DEFAULT_MAX_INFLATED = 32 * MiB
BOMB_INFLATED = 1 << 30  # 1 GiB of zeros
# Peak RSS bound for tlsrptd on a bomb. ASan shadow memory and quarantine make RSS
# several times larger, so the bound is scaled for TLSRPTD_ASAN=1 builds.
RSS_LIMIT_KIB = (200 * 1024) * (4 if T.asan() else 1)
WALL_LIMIT = 5.0


def write_gzip_bomb(path, size=BOMB_INFLATED):
    """size bytes of zeros as one gzip member, compressed in a streaming fashion so
    neither the test nor the file gets large (~1 MiB for 1 GiB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
    chunk = bytes(MiB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(chunk))
            f.write(comp.compress(chunk[:n]))
            left -= n
        f.write(comp.flush())


def mail_with_attachment(payload, media_type="application/tlsrpt+gzip",
                         filename="sender.example!mail.example!1!2.json.gz"):
    body = base64.encodebytes(payload).decode("ascii")
    return ("From: TLS Reporting <noreply@sender.example>\r\n"
            "To: tlsrpt@mail.example\r\n"
            "Subject: Report Domain: mail.example Submitter: sender.example\r\n"
            "Message-ID: <bomb-1@sender.example>\r\n"
            "TLS-Report-Domain: mail.example\r\n"
            "TLS-Report-Submitter: sender.example\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n"
            "\r\n"
            "--b1\r\n"
            "Content-Type: text/plain\r\n\r\n"
            "An aggregate TLS report.\r\n"
            "--b1\r\n"
            "Content-Type: %s\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n"
            "%s\r\n"
            "--b1--\r\n" % (media_type, filename, body.replace("\n", "\r\n"))).encode("ascii")


class GzipBomb(T.TlsrptdTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-bomb-")
        cls.bomb = os.path.join(cls.ctmp, "bomb.json.gz")
        write_gzip_bomb(cls.bomb)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.ctmp, True)
        super().tearDownClass()

    def test_bomb_is_small(self):
        size = os.path.getsize(self.bomb)
        self.assertLess(size, 2 * MiB)
        # and it really is 1 GiB of zeros (streamed check, little memory)
        d = zlib.decompressobj(16 + 15)
        total = 0
        with open(self.bomb, "rb") as f:
            while True:
                block = f.read(64 * 1024)
                if not block:
                    break
                data = d.decompress(block, MiB)
                while True:
                    total += len(data)
                    if not d.unconsumed_tail:
                        break
                    data = d.decompress(d.unconsumed_tail, MiB)
        total += len(d.flush())
        self.assertEqual(total, BOMB_INFLATED)

    def check_bomb(self, res, limit, raw):
        self.assertLess(res.elapsed, WALL_LIMIT, "a gzip bomb must be rejected quickly\n%r" % res)
        reason = self.assertRejectedAndQuarantined(res, raw, r"(?i)inflat")
        self.assertIn(str(limit), reason, "the reason must name the inflate limit")
        return reason

    def test_bomb_file_rejected_quickly_with_bounded_memory(self):
        raw = T.read_bytes(self.bomb)
        res = self.ingest(self.bomb)
        self.check_bomb(res, DEFAULT_MAX_INFLATED, raw)
        self.assertLess(res.maxrss_kib, RSS_LIMIT_KIB,
                        "peak RSS %d KiB (limit %d KiB)\n%r" % (res.maxrss_kib, RSS_LIMIT_KIB,
                                                              res))

    def test_bomb_on_stdin_with_lower_limit(self):
        raw = T.read_bytes(self.bomb)
        res = self.ingest("-", opts=["--max-inflated", "1M"], stdin=self.bomb)
        self.check_bomb(res, MiB, raw)
        self.assertLess(res.maxrss_kib, RSS_LIMIT_KIB, res)

    def test_bomb_in_mail_attachment(self):
        mail = self.write("bomb.eml", mail_with_attachment(T.read_bytes(self.bomb)))
        res = self.ingest(mail)
        self.check_bomb(res, DEFAULT_MAX_INFLATED, T.read_bytes(mail))
        self.assertLess(res.maxrss_kib, RSS_LIMIT_KIB, res)

    def test_validate_rejects_bomb(self):
        res = T.run(["validate", self.bomb], cwd=self.tmp)
        self.assertExit(res, T.EX_DATAERR)
        self.assertLess(res.elapsed, WALL_LIMIT)
        self.assertIn(str(DEFAULT_MAX_INFLATED), res.out)
        self.assertLess(res.maxrss_kib, RSS_LIMIT_KIB, res)
        self.assertEqual(os.listdir(self.tmp), [], "validate must not store anything")


class GzipFraming(T.TlsrptdTestCase):
    def test_truncated_gzip_rejected(self):
        full = gzip.compress(T.read_bytes(T.sample("report.json")))
        for cut in (len(full) // 2, len(full) - 4, 10):
            with self.subTest(cut=cut):
                db = self.new_db("trunc-%d" % cut)
                data = full[:cut]
                f = self.write("trunc-%d.json.gz" % cut, data)
                res = self.ingest(f, db=db)
                self.assertRejectedAndQuarantined(res, data, r"(?i)truncat", db=db)

    def test_two_gzip_members_holding_one_json(self):
        js = T.read_bytes(T.sample("report.json"))
        half = len(js) // 2
        data = gzip.compress(js[:half]) + gzip.compress(js[half:])
        f = self.write("two-members.json.gz", data)
        res = self.ingest(f)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "stored")
        reps = T.stored(self.db)
        self.assertEqual(len(reps), 1)
        doc = json.loads(js)
        self.assertEqual(reps[0]["report_id"], doc["report-id"])
        # the report JSON kept is the whole of both members
        self.assertEqual(reps[0]["report"], doc)
        ok = sum(p["successful_sessions"] for p in reps[0]["policies"])
        failed = sum(p["failed_sessions"] for p in reps[0]["policies"])
        self.assertEqual(ok, sum(p["summary"]["total-successful-session-count"]
                                 for p in doc["policies"]))
        self.assertEqual(failed, sum(p["summary"]["total-failure-session-count"]
                                     for p in doc["policies"]))

    def test_garbage_after_gzip_member_rejected(self):
        data = gzip.compress(T.read_bytes(T.sample("report.json"))) + b"garbage!"
        f = self.write("trailing.json.gz", data)
        self.assertRejectedAndQuarantined(self.ingest(f), data, r"(?i)gzip")


class HostileJson(T.TlsrptdTestCase):
    def test_deep_nesting_rejected(self):
        n = 100000
        docs = {
            "arrays": b"[" * n + b"]" * n,
            "objects": b'{"a":' * n + b"1" + b"}" * n,
            "inside-report": T.read_bytes(T.sample("report.json")).replace(
                b'"policies"', b'"x": ' + b"[" * n + b"]" * n + b', "policies"', 1),
        }
        for name, data in docs.items():
            with self.subTest(doc=name):
                db = self.new_db(name)
                f = self.write(name + ".json", data)
                res = self.ingest(f, db=db)
                self.assertLess(res.elapsed, WALL_LIMIT, res)
                self.assertRejectedAndQuarantined(res, data, r"(?i)nest", db=db)
                # and gzipped
                gz = gzip.compress(data)
                fz = self.write(name + ".json.gz", gz)
                dbz = self.new_db(name + "-gz")
                self.assertRejectedAndQuarantined(self.ingest(fz, db=dbz), gz, r"(?i)nest", db=dbz)

    def test_depth_limit_boundary(self):
        # samples/report.json nests 5 deep ({ policies [ { policy { policy-string [)
        f = T.sample("report.json")
        d4 = self.new_db("d4")
        res = self.ingest(f, opts=["--max-json-depth", "4"], db=d4)
        self.assertRejectedAndQuarantined(res, T.read_bytes(f), r"(?i)nest.*\b4\b", db=d4)
        res = self.ingest(f, opts=["--max-json-depth", "5"], db=self.new_db("d5"))
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "stored")

    def test_brackets_inside_strings_do_not_count_as_nesting(self):
        deep_text = "[" * 5000 + "{\\\"" * 1000 + "\\\\"
        doc = T.sample_report()
        doc["policies"][0]["failure-details"][0]["failure-reason-code"] = deep_text
        data = json.dumps(doc).encode()
        res = self.ingest(self.write("brackets.json", data))
        self.assertExit(res, T.EX_OK)
        codes = [f.get("failure_reason_code") for r in T.stored(self.db)
                 for p in r["policies"] for f in p["failure_details"]]
        self.assertEqual([c for c in codes if c and len(c) > 1000], [deep_text])

    def test_invalid_utf8_in_string_rejected(self):
        js = T.read_bytes(T.sample("report.json"))
        bad = {
            "ff": b"\xff",
            "overlong": b"\xc0\xaf",
            "surrogate": b"\xed\xa0\x80",
            "truncated": b"\xe2\x82",
            "above-10ffff": b"\xf4\x90\x80\x80",
            "latin1": "Soci\u00e9t\u00e9".encode("latin-1"),
        }
        for name, seq in bad.items():
            with self.subTest(sequence=name):
                data = js.replace(b'"Sample Sender Ltd"', b'"Sample ' + seq + b' Ltd"', 1)
                self.assertNotEqual(data, js)
                db = self.new_db(name)
                f = self.write(name + ".json", data)
                res = self.ingest(f, db=db)
                self.assertRejectedAndQuarantined(res, data, r"(?i)utf-?8|decode|byte 0x", db=db)

    def test_valid_utf8_accepted(self):
        js = T.read_bytes(T.sample("report.json"))
        data = js.replace(b'"Sample Sender Ltd"', '"Soci\u00e9t\u00e9 \u2713 \U0001F600"'.encode(),
                          1)
        res = self.ingest(self.write("utf8.json", data))
        self.assertExit(res, T.EX_OK)
        self.assertEqual(T.stored_reports(self.db)[0]["organization_name"],
                         "Soci\u00e9t\u00e9 \u2713 \U0001F600")

    def test_duplicate_key_rejected(self):
        js = T.read_bytes(T.sample("report.json"))
        cases = {
            "top": js.replace(b"{", b'{"report-id": "other",', 1),
            "nested": js.replace(b'"policy-type": "sts",',
                                 b'"policy-type": "sts", "policy-type": "tlsa",', 1),
        }
        for name, data in cases.items():
            with self.subTest(case=name):
                self.assertNotEqual(data, js)
                db = self.new_db(name)
                res = self.ingest(self.write(name + ".json", data), db=db)
                self.assertRejectedAndQuarantined(res, data, r"(?i)duplicate", db=db)

    def test_not_json_rejected(self):
        for name, data in {"empty": b"", "spaces": b"  \n\t ", "binary": b"\x00\x01\x02",
                           "array": b"[1, 2]", "text": b"hello world\n"}.items():
            with self.subTest(case=name):
                db = self.new_db(name)
                res = self.ingest(self.write(name + ".in", data), db=db)
                self.assertExit(res, T.EX_DATAERR)
                o = self.single_outcome(res, "rejected")
                self.assertTrue(o.reason.strip())
                q = T.quarantine(db, raw=True)
                self.assertEqual(len(q), 1)
                self.assertEqual(q[0]["raw_size"], len(data))
                self.assertEqual(q[0]["raw"] or b"", data)


class HostileMime(T.TlsrptdTestCase):
    HEAD = ("From: a@sender.example\r\nTo: tlsrpt@mail.example\r\nSubject: %s\r\n"
            "MIME-Version: 1.0\r\n")

    def test_too_many_parts_rejected(self):
        parts = "".join("--b1\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
                        for i in range(2000))
        data = (self.HEAD % "many parts" + "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
                "\r\n" + parts + "--b1--\r\n").encode()
        res = self.ingest(self.write("many.eml", data))
        self.assertLess(res.elapsed, WALL_LIMIT, res)
        self.assertRejectedAndQuarantined(res, data, r"(?i)\bparts\b")
        res = self.ingest(self.path("many.eml"), opts=["--max-parts", "3000"],
                          db=self.new_db("more"))
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("no TLS-RPT report part", self.single_outcome(res, "rejected").reason)

    def test_deeply_nested_multiparts_rejected(self):
        n = 500
        body = "".join("Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
                       for i in range(n))
        body += "Content-Type: text/plain\r\n\r\nhi\r\n"
        body += "".join("--b%d--\r\n" % i for i in reversed(range(n)))
        data = ((self.HEAD % "deep") + body).encode()
        res = self.ingest(self.write("deep.eml", data))
        self.assertLess(res.elapsed, WALL_LIMIT, res)
        self.assertRejectedAndQuarantined(res, data, r"(?i)nest")

    def test_deeply_nested_forwards_rejected(self):
        m = "From: x@y.example\r\nSubject: inner\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        for i in range(500):
            m = (self.HEAD % ("fwd %d" % i)) + "Content-Type: message/rfc822\r\n\r\n" + m
        data = m.encode()
        res = self.ingest(self.write("fwd.eml", data))
        self.assertLess(res.elapsed, WALL_LIMIT, res)
        self.assertRejectedAndQuarantined(res, data, r"(?i)nest")

    def test_forwarded_report_is_found(self):
        inner = T.read_bytes(T.sample("report.eml"))
        data = ((self.HEAD % "Fwd: TLS report").encode() +
                b"Content-Type: multipart/mixed; boundary=\"fw\"\r\n\r\n"
                b"--fw\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                b"--fw\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--fw--\r\n")
        res = self.ingest(self.write("fwd.eml", data))
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "stored")
        reps = T.stored_reports(self.db)
        self.assertEqual([r["report_id"] for r in reps], ["2026-11-03T00:00:00Z_mail.example"])
        self.assertEqual(reps[0]["source"]["domain"], "mail.example")


class Validate(T.TlsrptdTestCase):
    INVALID_ERRORS = {
        "report-id",
        "date-range.end-datetime",
        "policies[0].policy.policy-type",
        "policies[0].summary.total-successful-session-count",
        "policies[0].summary.total-failure-session-count",
    }

    def error_paths(self, res, name):
        paths = []
        prefix = name + ": error: "
        for ln in res.out.splitlines():
            if ln.startswith(prefix):
                paths.append(ln[len(prefix):].split(": ", 1)[0])
        return paths

    def test_invalid_prints_every_error_with_its_path(self):
        f = T.sample("invalid.json")
        res = T.run(["validate", f], cwd=self.tmp)
        self.assertExit(res, T.EX_DATAERR)
        paths = self.error_paths(res, f)
        self.assertEqual(set(paths), self.INVALID_ERRORS, res)
        self.assertEqual(len(paths), len(self.INVALID_ERRORS), "an error printed twice\n%r" % res)
        self.assertRegex(res.out, r"(?m)^%s: invalid\b" % re.escape(f))
        self.assertEqual(os.listdir(self.tmp), [], "validate must not create a database")

    def test_quirky_valid_but_not_strict(self):
        f = T.sample("quirky.json")
        res = T.run(["validate", f], cwd=self.tmp)
        self.assertExit(res, T.EX_OK)
        self.assertEqual(self.error_paths(res, f), [])
        self.assertRegex(res.out, r"(?m)^%s: warning: contact-info: " % re.escape(f))
        self.assertRegex(res.out, r"(?m)^%s: warning: date-range\.start-datetime: .*timezone"
                         % re.escape(f))
        self.assertRegex(res.out, r"(?m)^%s: valid\b" % re.escape(f))

        strict = T.run(["validate", "--strict", f], cwd=self.tmp)
        self.assertExit(strict, T.EX_DATAERR)
        self.assertNotRegex(strict.out, r"(?m)^%s: valid\b" % re.escape(f))
        self.assertEqual(os.listdir(self.tmp), [], "validate must not create a database")

    def test_validate_good_reports_and_worst_code(self):
        good = [T.sample("report.json"), T.sample("report.json.gz"), T.sample("report.eml")]
        res = T.run(["validate", "--strict"] + good, cwd=self.tmp)
        self.assertExit(res, T.EX_OK)
        res = T.run(["validate"] + good + [T.sample("invalid.json")], cwd=self.tmp)
        self.assertExit(res, T.EX_DATAERR)
        res = T.run(["validate", T.sample("invalid.json"), self.path("missing.json")],
                    cwd=self.tmp)
        self.assertExit(res, T.EX_IOERR)
        self.assertEqual(os.listdir(self.tmp), [], "validate must not create a database")

    def test_validate_stdin(self):
        res = T.run(["validate", "-"], stdin=T.read_bytes(T.sample("invalid.json")), cwd=self.tmp)
        self.assertExit(res, T.EX_DATAERR)
        self.assertEqual(set(self.error_paths(res, "-")), self.INVALID_ERRORS)
        self.assertEqual(os.listdir(self.tmp), [])


class DirectoryWalk(T.TlsrptdTestCase):
    def report(self, rid):
        return json.dumps(T.sample_report(**{"report-id": rid}), indent=1).encode()

    def test_walks_sorted_recursively_skipping_hidden(self):
        root = self.path("in")
        files = {
            "b.json": self.report("rid-b"),
            "Z.json": self.report("rid-Z"),          # 'Z' < 'a' byte-wise
            "a/2.json": self.report("rid-a2"),
            "a/10.json": self.report("rid-a10"),     # "10" < "2" byte-wise
            "c/d/e.json.gz": gzip.compress(self.report("rid-e")),
            "zz.json": self.report("rid-Z"),         # same report as Z.json: a duplicate
            ".hidden.json": self.report("rid-hidden"),
            ".hiddendir/x.json": self.report("rid-hiddendir"),
            "a/.x.json.swp": b"editor swap file, not a report",
        }
        for rel, data in files.items():
            self.write(os.path.join("in", rel), data)
        res = self.ingest(root)
        self.assertExit(res, T.EX_OK)
        expected_order = ["Z.json", "a/10.json", "a/2.json", "b.json", "c/d/e.json.gz",
                          "zz.json"]
        self.assertEqual([o.name for o in T.outcomes(res)],
                         [os.path.join(root, p) for p in expected_order])
        self.assertEqual([o.status for o in T.outcomes(res)],
                         ["stored"] * 5 + ["duplicate"])
        reps = T.stored_reports(self.db)
        self.assertEqual([r["report_id"] for r in reps],
                         ["rid-Z", "rid-a10", "rid-a2", "rid-b", "rid-e"])
        self.assertEqual(reps[0]["source"]["name"], os.path.join(root, "Z.json"))
        self.assertEqual(T.counts(self.db)["quarantine"], 0, "hidden files must not be read")

    def test_directory_with_rejects_is_65_and_continues(self):
        root = self.path("in")
        self.write("in/1-bad.json", b"{not json")
        self.write("in/2-good.json", self.report("rid-good"))
        res = self.ingest(root)
        self.assertExit(res, T.EX_DATAERR)
        self.assertEqual([o.status for o in T.outcomes(res)], ["rejected", "stored"])
        self.assertEqual(T.counts(self.db), {"reports": 1, "quarantine": 1})

    def test_empty_directory(self):
        os.mkdir(self.path("empty"))
        self.write("only-hidden/.a.json", self.report("rid-hidden"))
        for d in ("empty", "only-hidden"):
            with self.subTest(directory=d):
                db = self.new_db(d)
                res = self.ingest(self.path(d), db=db)
                self.assertExit(res, T.EX_OK)
                self.assertEqual(T.outcomes(res), [])
                self.assertEqual(T.counts(db)["reports"], 0)
                res = T.run(["validate", self.path(d)], cwd=self.tmp)
                self.assertExit(res, T.EX_OK)


class Usage(T.TlsrptdTestCase):
    COMMANDS = ("ingest", "validate", "summary")

    def test_help_of_each_command(self):
        for cmd in self.COMMANDS:
            for flag in ("--help", "-h"):
                with self.subTest(command=cmd, flag=flag):
                    res = T.run([cmd, flag], cwd=self.tmp)
                    self.assertExit(res, 0)
                    self.assertTrue(res.out.startswith("Usage: tlsrptd %s" % cmd), res)
        res = T.run(["--help"], cwd=self.tmp)
        self.assertExit(res, 0)
        for cmd in self.COMMANDS:
            self.assertIn(cmd, res.out)
        self.assertEqual(os.listdir(self.tmp), [], "--help must not create a database")

    def test_unknown_option_is_64(self):
        for cmd in self.COMMANDS:
            with self.subTest(command=cmd):
                args = [cmd, "--no-such-option"] + ([T.sample("report.json")]
                                                    if cmd != "summary" else [])
                res = T.run(args, cwd=self.tmp)
                self.assertExit(res, T.EX_USAGE)
                self.assertIn("no-such-option", res.err)
                self.assertIn("tlsrptd %s" % cmd, res.err)
        self.assertEqual(os.listdir(self.tmp), [], "a usage error must not create a database")

    def test_other_usage_errors_are_64(self):
        cases = [
            ["frobnicate"],
            [],
            ["ingest", "--db", self.db],
            ["validate"],
            ["summary", "--db", self.db, "--format", "xml"],
            ["summary", "--db", self.db, "extra-argument"],
            ["ingest", "--db", self.db, "--max-json-depth", "2", T.sample("report.json")],
            ["ingest", "--db", self.db, "--busy-timeout", "soon", T.sample("report.json")],
            ["ingest", "--db", self.db, "--max-message", "0", T.sample("report.json")],
            ["ingest", "--db", self.db, "--max-inflated", "lots", T.sample("report.json")],
        ]
        for args in cases:
            with self.subTest(args=args):
                res = T.run(args, cwd=self.tmp)
                self.assertExit(res, T.EX_USAGE)
                self.assertTrue(res.err.strip(), "a usage error must say what is wrong")
        self.assertFalse(T.db_created(self.db), "a usage error must not create a database")


class Summary(T.TlsrptdTestCase):
    def test_fresh_empty_database_prints_zero_totals(self):
        # a tlsrptd database that holds no report (only a quarantined input)
        res = self.ingest(T.sample("not-a-report.eml"))
        self.assertExit(res, T.EX_DATAERR)
        self.assertEqual(T.counts(self.db)["reports"], 0)
        js = self.summary_json()
        self.assertEqual(js["domains"], [])
        t = js["totals"]
        self.assertEqual((t["successful_sessions"], t["failed_sessions"], t["reports"],
                          t["failures"]), (0, 0, 0, {}))
        res = T.run(["summary", "--db", self.db])
        self.assertExit(res, 0)
        total = [ln for ln in res.out.splitlines() if ln.startswith("TOTAL")]
        self.assertEqual(len(total), 1, res)
        self.assertEqual(total[0].split()[1:3], ["0", "0"])
        self.assertEqual(total[0].split()[-1], "0")

    def test_missing_database_fails_naming_the_path(self):
        # SQLite: a file that is not there; PostgreSQL: a database the server does not have
        missing = self.path("nowhere.db") if T.backend() == "sqlite" else \
            T.unopenable_db(self.tmp)
        for fmt in ("table", "json"):
            with self.subTest(format=fmt):
                res = T.run(["summary", "--db", missing, "--format", fmt], cwd=self.tmp)
                self.assertNotEqual(res.rc, 0, res)
                self.assertIn(missing, res.err, res)
                self.assertEqual(res.out.strip(), "", "nothing on stdout when it fails")
        self.assertEqual(os.listdir(self.tmp), [], "summary must not create a database")

    def test_summary_counts_what_was_stored(self):
        for name in ("report.json", "report.json.gz", "report.eml"):
            self.assertExit(self.ingest(T.sample(name)), 0)
        js = self.summary_json()
        doms = {d["policy_domain"]: d for d in js["domains"]}
        self.assertEqual(set(doms), {"mail.example", "other.example"})
        self.assertEqual(js["totals"]["reports"], 3)
        # the totals (kept as rollups) equal the sums over the stored reports' policies
        policies = [p for r in T.stored(self.db) for p in r["policies"]]
        self.assertEqual((js["totals"]["successful_sessions"], js["totals"]["failed_sessions"]),
                         (sum(p["successful_sessions"] for p in policies),
                          sum(p["failed_sessions"] for p in policies)))
        by_type = {}
        for f in (f for p in policies for f in p["failure_details"]):
            by_type[f["result_type"]] = by_type.get(f["result_type"], 0) + \
                f["failed_session_count"]
        self.assertEqual(js["totals"]["failures"], by_type)
        self.assertEqual(doms["mail.example"]["reports"], 3)


def write_sample_reports(directory, prefix, n):
    """n copies of the sample report as files in directory, report-ids prefix0, prefix1, ...;
    their paths."""
    paths = []
    for i in range(n):
        r = T.sample_report()
        r["report-id"] = "%s%d" % (prefix, i)
        paths.append(os.path.join(directory, "%s%05d.json" % (prefix, i)))
        with open(paths[-1], "w") as f:
            json.dump(r, f)
    return paths


@T.sqlite_only("tlsrptd syncs SQLite's log itself; a PostgreSQL commit is durable when it "
               "returns")
class DurableOutput(T.TlsrptdTestCase):
    """ingest commits without waiting for the disk and prints a batch once a thread of its
    own has synced the log: a "stored" line (and the exit status after it) may only follow
    the sync that put the report on disk."""

    def test_stored_is_printed_after_the_sync(self):
        paths = write_sample_reports(self.tmp, "durable-", 3)
        trace = os.path.join(self.tmp, "ingest.strace")
        env = dict(os.environ, LC_ALL="C")
        res = subprocess.run(T.strace_argv(trace, 400) + [T.tlsrptd_bin(), "ingest", "--db",
                                                          self.db] + paths,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.count(b": stored report "), 3, res.stdout)
        ack = r"^\d+ +write\(1<.*stored report"
        with open(trace, encoding="utf-8", errors="replace") as f:
            self.assertEqual(len([ln for ln in f if re.search(ack, ln)]), 1,
                             "the three lines in one write")
        self.assertEqual(T.unsynced_acknowledgements(trace, ack), [])
        self.assertEqual(T.totals(self.db)["reports"], 3)


@T.sqlite_only("the WAL is SQLite's")
class WalWrites(T.TlsrptdTestCase):
    """SQLite writes each WAL frame with two calls, its header and its page; tlsrptd gathers
    a transaction's frames and writes them together at its commit (store_sqlite_walbuf.c).
    Seen from outside with strace: far fewer writes than frames, and the database SQLite
    reads back afterwards holds every report and passes its integrity check."""

    def test_a_commit_goes_to_the_wal_in_few_writes(self):
        paths = write_sample_reports(self.tmp, "wal-", 300)
        trace = os.path.join(self.tmp, "ingest.strace")
        res = subprocess.run(T.strace_argv(trace) + [T.tlsrptd_bin(), "ingest", "--db", self.db,
                                                     "--quiet", "--no-progress"] + paths,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr)
        write_re = re.compile(r"^\d+ +pwrite64\(\d+<[^>]*-wal>, .*, (\d+), (\d+)\) = (\d+)$")
        calls = written = 0
        with open(trace, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = write_re.match(line.rstrip())
                if m:
                    self.assertEqual(m.group(1), m.group(3), "a short write: " + line)
                    calls += 1
                    written += int(m.group(3))
        frames = written // (24 + 4096)
        sys.stderr.write("\n  [wal] %d frames (%d bytes) in %d writes\n" %
                         (frames, written, calls))
        self.assertGreater(frames, 100, "the reports wrote too little to the WAL")
        # one write per frame would already be half of SQLite's own count
        self.assertLess(calls * 8, frames, "the WAL was written in small pieces")
        self.assertEqual(T.totals(self.db)["reports"], 300)
        import sqlite3
        con = sqlite3.connect(self.db)
        try:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        finally:
            con.close()

if __name__ == "__main__":
    T.main()

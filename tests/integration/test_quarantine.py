#!/usr/bin/env python3
"""The quarantine tools (DESIGN §15): `tlsrptd quarantine list|show|export|reingest`
and the API's /api/v1/quarantine, on either backend; and a rejected input read
again after a crash is kept once.

  Cli           list (table, json, --since, --limit), show (text, hex dump, json),
                export (byte-identical; refused when the bytes were not kept),
                reingest ID... / --all (stored ones leave, still bad ones stay: 65)
  ReingestAll   --all over more entries than one listing page (1,100)
  Api           GET /api/v1/quarantine (paging, since), /quarantine/ID, /ID/raw
                (attachment), POST /quarantine/ID/reingest, the bearer token, 403 for
                a client that is not on loopback (another address of this machine)
  ReRead        the same bad input read twice (ingest, a Maildir file whose move a crash
                cut short, SIGKILL of maildir --watch): one quarantine entry each

Run: TLSRPTD_BIN=build/tlsrptd [TLSRPTD_BACKEND=postgresql TLSRPTD_PG_STATE=DIR]
     python3 tests/integration/test_quarantine.py
"""
import base64
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import storage_helpers as H  # noqa: E402
import test_maildir as M  # noqa: E402  (Maildirs and mails)
import tlsrptd_test as T  # noqa: E402


def run_bytes(args):
    """tlsrptd ARGS with its stdout as bytes: (exit code, stdout, stderr)."""
    p = subprocess.run([T.tlsrptd_bin()] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    err = p.stderr.decode("utf-8", "replace")
    if T._SANITIZER_RE.search(err):
        raise AssertionError("sanitizer report:\n%s" % err)
    return p.returncode, p.stdout, err


def deep_report(rid):
    """A valid report, refused with --max-json-depth 4 (its policy strings are 5 deep)."""
    return json.dumps(H.report_dict(rid)).encode()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class QuarantineCase(T.TlsrptdTestCase):
    """A database whose quarantine holds, oldest first: a report whose bytes were
    over the budget (not kept), then (over a second later) invalid.json (text), a
    mail without a report (text), binary bytes, a gzip stream that does not inflate
    and a report refused only for its depth."""

    def setUp(self):
        super().setUp()
        self.big = json.dumps(dict(H.report_dict("big"), **{"report-id": ""})).encode()
        res = self.ingest(self.write("big.json", self.big), opts=["--quarantine-bytes", "1000"])
        self.assertExit(res, T.EX_DATAERR)
        time.sleep(1.1)
        self.split = int(time.time())
        time.sleep(1.1)
        self.inputs = {
            "invalid.json": T.read_bytes(T.sample("invalid.json")),
            "not-a-report.eml": T.read_bytes(T.sample("not-a-report.eml")),
            "binary.bin": bytes(range(256)) * 3,
            "broken.json.gz": gzip.compress(b'{"report-id": "x"')[:20] + b"\x00garbage",
            "deep.json": deep_report("deep-1"),
        }
        for name, data in self.inputs.items():
            res = self.ingest(self.write(name, data), opts=["--max-json-depth", "4"])
            self.assertExit(res, T.EX_DATAERR)
        self.entries = H.quarantine_list(self.db)["entries"]
        self.id_of = {os.path.basename(e["source"]["name"]): e["id"] for e in self.entries}
        self.assertEqual(sorted(self.id_of), sorted(list(self.inputs) + ["big.json"]))


class Cli(QuarantineCase):
    def test_list_table_json_since_limit(self):
        q = H.quarantine_list(self.db)
        self.assertEqual(q["total"], 6)
        ids = [e["id"] for e in q["entries"]]
        self.assertEqual(ids, sorted(ids, reverse=True), "newest first")
        by_name = {os.path.basename(e["source"]["name"]): e for e in q["entries"]}
        self.assertEqual(by_name["invalid.json"]["reason"], "report-id: empty")
        self.assertRegex(by_name["deep.json"]["reason"], r"deeper than 4")
        for name, data in self.inputs.items():
            e = by_name[name]
            self.assertEqual((e["source"]["kind"], e["raw_size"], e["raw_kept"]),
                             ("file", len(data), True), e)
        self.assertEqual((by_name["big.json"]["raw_size"], by_name["big.json"]["raw_kept"]),
                         (len(self.big), False))
        since = H.quarantine_list(self.db, "--since", rfc3339(self.split))
        self.assertEqual([e["id"] for e in since["entries"]], ids[:5])
        self.assertEqual(since["total"], 5)
        until = H.quarantine_list(self.db, "--until", rfc3339(self.split))
        self.assertEqual([e["id"] for e in until["entries"]], [self.id_of["big.json"]])
        limited = T.run(["quarantine", "list", "--db", self.db, "--limit", "2",
                         "--format", "json"])
        self.assertExit(limited, 0)
        lj = json.loads(limited.out)
        self.assertEqual(([e["id"] for e in lj["entries"]], lj["total"]), (ids[:2], 6))
        table = T.run(["quarantine", "list", "--db", self.db])
        self.assertExit(table, 0)
        lines = table.lines()
        self.assertRegex(lines[0], r"^\s*ID\s+RECEIVED\s+SOURCE\s+BYTES\s+NAME\s+REASON")
        self.assertEqual(len(lines), 1 + 6 + 1, table)
        for line, e in zip(lines[1:], q["entries"]):
            self.assertRegex(line, r"^\s*%d\s" % e["id"])
            self.assertIn(e["reason"], line)
        self.assertIn("(bytes not kept)", lines[6])
        self.assertRegex(lines[-1], r"^6 entr")

    def test_show_text_hexdump_json(self):
        res = T.run(["quarantine", "show", "--db", self.db, self.id_of["invalid.json"]])
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"(?m)^reason\s+report-id: empty$")
        self.assertRegex(res.out, r"(?m)^source\s+file$")
        self.assertRegex(res.out, r"(?m)^bytes\s+%d$" % len(self.inputs["invalid.json"]))
        self.assertIn(self.inputs["invalid.json"].decode(), res.out)
        res = T.run(["quarantine", "show", "--db", self.db, self.id_of["binary.bin"]])
        self.assertExit(res, 0)
        dump = [ln for ln in res.out.splitlines() if re.match(r"^[0-9a-f]{8} ", ln)]
        self.assertEqual(len(dump), 768 // 16)
        self.assertRegex(dump[0], r"^00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
                                  r"  \|\.{16}\|$")
        self.assertRegex(dump[4], r"^00000040  40 41 .* 4f  \|@ABCDEFGHIJKLMNO\|$")
        for name in ("invalid.json", "binary.bin", "broken.json.gz"):
            js = H.cli_json(["quarantine", "show", str(self.id_of[name])], self.db)
            self.assertEqual(js["id"], self.id_of[name])
            if "raw_text" in js:
                self.assertEqual(js["raw_text"].encode(), self.inputs[name])
            else:
                self.assertEqual(base64.b64decode(js["raw_base64"]), self.inputs[name])
        self.assertIn("raw_text", H.cli_json(["quarantine", "show",
                                              str(self.id_of["invalid.json"])], self.db))
        big = H.cli_json(["quarantine", "show", str(self.id_of["big.json"])], self.db)
        self.assertFalse(big["raw_kept"])
        self.assertNotIn("raw_text", big)
        res = T.run(["quarantine", "show", "--db", self.db, "999999"])
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("no entry 999999", res.err)

    def test_export_is_byte_identical(self):
        for name, data in self.inputs.items():
            rc, out, err = run_bytes(["quarantine", "export", "--db", self.db, self.id_of[name]])
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, data, name)
            path = self.path("exported-" + name)
            with open(path, "wb") as f:
                f.write(out)
            # what export wrote is the input again: the same outcome, found in quarantine
            res = self.ingest(path, opts=["--max-json-depth", "4"])
            self.assertExit(res, T.EX_DATAERR)
        rc, out, err = run_bytes(["quarantine", "export", "--db", self.db, "424242"])
        self.assertEqual((rc, out), (T.EX_DATAERR, b""), err)

    def test_export_of_bytes_not_kept_is_refused(self):
        rc, out, err = run_bytes(["quarantine", "export", "--db", self.db,
                                  self.id_of["big.json"]])
        self.assertEqual(out, b"")
        self.assertEqual(rc, T.EX_DATAERR, "exporting bytes that were not kept must fail, not "
                         "write an empty file (exit %d, stderr %r)" % (rc, err))
        self.assertIn("not kept", err)

    def test_reingest_ids_and_all(self):
        before = H.summary(self.db)["totals"]["reports"]
        res = T.run(["quarantine", "reingest", "--db", self.db, self.id_of["deep.json"]])
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"quarantine %d: stored report \d+; removed from the "
                                  r"quarantine" % self.id_of["deep.json"])
        self.assertIn("deep-1", H.stored_ids(self.db))
        self.assertEqual(H.summary(self.db)["totals"]["reports"], before + 1)
        left = {e["id"] for e in H.quarantine_list(self.db)["entries"]}
        self.assertNotIn(self.id_of["deep.json"], left)
        self.assertEqual(len(left), 5)
        # still bad: stays, 65
        res = T.run(["quarantine", "reingest", "--db", self.db, self.id_of["invalid.json"],
                     self.id_of["binary.bin"]])
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("quarantine %d: still not acceptable: report-id: empty" %
                      self.id_of["invalid.json"], res.out)
        self.assertEqual({e["id"] for e in H.quarantine_list(self.db)["entries"]}, left)
        # the same again: nothing new in the quarantine
        self.assertEqual(H.quarantine_list(self.db)["total"], 5)
        # a report of the spool kind: stored twice is a duplicate, and leaves too
        self.assertExit(self.ingest(self.write("deep2.json", deep_report("deep-2")),
                                    opts=["--max-json-depth", "4"]), T.EX_DATAERR)
        self.assertExit(self.ingest(self.write("deep2-copy.json", deep_report("deep-2"))), 0)
        res = T.run(["quarantine", "reingest", "--db", self.db, "--all"])
        self.assertExit(res, T.EX_DATAERR)
        self.assertRegex(res.out, r"duplicate report \d+; removed from the quarantine")
        self.assertRegex(res.out, r"reingest: 6 entries: 1 stored or duplicate, 4 still not "
                                  r"acceptable")
        self.assertIn("its bytes were not kept", res.out)
        self.assertEqual({e["id"] for e in H.quarantine_list(self.db)["entries"]}, left)
        res = T.run(["quarantine", "reingest", "--db", self.db, "31337"])
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("no such entry", res.out)
        self.assertEqual(H.summary(self.db)["totals"]["reports"], before + 2)


class ReingestAll(T.TlsrptdTestCase):
    N = 1100

    def test_reingest_all_beyond_one_page(self):
        d = self.path("deep")
        os.makedirs(d)
        for i in range(self.N):
            with open(os.path.join(d, "r%05d.json" % i), "wb") as f:
                f.write(deep_report("many-%05d" % i))
        res = self.ingest(d, opts=["--max-json-depth", "4", "--quiet"])
        self.assertExit(res, T.EX_DATAERR)
        self.assertEqual(H.quarantine_list(self.db)["total"], self.N)
        t0 = time.monotonic()
        res = T.run(["quarantine", "reingest", "--db", self.db, "--all"], timeout=900)
        sys.stderr.write("\n  [reingest] %d entries in %.1f s\n" % (self.N,
                                                                  time.monotonic() - t0))
        self.assertExit(res, 0)
        self.assertIn("reingest: %d entries: %d stored or duplicate, 0 still not acceptable" %
                      (self.N, self.N), res.out)
        self.assertEqual(H.quarantine_list(self.db)["total"], 0)
        self.assertEqual(len(H.stored_ids(self.db)), self.N)


class Api(QuarantineCase):
    def serve(self, *args):
        return H.Daemon(self, ["--db", self.db, "--rate-limit", "0"] + list(args)).start()

    def test_list_entry_raw(self):
        d = self.serve()
        listing = d.get_json("/api/v1/quarantine")
        cli = H.quarantine_list(self.db)
        self.assertEqual(listing["entries"], cli["entries"])
        self.assertEqual((listing["total"], listing["limit"], listing["offset"]), (6, 100, 0))
        page = d.get_json("/api/v1/quarantine?limit=2&offset=1")
        self.assertEqual(page["entries"], cli["entries"][1:3])
        self.assertEqual(page["total"], 6)
        since = d.get_json("/api/v1/quarantine?since=" + rfc3339(self.split))
        self.assertEqual(since["entries"], cli["entries"][:5])
        for name, data in self.inputs.items():
            qid = self.id_of[name]
            entry = d.get_json("/api/v1/quarantine/%d" % qid)
            shown = H.cli_json(["quarantine", "show", str(qid)], self.db)
            shown.pop("raw_text", None)
            shown.pop("raw_base64", None)
            self.assertEqual(entry, shown)
            r = d.get("/api/v1/quarantine/%d/raw" % qid)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, data, name)
            self.assertEqual(r.headers.get("content-type"), "application/octet-stream")
            self.assertRegex(r.headers.get("content-disposition", ""),
                             r'^attachment; filename="[^"/]*%d[^"/]*"$' % qid)
        r = d.get("/api/v1/quarantine/%d/raw" % self.id_of["big.json"])
        self.assertEqual(r.status, 409, r)
        self.assertIn("not kept", r.json()["detail"])
        for path in ("/api/v1/quarantine/999999", "/api/v1/quarantine/999999/raw"):
            r = d.get(path)
            self.assertEqual(r.status, 404, r)
        self.assertEqual(d.get("/api/v1/quarantine?limit=0").status, 400)
        self.assertEqual(d.get("/api/v1/quarantine?domain=x").status, 400)
        self.assertEqual(d.stop(), 0)

    def test_post_reingest(self):
        d = self.serve()
        deep = self.id_of["deep.json"]
        r = d.request("POST", "/api/v1/quarantine/%d/reingest" % deep)
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["result"], "stored", body)
        rid = body["reports"][0]["id"]
        self.assertEqual(d.get_json("/api/v1/reports/%d" % rid)["report_id"], "deep-1")
        self.assertEqual(d.get("/api/v1/quarantine/%d" % deep).status, 404)
        self.assertEqual(d.get_json("/api/v1/quarantine")["total"], 5)
        # still bad: 200 saying so, and the entry stays
        bad = self.id_of["invalid.json"]
        r = d.request("POST", "/api/v1/quarantine/%d/reingest" % bad)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["result"], "rejected", r)
        self.assertEqual(r.json()["reason"], "report-id: empty", r)
        self.assertEqual(d.get("/api/v1/quarantine/%d" % bad).status, 200)
        self.assertEqual(d.get_json("/api/v1/quarantine")["total"], 5)
        r = d.request("POST", "/api/v1/quarantine/%d/reingest" % self.id_of["big.json"])
        self.assertEqual(r.status, 409, r)
        r = d.request("POST", "/api/v1/quarantine/999999/reingest")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(d.request("GET", "/api/v1/quarantine/%d/reingest" % bad).status, 404)
        self.assertEqual(d.stop(), 0)

    def test_token_guards_reads_and_reingest(self):
        d = self.serve("--api-token", "s3cret-token")
        deep = self.id_of["deep.json"]
        for method, path in (("GET", "/api/v1/quarantine"),
                             ("GET", "/api/v1/quarantine/%d" % deep),
                             ("GET", "/api/v1/quarantine/%d/raw" % deep),
                             ("POST", "/api/v1/quarantine/%d/reingest" % deep)):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                r = d.request(method, path, headers=headers)
                self.assertEqual(r.status, 401, "%s %s %r: %r" % (method, path, headers, r))
        self.assertEqual(d.get("/api/v1/quarantine/%d" % deep).status, 401)
        ok = {"Authorization": "Bearer s3cret-token"}
        self.assertEqual(d.request("GET", "/api/v1/quarantine", headers=ok).status, 200)
        r = d.request("POST", "/api/v1/quarantine/%d/reingest" % deep, headers=ok)
        self.assertEqual((r.status, r.json()["result"]), (200, "stored"), r)
        self.assertIn("deep-1", H.stored_ids(self.db))
        self.assertEqual(d.stop(), 0)


    def test_outside_clients_are_refused(self):
        """Without a token the quarantine answers loopback clients only: a client on
        another address of this machine gets 403, and cannot re-ingest either."""
        addr = H.outside_address()
        if addr is None:
            self.skipTest("this machine has no IPv4 address besides loopback")
        d = H.Daemon(self, ["--db", self.db, "--rate-limit", "0"], host=addr).start()
        deep = self.id_of["deep.json"]
        for method, path in (("GET", "/api/v1/quarantine"),
                             ("GET", "/api/v1/quarantine/%d" % deep),
                             ("GET", "/api/v1/quarantine/%d/raw" % deep),
                             ("POST", "/api/v1/quarantine/%d/reingest" % deep)):
            r = d.request(method, path)
            self.assertEqual(r.status, 403, "%s %s: %r" % (method, path, r))
            self.assertIn("loopback", r.json()["detail"])
        self.assertIn(deep, {e["id"] for e in H.quarantine_list(self.db)["entries"]})
        self.assertNotIn("deep-1", H.stored_ids(self.db))
        self.assertEqual(d.post(H.report_body("from-outside")).status, 201)
        self.assertEqual(d.stop(), 0)


class ReRead(T.TlsrptdTestCase):
    def test_same_input_twice_is_kept_once(self):
        bad = self.write("bad.json", T.read_bytes(T.sample("invalid.json")))
        first = self.single_outcome(self.ingest(bad), "rejected")
        second = self.single_outcome(self.ingest(bad), "rejected")
        self.assertEqual(first.rest, second.rest)  # "... (quarantine N)", the same N
        self.assertEqual(H.quarantine_list(self.db)["total"], 1)

    def test_maildir_move_cut_short_is_quarantined_once(self):
        """The quarantine row was committed, then a crash came before the mail was
        moved out of new/: the re-read finds the row."""
        md = M.make_maildir(self.path("Maildir"))
        M.deliver(md, "1.M1.plain", M.plain_mail(1))
        self.assertExit(T.run(M.maildir_cmd(self.db, md)), 0)
        self.assertEqual(M.files(md, ".Quarantine/new"), ["1.M1.plain"])
        shutil.copy(os.path.join(md, ".Quarantine", "new", "1.M1.plain"),
                    os.path.join(md, "new", "1.M1.plain"))
        os.unlink(os.path.join(md, ".Quarantine", "new", "1.M1.plain"))
        res = T.run(M.maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertEqual(M.files(md, "new"), [])
        self.assertEqual(M.files(md, ".Quarantine/new"), ["1.M1.plain"])
        q = H.quarantine_list(self.db)
        self.assertEqual(q["total"], 1, q)
        src = q["entries"][0]["source"]
        self.assertEqual((src["kind"], src["name"]), ("maildir", "1.M1.plain"), src)
        counts = self.metrics_outcomes()
        self.assertEqual(counts.get("rejected"), 1, counts)

    def metrics_outcomes(self):
        d = H.Daemon(self, ["--db", self.db]).start()
        counts = d.outcome_counts(source="maildir")
        self.assertEqual(d.stop(), 0)
        return counts

    def test_sigkill_during_maildir_watch(self):
        n = 400
        md = M.make_maildir(self.path("Maildir"))
        for i in range(n):
            M.deliver(md, "%05d.M%d.bad" % (i, i), M.plain_mail(i))
        bg = M.Background(self, M.maildir_cmd(self.db, md, opts=["--watch"]), "watch")
        moved = H.wait_until(lambda: len(M.files(md, ".Quarantine/new")) > 0, 60, step=0.002)
        bg.proc.send_signal(signal.SIGKILL)
        bg.proc.wait()
        self.assertTrue(moved, bg.log()[-3000:])
        in_new = len(M.files(md, "new"))
        self.assertGreater(in_new, 0, "the run had finished before SIGKILL: no crash tested")
        kept = H.quarantine_list(self.db)["total"]
        moved_n = len(M.files(md, ".Quarantine/new"))
        sys.stderr.write("\n  [sigkill] %d quarantined, %d moved, %d left in new/\n" %
                         (kept, moved_n, in_new))
        res = T.run(M.maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertEqual(M.files(md, "new"), [])
        self.assertEqual(len(M.files(md, ".Quarantine/new")), n)
        q = H.quarantine_list(self.db)
        self.assertEqual(q["total"], n, "a mail quarantined before the crash was kept twice")
        self.assertEqual(len({e["source"]["name"] for e in q["entries"]}), n)
        self.assertEqual(self.metrics_outcomes().get("rejected"), n)


if __name__ == "__main__":
    T.main()

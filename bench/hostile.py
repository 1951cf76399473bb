#!/usr/bin/env python3
"""bench/hostile.py: the hostile-load benchmark of issue 11 (run it through bench/hostile.sh).

    bench/hostile.py --bin build-bench/tlsrptd [--asan-bin build-bench-asan/tlsrptd]
                     [--duration 60] [--honest 30] [--out bench/out]

Every phase starts a fresh `tlsrptd serve` (default configuration, a fresh database in OUT)
on a free port of 127.0.0.1, with an honest sender POSTing a distinct gzipped report every
0.2 s from 127.0.1.1 and a GET /healthz every 0.2 s from 127.0.2.1 beside it:

  honest      nothing else, HONEST seconds: the baseline
  one POST    each hostile body alone (600,000 failure-details in 79 KB, a 30 MiB
              policy-domain, 1,000,000 unknown keys, 130,000 policy domains), from 127.0.0.10:
              answer, seconds, detail, daemon peak RSS, database growth (pages after a
              checkpoint, just before and just after the POST: it may include a report or
              two of the honest sender, ~3 KiB each)
  four        four of a body at once from 127.0.0.10-13, three rounds; RSS 5 s later
  slow heads  600 connections from 127.0.0.1-200 (3 each) sending a request head one byte
              a second, kept open (reopened when cut) for DURATION seconds
  idle        600 keep-alive connections from 127.0.0.1-200 that POSTed once, then idle,
              kept for DURATION seconds
  asan        (with --asan-bin) the hostile-input corpus of tests/integration/hostile.py
              POSTed one by one to an ASan/UBSan build: answer, /healthz after each, exit 0
              and no sanitizer report at SIGTERM

Prints each phase's figures, then the targets of the issue with PASS or FAIL; exits 1 when
one is missed."""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.dont_write_bytecode = True

import hostile as H  # noqa: E402

MiB = 1 << 20
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error: |"
                          r"SUMMARY: UndefinedBehaviorSanitizer")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    def __init__(self, binary, out, name, args=()):
        self.db = os.path.join(out, "hostile-%s.db" % name)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.db + suffix):
                os.unlink(self.db + suffix)
        self.log = os.path.join(out, "hostile-%s.log" % name)
        self.port = free_port()
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
                                          "--db", self.db] + list(args),
                                         stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit("tlsrptd serve exited:\n" + open(self.log).read())
                time.sleep(0.1)
        time.sleep(0.5)

    def hwm(self):
        return H.proc_status_kib(self.proc.pid, "VmHWM") * 1024

    def rss(self):
        return H.proc_status_kib(self.proc.pid, "VmRSS") * 1024

    def size(self):
        """Bytes of the database's pages after a checkpoint (the WAL moved in), so that
        growth is what was stored, not WAL frames."""
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return (conn.execute("PRAGMA page_count").fetchone()[0] *
                    conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        with open(self.log, errors="replace") as f:
            text = f.read()
        return rc, text


class Beside:
    """The honest sender and the /healthz poller around a phase."""

    def __init__(self, d, tag):
        self.sender = H.Sender(d.port, "127.0.1.1", 0.2, "honest-" + tag)
        self.poller = H.Poller(d.port, "127.0.2.1", 0.2)
        self.sender.start()
        self.poller.start()

    def stop(self):
        self.sender.stop()
        self.poller.stop()
        s, p = self.sender, self.poller
        ok = sum(1 for st in s.statuses() if st == 201)
        return {"sent": len(s.results), "answered": ok, "p99": s.p99() or 0.0,
                "max": max(s.latencies() or [0.0]), "healthz": len(p.results),
                "healthz_ok": sum(1 for st in p.statuses() if st == 200),
                "healthz_max": max(p.latencies() or [0.0])}


def line(label, b):
    return ("%-34s honest %3d/%-3d answered, p99 %6.3f s, max %6.3f s; /healthz %3d/%-3d, "
            "max %6.3f s" % (label, b["answered"], b["sent"], b["p99"], b["max"],
                             b["healthz_ok"], b["healthz"], b["healthz_max"]))


BODIES = [
    ("600,000 failure-details (79 KB)", lambda: H.failure_details_bomb(600000), True),
    ("policy-domain of 30 MiB", lambda: H.long_string_bomb(30 * MiB), True),
    ("1,000,000 unknown keys", lambda: H.unknown_keys_bomb(1000000), False),
    ("130,000 policy domains", lambda: H.many_domains_bomb(130000), False),
]


def detail_of(body):
    try:
        return json.loads(body).get("detail", "")
    except ValueError:
        return body[:80].decode(errors="replace")


def healthz(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/healthz")
        return c.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--asan-bin")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--honest", type=float, default=30)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    targets = []

    def target(name, ok, value):
        targets.append((name, ok, value))

    print("building the hostile bodies ...", flush=True)
    bodies = [(name, make(), in_targets) for name, make, in_targets in BODIES]
    for name, body, _ in bodies:
        print("  %-34s %9d bytes" % (name, len(body)))

    # 1. honest only
    d = Daemon(a.bin, a.out, "honest")
    b = Beside(d, "baseline")
    time.sleep(a.honest)
    base = b.stop()
    hwm = d.hwm()
    rc, _ = d.stop()
    print("\n== honest sender alone, %.0f s (peak RSS %.1f MiB, exit %d)" % (a.honest, hwm / MiB,
                                                                            rc))
    print(line("honest only", base))

    # 2. each hostile POST alone
    print("\n== each hostile POST alone, beside the honest sender (a fresh daemon each)")
    for name, body, in_targets in bodies:
        d = Daemon(a.bin, a.out, "one")
        b = Beside(d, "one")
        time.sleep(2)
        before = d.size()
        status, secs, answer = H.post_from(d.port, "127.0.0.10", body, "application/tlsrpt+gzip")
        growth = d.size() - before  # with at most a report or two of the honest sender
        time.sleep(2)
        hwm = d.hwm()
        beside = b.stop()
        rc, _ = d.stop()
        print("%-34s %s in %6.3f s, peak RSS %6.1f MiB, database +%7.1f KiB, exit %d\n"
              "%-34s   %s" % (name, status, secs, hwm / MiB, growth / 1024, rc, "",
                              detail_of(answer)))
        print(line("", beside))
        if in_targets:
            target("%s: answered in <= 1 s" % name, status in (201, 400) and secs <= 1.0,
                   "%s in %.3f s" % (status, secs))
            target("%s: peak RSS <= 128 MiB" % name, hwm <= 128 * MiB, "%.1f MiB" % (hwm / MiB))
            target("%s: database growth <= 1 MiB" % name, growth <= MiB,
                   "%.1f KiB" % (growth / 1024))
            target("%s: honest p99 <= 1 s" % name,
                   beside["p99"] <= 1.0 and beside["answered"] == beside["sent"],
                   "%.3f s, %d/%d" % (beside["p99"], beside["answered"], beside["sent"]))
            target("%s: /healthz <= 1 s" % name,
                   beside["healthz_max"] <= 1.0 and beside["healthz_ok"] == beside["healthz"],
                   "max %.3f s" % beside["healthz_max"])

    # 3. four at once
    print("\n== four at once (three rounds each), beside the honest sender")
    for name, body, in_targets in bodies[:2]:
        d = Daemon(a.bin, a.out, "four")
        b = Beside(d, "four")
        time.sleep(2)
        worst, statuses, growth = 0.0, set(), 0
        for _round in range(3):
            before = d.size()
            for status, secs, _ in H.post_all(d.port, [body] * 4, "application/tlsrpt+gzip"):
                worst = max(worst, secs)
                statuses.add(status)
            growth = max(growth, d.size() - before)
        hwm = d.hwm()
        time.sleep(5)
        after = d.rss()
        beside = b.stop()
        rc, _ = d.stop()
        print("%-34s %s, slowest %6.3f s, peak RSS %6.1f MiB (%.1f MiB 5 s later), database "
              "+%.1f KiB a round, exit %d" % (name + " x4", sorted(statuses, key=str), worst,
                                              hwm / MiB, after / MiB, growth / 1024, rc))
        print(line("", beside))
        target("four x %s: peak RSS <= 256 MiB" % name, hwm <= 256 * MiB, "%.1f MiB" % (hwm / MiB))
        target("four x %s: each answered in <= 1 s" % name,
               statuses <= {201, 400} and worst <= 1.0, "slowest %.3f s" % worst)
        target("four x %s: honest p99 <= 1 s, /healthz <= 1 s" % name,
               beside["p99"] <= 1.0 and beside["answered"] == beside["sent"] and
               beside["healthz_max"] <= 1.0 and beside["healthz_ok"] == beside["healthz"],
               "p99 %.3f s, /healthz max %.3f s" % (beside["p99"], beside["healthz_max"]))

    # 4. floods
    idle_report = json.dumps({
        "organization-name": "Idle Sender", "date-range": {
            "start-datetime": "2026-11-01T00:00:00Z", "end-datetime": "2026-11-01T23:59:59Z"},
        "contact-info": "x", "report-id": "idle", "policies": [H.policy("idle.example")]})
    floods = (("600 slow-header connections",
               lambda port: H.SlowHeaderFlood(port, H.flood_sources(200), 3)),
              ("600 idle keep-alive connections",
               lambda port: H.IdleFlood(port, H.flood_sources(200), 3, idle_report.encode())))
    for label, make in floods:
        d = Daemon(a.bin, a.out, "flood")
        flood = make(d.port)
        flood.start()
        t0 = time.monotonic()
        while flood.opened < 600 and time.monotonic() - t0 < 30:
            time.sleep(0.2)
        b = Beside(d, "flood")
        time.sleep(a.duration)
        beside = b.stop()
        flood.stop()
        hwm = d.hwm()
        rc, log = d.stop()
        print("\n== %s from 200 addresses (127.0.0.1-200), %.0f s" % (label, a.duration))
        print("   the flood opened %d connections, the server closed %d, at most %d open at "
              "once; daemon peak RSS %.1f MiB; exit %d" %
              (flood.opened, flood.closed_by_server, flood.max_open, hwm / MiB, rc))
        print(line(label, beside))
        target("%s: honest 100%% answered, p99 <= 1 s" % label,
               beside["answered"] == beside["sent"] and beside["p99"] <= 1.0,
               "%d/%d, p99 %.3f s" % (beside["answered"], beside["sent"], beside["p99"]))
        target("%s: /healthz always, <= 1 s" % label,
               beside["healthz_ok"] == beside["healthz"] and beside["healthz_max"] <= 1.0,
               "%d/%d, max %.3f s" % (beside["healthz_ok"], beside["healthz"],
                                      beside["healthz_max"]))

    # 5. the hostile-input corpus under ASan
    if a.asan_bin:
        print("\n== the hostile-input corpus POSTed to an ASan/UBSan build (%s)" % a.asan_bin)
        d = Daemon(a.asan_bin, a.out, "asan", ["--rate-limit", "0"])
        bad = []
        for name, ctype, headers, body, allowed in H.corpus():
            status, secs, _ = H.post_from(d.port, "127.0.0.1", body, ctype, headers)
            hz = healthz(d.port)
            ok = status in allowed and hz == 200
            if not ok:
                bad.append(name)
            print("   %-42s %s in %6.2f s, /healthz %s%s" % (name, status, secs, hz,
                                                            "" if ok else "  <-- unexpected"))
        rc, log = d.stop()
        sanitizer = bool(SANITIZER_RE.search(log))
        print("   exit %d, sanitizer report: %s" % (rc, "YES" if sanitizer else "none"))
        target("hostile corpus under ASan: no crash, no leak, /healthz after each",
               not bad and rc == 0 and not sanitizer,
               "%d inputs, %d unexpected, exit %d" % (len(H.corpus()), len(bad), rc))

    print("\n== targets (issue 11)")
    failed = 0
    for name, ok, value in targets:
        print("  %-66s %-26s %s" % (name, value, "PASS" if ok else "FAIL"))
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

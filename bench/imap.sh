#!/usr/bin/env bash
# bench/imap.sh: the IMAP benchmark. Usage: bench/imap.sh [N=1000]
#
# Builds Release in build-bench and generates N synthetic report mails once
# (cached in bench/out, git-ignored) with gen_reports -m, the mails of
# bench/maildir.sh. Then, per run (RUNS of them):
#   1. untimed: starts a Dovecot of its own (Debian's dovecot-imapd, the same
#      unprivileged instance tests/integration/test_imap.py starts: free ports
#      of 127.0.0.1, a self-signed certificate, passwd-file user, Maildir
#      storage in a temporary directory), delivers the N mails into its INBOX
#      (as an MDA would: into the user's Maildir new/), lets Dovecot index them
#      (SELECT + SEARCH UNSEEN over IMAP, which must find N), copies the same
#      mails into a plain Maildir for `tlsrptd maildir`, and warms the page
#      cache;
#   2. timed under bench's rusage wrapper (wall time, CPU time, peak RSS):
#      a. tlsrptd imap --db bench/out/imap-imap.db URL  (one pass over imaps://)
#      b. tlsrptd maildir --db bench/out/imap-maildir.db MAILDIR
#   3. checks: both exit 0; both summary lines say N messages, N stored; both
#      databases hold N reports and give the same `tlsrptd summary --format json`;
#      INBOX is empty and the done folder holds N seen messages (as Dovecot
#      shows them over IMAP); MAILDIR/new is empty.
# Prints messages/s for both (N / wall seconds of each whole process, start-up,
# login and logout included), their ratio, CPU time and peak RSS. The issue
# sets no target: the figures go to bench/RESULTS.md. Exits 1 when a check
# fails in any run.
#
# Environment: RUNS (default 1), SEED (generator seed, default 1), JOBS (build
# jobs). Needs dovecot-imapd and openssl (scripts/deps.sh test); run as root,
# Dovecot runs as the user nobody.
set -euo pipefail

N=${1:-1000}
RUNS=${RUNS:-1}
SEED=${SEED:-1}
JOBS=${JOBS:-2}
case $N in
'' | *[!0-9]* | 0) echo "usage: bench/imap.sh [N]   (RUNS=k for k runs)" >&2 && exit 64 ;;
esac
case $RUNS in
'' | *[!0-9]* | 0) echo "bench/imap.sh: RUNS must be a positive number" >&2 && exit 64 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=build-bench
OUT=bench/out
TEMPLATE=$OUT/imap-$N-template

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target tlsrptd gen_reports rusage >/dev/null

mkdir -p "$OUT"
stamp=".complete-seed-$SEED-$(cksum <bench/gen_reports.c | cut -d' ' -f1)"
if [ ! -f "$TEMPLATE/$stamp" ]; then
    echo "generating $N report mails into $TEMPLATE (seed $SEED) ..."
    rm -rf "$TEMPLATE" "$TEMPLATE.tmp"
    "$BUILD/bench/gen_reports" -n "$N" -m "$TEMPLATE.tmp" -s "$SEED"
    touch "$TEMPLATE.tmp/$stamp"
    mv "$TEMPLATE.tmp" "$TEMPLATE"
fi

export BENCH_N=$N BENCH_RUNS=$RUNS BENCH_TEMPLATE=$TEMPLATE BENCH_OUT=$OUT
export TLSRPTD_BIN=$BUILD/tlsrptd BENCH_RUSAGE=$BUILD/bench/rusage
exec python3 - <<'PYTHON'
import json, os, shutil, subprocess, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, "tests/integration")
from test_imap import Dovecot, Mailbox, PASSWORD  # noqa: E402

n, runs = int(os.environ["BENCH_N"]), int(os.environ["BENCH_RUNS"])
template, out = os.environ["BENCH_TEMPLATE"], os.environ["BENCH_OUT"]
tlsrptd, rusage = os.environ["TLSRPTD_BIN"], os.environ["BENCH_RUSAGE"]
mails = sorted(f for f in os.listdir(os.path.join(template, "new")) if not f.startswith("."))
size = sum(os.path.getsize(os.path.join(template, "new", f)) for f in mails)
print("mails: %s/new, %d messages, %.0f bytes per message" % (template, len(mails), size / len(mails)))


def busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def children_cpu_s(pid):
    """CPU seconds of the reaped children of pid (Dovecot's imap and auth processes)."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[13]) + int(v[14])) / os.sysconf("SC_CLK_TCK")


def timed(name, args):
    ru = os.path.join(out, "imap-%s.rusage" % name)
    with open(os.path.join(out, "imap-%s.out" % name), "wb") as fo, \
            open(os.path.join(out, "imap-%s.log" % name), "wb") as fe:
        rc = subprocess.call([rusage, "-o", ru] + args, stdout=fo, stderr=fe)
    with open(ru) as f:
        fields = dict(kv.split("=") for kv in f.read().split())
    with open(os.path.join(out, "imap-%s.out" % name)) as f:
        line = f.read().strip()
    return rc, {k: float(v) for k, v in fields.items()}, line


def summary(db):
    return json.loads(subprocess.check_output([tlsrptd, "summary", "--db", db, "--format", "json"]))


failed = False
rows = []
for run in range(1, runs + 1):
    print("\n== run %d of %d: preparing (untimed) ..." % (run, runs))
    dv = Dovecot()
    checks = [("set-up", False)]
    try:
        dv.start()
        inbox = os.path.join(dv.dir, "mail", "tlsrpt")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(inbox, sub), exist_ok=True)
        for f in mails:
            shutil.copy(os.path.join(template, "new", f), os.path.join(inbox, "new", f))
        dv._chown()
        mb = Mailbox(dv)
        unseen = mb.count("INBOX", "UNSEEN")
        assert unseen == n, "Dovecot sees %d unseen messages, not %d" % (unseen, n)
        md = os.path.join(out, "imap-%d-maildir" % n)
        shutil.rmtree(md, True)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub))
        for f in mails:
            shutil.copy(os.path.join(template, "new", f), os.path.join(md, "new", f))
        dbs = {k: os.path.join(out, "imap-%s.db" % k) for k in ("imap", "maildir")}
        for db in dbs.values():
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
        pw = os.path.join(out, "imap.pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        subprocess.call("cat %s/new/* %s/new/* > /dev/null" % (md, inbox), shell=True)
        load_before = open("/proc/loadavg").read().split()[:3]
        t_utc = time.strftime("%H:%M:%S", time.gmtime())
        b0 = busy_s()
        d0 = children_cpu_s(dv.proc.pid)
        irc, iru, iline = timed("imap", [tlsrptd, "imap", "--db", dbs["imap"],
                                         "--imap-password-file", pw, "--imap-ca-file", dv.cert,
                                         dv.url()])
        time.sleep(0.5)  # Dovecot reaps the session's imap process
        dovecot_cpu = children_cpu_s(dv.proc.pid) - d0
        mrc, mru, mline = timed("maildir", [tlsrptd, "maildir", "--db", dbs["maildir"], md])
        other = busy_s() - b0 - (iru["user_s"] + iru["sys_s"] + mru["user_s"] + mru["sys_s"]) \
            - dovecot_cpu
        si, sm = summary(dbs["imap"]), summary(dbs["maildir"])
        done = mb.count("TLSRPT.Processed")
        done_unseen = mb.count("TLSRPT.Processed", "UNSEEN")
        left = mb.count("INBOX")
        mb.close()
        checks = [
            ("exit codes 0", irc == 0 and mrc == 0),
            ("imap summary line", iline == "imap: %d messages: %d stored, 0 duplicates, "
                                          "0 quarantined, 0 left unseen" % (n, n)),
            ("maildir summary line", mline == "maildir: %d messages: %d stored, 0 duplicates, "
                                              "0 quarantined, 0 left in new/" % (n, n)),
            ("N reports in both databases", si["totals"]["reports"] == n == sm["totals"]["reports"]),
            ("same summary", si == sm),
            ("INBOX empty, done folder N seen", left == 0 and done == n and done_unseen == 0),
            ("Maildir new/ empty", os.listdir(os.path.join(md, "new")) == []),
        ]
    finally:
        dv.cleanup()
    bad = [name for name, ok in checks if not ok]
    failed = failed or bool(bad)
    irate, mrate = n / iru["wall_s"], n / mru["wall_s"]
    print("== imap benchmark, run %d: %d report mails, %d cores, %s UTC, load before %s"
          % (run, n, os.cpu_count(), t_utc, " ".join(load_before)))
    print("CPU used by other processes while timing: %.2f s (Dovecot's own: %.2f s, not "
          "counted there)" % (max(other, 0), dovecot_cpu))
    print("tlsrptd imap     %7.0f messages/s  (%.2f s wall, %.2f s user, %.2f s sys, peak RSS "
          "%.1f MiB, exit %d)" % (irate, iru["wall_s"], iru["user_s"], iru["sys_s"],
                                  iru["maxrss_kib"] / 1024, irc))
    print("tlsrptd maildir  %7.0f messages/s  (%.2f s wall, %.2f s user, %.2f s sys, peak RSS "
          "%.1f MiB, exit %d)" % (mrate, mru["wall_s"], mru["user_s"], mru["sys_s"],
                                  mru["maxrss_kib"] / 1024, mrc))
    print("imap / maildir   %7.1f %%" % (100 * irate / mrate))
    print("checks: %s" % ("all pass" if not bad else "FAILED: " + ", ".join(bad)))
    if bad:
        print("  imap: %s\n  maildir: %s" % (iline, mline))
    rows.append("%d|%s|%s|%.0f|%.2f|%.2f|%.0f|%.2f|%.2f|%.1f|%.1f|%.1f|%.2f|%.2f|%s" % (
        run, t_utc, " ".join(load_before), irate, iru["wall_s"], iru["user_s"] + iru["sys_s"],
        mrate, mru["wall_s"], mru["user_s"] + mru["sys_s"], 100 * irate / mrate,
        iru["maxrss_kib"] / 1024, mru["maxrss_kib"] / 1024, dovecot_cpu, max(other, 0),
        "ok" if not bad else "FAILED"))
if runs > 1:
    print("\n== all runs (run|time UTC|load before|imap msgs/s|wall s|CPU s|maildir msgs/s|"
          "wall s|CPU s|ratio %|imap RSS MiB|maildir RSS MiB|Dovecot CPU s|other CPU s|checks)")
    print("\n".join(rows))
sys.exit(1 if failed else 0)
PYTHON

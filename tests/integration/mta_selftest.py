#!/usr/bin/env python3
"""Self-test of mta.py: a real OpenSMTPD delivers three corpus reports into a Maildir.

Starts OpenSMTPD (mta.OpenSMTPD) on a free port of 127.0.0.1, sends three .eml files from
the shared corpus (read in place, never copied) with swaks, and checks that they all
arrive in new/ within 10 s with their bodies unchanged and their header lines kept in
order (OpenSMTPD stores LF line ends and adds Return-Path, Delivered-To, Received, and a
Message-ID when there is none). Exit status 0 when all is well.

Needs root and the Debian packages opensmtpd and swaks. Not wired into ctest (yet).

    python3 tests/integration/mta_selftest.py [CORPUS_REAL_DIR]

The corpus directory is, in this order: the argument, $TLSRPTD_CORPUS/real,
<repo>/../shared/corpus/real, /work/shared/corpus/real.
"""
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mta  # noqa: E402

# Three different shapes: LF-only, mixed CRLF/LF, long lines and a large gzip part.
PREFERRED = ("mailauth-rfc8460-example-email.eml", "mox-google-xmox.eml",
             "tlsrptdigest-microsoft-2026.eml")


def corpus_dir():
    candidates = []
    if len(sys.argv) > 1:
        candidates.append(sys.argv[1])
    if os.environ.get("TLSRPTD_CORPUS"):
        candidates.append(os.path.join(os.environ["TLSRPTD_CORPUS"], "real"))
    candidates += [os.path.join(HERE, "..", "..", "..", "shared", "corpus", "real"),
                   "/work/shared/corpus/real"]
    for c in candidates:
        if os.path.isdir(c):
            return os.path.abspath(c)
    sys.exit("FAIL: no corpus directory among %s" % candidates)


def pick_three(directory):
    emls = sorted(n for n in os.listdir(directory) if n.endswith(".eml"))
    chosen = [n for n in PREFERRED if n in emls]
    for n in emls:
        if len(chosen) == 3:
            break
        if n not in chosen:
            chosen.append(n)
    if len(chosen) < 3:
        sys.exit("FAIL: %s holds fewer than three .eml files" % directory)
    return [os.path.join(directory, n) for n in chosen]


def split_message(data):
    """(header lines, body) of a message, line ends made LF."""
    data = data.replace(b"\r\n", b"\n")
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        head, body = data, b""
    return head.split(b"\n"), body


def is_subsequence(needles, haystack):
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


def check_delivered(originals, delivered):
    """Each original matches exactly one delivered file; return a list of problems."""
    problems = []
    remaining = dict(delivered)
    for path, data in originals.items():
        o_head, o_body = split_message(data)
        match = None
        for dpath, ddata in remaining.items():
            d_head, d_body = split_message(ddata)
            if d_body == o_body and is_subsequence(o_head, d_head):
                match = dpath
                break
        if match is None:
            problems.append("%s: no delivered message has its body byte for byte "
                            "(LF line ends) and all its header lines in order"
                            % os.path.basename(path))
            continue
        d_head, _ = split_message(remaining.pop(match))
        added = [h for h in d_head if h not in o_head]
        for want in (b"Delivered-To: " + mta.DEFAULT_TO.encode(), b"Return-Path: <"):
            if not any(h.startswith(want) for h in added):
                problems.append("%s: delivered copy %s lacks %r"
                                % (os.path.basename(path), os.path.basename(match), want))
        print("ok  %-45s -> new/%s (+%d header lines)"
              % (os.path.basename(path), os.path.basename(match), len(added)))
    return problems


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ok, why = mta.available()
    if not ok:
        print("FAIL: %s" % why)
        return 1
    emls = pick_three(corpus_dir())
    originals = {p: read(p) for p in emls}
    tmp = tempfile.mkdtemp(prefix="mta-selftest-")
    keep = False
    try:
        maildir = os.path.join(tmp, "Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub))
        with mta.OpenSMTPD(maildir, tmp) as smtpd:
            print("OpenSMTPD on 127.0.0.1:%d, Maildir %s" % (smtpd.port, maildir))
            t0 = time.monotonic()
            for p in emls:
                mta.send_with_swaks(smtpd.port, p)
            try:
                files = mta.wait_for_files(os.path.join(maildir, "new"), 3, 10, mta=smtpd)
            except mta.MTAError as e:
                keep = True
                print("FAIL: %s" % e)
                return 1
            print("3 messages in new/ %.2f s after the first send"
                  % (time.monotonic() - t0))
            time.sleep(0.3)   # nothing more should come
            files = mta.wait_for_files(os.path.join(maildir, "new"), 3, 0)
            if len(files) != 3:
                keep = True
                print("FAIL: %d files in new/, expected 3: %s" % (len(files), files))
                return 1
            for f in files:   # root can read, write and rename what smtpd delivered
                with open(f, "r+b"):
                    pass
            delivered = {f: read(f) for f in files}
            problems = check_delivered(originals, delivered)
            if problems:
                keep = True
                print("FAIL:\n  " + "\n  ".join(problems) + "\n" + smtpd.describe())
                return 1
            for sub in ("tmp", "cur"):
                left = os.listdir(os.path.join(maildir, sub))
                if left:
                    keep = True
                    print("FAIL: %s/ is not empty: %s" % (sub, left))
                    return 1
        if smtpd.running() or smtpd.returncode != 0:
            print("FAIL: smtpd did not stop cleanly (status %s)\n%s"
                  % (smtpd.returncode, smtpd.describe()))
            keep = True
            return 1
        print("3 passed, 0 failed")
        return 0
    finally:
        if keep:
            print("kept %s for inspection" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

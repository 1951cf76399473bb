#!/usr/bin/env python3
"""IMAP mailboxes (`tlsrptd imap [--watch]` and `tlsrptd serve --imap`), driven
from outside with the REAL binary against a REAL Dovecot (Debian's
dovecot-imapd) that the test starts on free ports of 127.0.0.1: an instance
of its own (its own config, base_dir and log, running as an unprivileged
user: `nobody` when the test runs as root), passwd-file users, a self-signed
certificate made with openssl, and Maildir storage in a temporary directory.
What tlsrptd stored is read through `tlsrptd summary --format json` and
`summary --reports`; the folders are read from Dovecot over IMAP (imaplib).

  Corpus     the corpus mails APPENDed to INBOX: one pass stores exactly what
             `tlsrptd maildir` stores for the same mails; reports in the done
             folder (seen), the non-report in the quarantine folder; a second
             pass fetches nothing
  Semantics  source stored, max_message (quarantined by size, not fetched),
             a server without MOVE (COPY + \\Deleted + UID EXPUNGE), folder
             names and the server's delimiter, STARTTLS, certificates, usage
  Crash      SIGKILL during a pass over 1,000 report mails, then another pass:
             every report stored once, every message moved
  Storage    database locked: messages stay unseen in INBOX (exit 75; under
             --watch retried) and are stored on the next poll
  Login      wrong password: clear error and exit 77; in serve a backoff, the
             metrics count the errors; Dovecot stopped and started again under
             serve --imap: polling resumes
  Hostile    a fake server that lies: a 96 MiB literal where 100 bytes were announced
             (dropped unread, quarantined by size), an endless line (cut off at 8 MiB),
             NO to UID MOVE (stored, left unseen, nothing marked seen)
  OAuth2     Dovecot's oauth2 passdb against a token-introspection endpoint
             served by the test: XOAUTH2/OAUTHBEARER with the token file, which
             is read again at every poll; a refused token is exit 77

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_imap.py [-k NAME]
"""
import http.server
import imaplib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402
from test_maildir import (Background, MaildirCase, expected_sessions, numbered_report,  # noqa: E402
                          plain_mail, report_mail, wait_until)

SLOW = T.SLOW
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "s3cret-pw"


# ---- a Dovecot of the test's own ------------------------------------------------------------


class Dovecot:
    """An unprivileged Dovecot on free ports of 127.0.0.1 (imaps and imap with STARTTLS).

    extra: more dovecot.conf text (capabilities, passdbs); oauth2_url: use the oauth2
    passdb with this token-introspection URL instead of the passwd-file one."""

    def __init__(self, extra="", oauth2_url=None, ssl_mode="yes"):
        self.dir = tempfile.mkdtemp(prefix="tlsrptd-dovecot-")
        os.chmod(self.dir, 0o755)
        self.users = {}
        self.extra, self.oauth2_url, self.ssl_mode = extra, oauth2_url, ssl_mode
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.uid, self.gid, self.user = pw.pw_uid, pw.pw_gid, "nobody"
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            self.user = pwd.getpwuid(self.uid).pw_name
        self.group = self._group_name(self.gid)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", self.key, "-out", self.cert, "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.imaps_port, self.imap_port = T.free_port(), T.free_port()
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.proc = None
        self._write_config()
        self.add_user("tlsrpt", PASSWORD)

    @staticmethod
    def _group_name(gid):
        import grp
        return grp.getgrgid(gid).gr_name

    def _write_config(self):
        d = self.dir
        for sub in ("run", "state", "mail", "home"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if self.oauth2_url:
            with open(os.path.join(d, "oauth2.conf.ext"), "w") as f:
                f.write("introspection_mode = post\nintrospection_url = %s\n"
                        "username_attribute = username\nactive_attribute = active\n"
                        "active_value = true\n" % self.oauth2_url)
            passdb = ("auth_mechanisms = xoauth2 oauthbearer\n"
                      "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                      "  args = %s/oauth2.conf.ext\n}\n" % d)
        else:
            passdb = ("auth_mechanisms = plain login\n"
                      "passdb {\n  driver = passwd-file\n"
                      "  args = scheme=PLAIN username_format=%%u %s/passwd\n}\n" % d)
        conf = """base_dir = {d}/run
state_dir = {d}/state
instance_name = tlsrptd-test-{port}
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{d}/mail/%u
{passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
""".format(d=d, port=self.imaps_port, user=self.user, group=self.group, uid=self.uid,
           gid=self.gid, passdb=passdb, imap=self.imap_port, imaps=self.imaps_port,
           extra=self.extra, ssl=self.ssl_mode)
        if self.ssl_mode == "no":
            conf = conf.replace("    ssl = yes\n", "")
            conf = re.sub(r"  inet_listener imaps \{\n.*?\n  \}\n", "", conf, flags=re.S)
        with open(os.path.join(d, "dovecot.conf"), "w") as f:
            f.write(conf)

    def add_user(self, name, password):
        self.users[name] = password
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for u, p in sorted(self.users.items()):
                f.write("%s:{PLAIN}%s::::::\n" % (u, p))
        self._chown()

    def _chown(self):
        if os.geteuid() == 0:
            for root, dirs, files in os.walk(self.dir):
                for n in dirs + files:
                    os.lchown(os.path.join(root, n), self.uid, self.gid)
            os.chown(self.dir, self.uid, self.gid)

    def start(self):
        self._chown()
        uid, gid = self.uid, self.gid

        def drop():
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)

        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", os.path.join(self.dir, "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=drop)
        port = self.imaps_port if self.ssl_mode != "no" else self.imap_port
        end = time.time() + 20 * SLOW
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: %s\n%s" % (
                    self.proc.stderr.read().decode(errors="replace"), self.log()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not listen on %d:\n%s" % (port, self.log()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, True)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def url(self, user="tlsrpt", folder="INBOX", starttls=False):
        if starttls:
            return "imap://%s@127.0.0.1:%d/%s" % (user, self.imap_port, folder)
        return "imaps://%s@127.0.0.1:%d/%s" % (user, self.imaps_port, folder)

    def client(self, user="tlsrpt"):
        """An imaplib connection, logged in (passwd-file instances only)."""
        if self.ssl_mode == "no":
            m = imaplib.IMAP4("127.0.0.1", self.imap_port)
        else:
            ctx = ssl.create_default_context(cafile=self.cert)
            m = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=ctx)
        m.login(user, self.users[user])
        return m


class Mailbox:
    """What the test sees of a user's folders, over IMAP."""

    def __init__(self, dovecot, user="tlsrpt"):
        self.m = dovecot.client(user)
        self.delim = None

    def close(self):
        try:
            self.m.logout()
        except Exception:
            pass

    def append(self, folder, messages):
        for data in messages:
            typ, resp = self.m.append(folder, None, None, data)
            if typ != "OK":
                raise AssertionError("APPEND failed: %r" % resp)

    def folders(self):
        typ, lines = self.m.list()
        out = {}
        for ln in lines:
            mm = re.match(rb'\((?P<flags>[^)]*)\) "(?P<d>.)" (?P<name>.*)$', ln)
            self.delim = mm.group("d").decode()
            name = mm.group("name").decode().strip('"')
            out[name] = mm.group("flags").decode()
        return out

    def uids(self, folder, criteria="ALL"):
        typ, _ = self.m.select('"%s"' % folder, readonly=True)
        if typ != "OK":
            return None
        typ, data = self.m.uid("SEARCH", None, criteria)
        return [int(x) for x in data[0].split()]

    def count(self, folder, criteria="ALL"):
        u = self.uids(folder, criteria)
        return None if u is None else len(u)

    def bodies(self, folder):
        """Every message of a folder, as bytes, in UID order."""
        out = []
        for uid in self.uids(folder):
            typ, data = self.m.uid("FETCH", str(uid), "(BODY.PEEK[])")
            out.append(data[0][1])
        return out

    def subscribed(self):
        typ, lines = self.m.lsub()
        return [ln.decode().rsplit(" ", 1)[-1].strip('"') for ln in lines if ln]


def parse_stats(out):
    """'imap: N messages: S stored, D duplicates, Q quarantined, L left unseen'"""
    return T.parse_mail_tally(out, "imap: ")


def metric(text, name, label):
    m = re.search(r'^%s\{mailbox="%s"\} (\S+)$' % (re.escape(name), re.escape(label)), text,
                  re.M)
    return float(m.group(1)) if m else None


class ImapCase(MaildirCase):
    def dovecot(self, **kw):
        dv = Dovecot(**kw)
        self.addCleanup(dv.cleanup)
        dv.start()
        return dv

    def mailbox(self, dv):
        mb = Mailbox(dv)
        self.addCleanup(mb.close)
        return mb

    def password_file(self, password=PASSWORD, name="imap.pw"):
        return self.write(name, password + "\n")

    def imap(self, dv, *extra, url=None, pw=None, opts=(), timeout=300):
        args = ["imap", "--db", self.db, "--imap-ca-file", dv.cert]
        if pw is not False:
            args += ["--imap-password-file", pw or self.password_file()]
        return T.run(args + list(opts) + list(extra) + [url or dv.url()], timeout=timeout)

    def summary(self, db=None, *args):
        res = T.run(["summary", "--db", db or self.db, "--format", "json"] + list(args))
        self.assertEqual(res.rc, 0, res)
        return json.loads(res.out)

    def reports_listed(self, db=None):
        res = T.run(["summary", "--db", db or self.db, "--reports", "--format", "json",
                     "--limit", "100000"])
        self.assertEqual(res.rc, 0, res)
        return json.loads(res.out)


# ---- 1. the corpus --------------------------------------------------------------------------


class Corpus(ImapCase):
    def test_corpus_appended_to_inbox(self):
        corpus = T.corpus_dir()
        rows = {r["file"]: r for r in T.load_expected()}
        emls = sorted(f for f in rows if f.endswith(".eml"))
        self.assertGreater(len(emls), 5, "too few .eml files in the corpus")
        accepted = [f for f in emls if rows[f]["accepted"] == "yes"]
        rejected = [f for f in emls if rows[f]["accepted"] == "no"]
        self.assertTrue(rejected, "the corpus has a non-report .eml")
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.append("INBOX", [T.read_bytes(os.path.join(corpus, f)) for f in emls])
        self.assertEqual(mb.count("INBOX", "UNSEEN"), len(emls))

        res = self.imap(dv)
        self.assertExit(res, 0)
        self.assertNoSanitizer(res.err)
        stats = parse_stats(res.out)
        self.assertEqual(stats["messages"], len(emls))
        self.assertEqual(stats["stored"] + stats["duplicates"], len(accepted))
        self.assertEqual(stats["quarantined"], len(rejected))
        self.assertEqual(stats["deferred"], 0)

        # the folders, as Dovecot shows them (Maildir++: its delimiter is ".")
        folders = mb.folders()
        d = mb.delim
        done, quar = "TLSRPT%sProcessed" % d, "TLSRPT%sQuarantine" % d
        self.assertIn(done, folders)
        self.assertIn(quar, folders)
        self.assertEqual(mb.count("INBOX"), 0)
        self.assertEqual(mb.count(done), len(accepted))
        self.assertEqual(mb.count(done, "UNSEEN"), 0)  # marked seen there
        self.assertEqual(mb.count(quar), len(rejected))
        self.assertEqual(mb.count(quar, "UNSEEN"), len(rejected))  # for a person to look at
        self.assertIn(done, mb.subscribed())
        # moved, not changed: the quarantined message is the corpus file
        self.assertEqual(sorted(mb.bodies(quar)),
                         sorted(T.read_bytes(os.path.join(corpus, f)) for f in rejected))
        for f in rejected:
            self.assertRegex(res.err, r"UID \d+: quarantined to TLSRPT/Quarantine: ")

        # exactly what `tlsrptd maildir` stores for the same mails
        md = self.path("Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub))
        for i, f in enumerate(emls):
            shutil.copy(os.path.join(corpus, f), os.path.join(md, "new", "1700%04d.M%d.c" % (i, i)))
        ref = self.path("maildir.db")
        self.assertExit(T.run(["maildir", "--db", ref, md]), 0)
        self.assertEqual(self.summary(), self.summary(ref))
        mine, theirs = self.reports_listed(), self.reports_listed(ref)
        key = lambda r: (r["organization_name"], r["report_id"])  # noqa: E731
        self.assertEqual(sorted(map(key, mine["reports"])), sorted(map(key, theirs["reports"])))
        self.assertEqual({r["source"]["kind"] for r in mine["reports"]}, {"imap"})
        # the source of each report: an RFC 5092 URL of the message
        for n in (r["source"]["name"] for r in mine["reports"]):
            self.assertRegex(n, r"^imaps://tlsrpt@127\.0\.0\.1:\d+/INBOX;UIDVALIDITY=\d+/;UID=\d+$")
        self.assertEqual(T.query(self.db, "SELECT DISTINCT source_kind FROM quarantine"),
                         [("imap",)])

        # a second pass fetches nothing
        again = self.imap(dv)
        self.assertExit(again, 0)
        self.assertEqual(parse_stats(again.out)["messages"], 0)
        self.assertEqual(self.summary(), self.summary(ref))


# ---- 2. semantics ---------------------------------------------------------------------------


class Semantics(ImapCase):
    def test_seen_messages_are_left_and_sources_stored(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        r1, r2 = numbered_report(1), numbered_report(2)
        mb.append("INBOX", [report_mail(r1, msgid="<one@sub.example>", subject="Report 1"),
                            report_mail(r2)])
        mb.m.select("INBOX")
        mb.m.uid("STORE", "2", "+FLAGS", "(\\Seen)")  # a person read it: not ours to take
        res = self.imap(dv)
        self.assertExit(res, 0)
        self.assertEqual(parse_stats(res.out)["stored"], 1)
        self.assertEqual(mb.uids("INBOX"), [2])
        rows = T.query(self.db, "SELECT source_kind, source_message_id, source_subject, "
                                "source_report_domain FROM reports")
        self.assertEqual(rows, [("imap", "one@sub.example", "Report 1", "mail.example")])

    def test_message_over_max_message_is_quarantined_unfetched(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        big = report_mail(numbered_report(8)) + b"\r\n" + b"x" * 8192
        mb.append("INBOX", [big, report_mail(numbered_report(9))])
        res = self.imap(dv, opts=["--max-message", "4K"])
        self.assertExit(res, 0)
        self.assertRegex(res.err, r"UID 1: quarantined to TLSRPT/Quarantine: message of \d+ bytes "
                                  r"is larger than 4096 bytes")
        self.assertEqual(mb.count("TLSRPT.Quarantine"), 1)
        self.assertEqual(mb.count("TLSRPT.Processed"), 1)
        self.assertEqual(self.summary()["totals"]["reports"], 1)
        # not downloaded: Dovecot logs the body bytes it sent
        self.assertTrue(wait_until(lambda: "body_bytes=" in dv.log(), 5))
        sent = [int(x) for x in re.findall(r"body_bytes=(\d+)", dv.log())]
        self.assertLess(max(sent), 8192, dv.log())

    def test_own_domains_apply(self):
        # domains = ... holds for `tlsrptd imap` as for every other path (docs/trust.md): a
        # report for nobody's domain goes to the quarantine folder, not into the database
        dv = self.dovecot()
        mb = self.mailbox(dv)
        stranger = numbered_report(21)
        for pol in stranger["policies"]:
            pol["policy"]["policy-domain"] = "stranger.example"
        mb.append("INBOX", [report_mail(numbered_report(20)),
                            report_mail(stranger, domain="stranger.example")])
        res = self.imap(dv, opts=["--domains", "mail.example, other.example"])
        self.assertExit(res, 0)
        self.assertIn("not a domain of this collector", res.err)
        self.assertEqual(mb.count("TLSRPT.Processed"), 1)
        self.assertEqual(mb.count("TLSRPT.Quarantine"), 1)
        self.assertEqual([r["report_id"] for r in self.reports_listed()["reports"]],
                         ["maildir-test-00020"])

    def test_server_without_move(self):
        # Dovecot advertising no MOVE: COPY, \Deleted and UID EXPUNGE instead
        dv = self.dovecot(extra="protocol imap {\n  imap_capability = IMAP4rev1 LITERAL+ "
                                "UIDPLUS\n}\n")
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(i)) for i in range(3)] + [plain_mail(1)])
        res = self.imap(dv, opts=["-c", self.write("v.conf", "verbose = yes\n")])
        self.assertExit(res, 0)
        self.assertNotIn("UID MOVE", res.err)
        self.assertIn("UID COPY", res.err)
        self.assertIn("UID EXPUNGE", res.err)
        self.assertEqual(mb.count("INBOX"), 0)
        self.assertEqual(mb.count("TLSRPT.Processed"), 3)
        self.assertEqual(mb.count("TLSRPT.Processed", "UNSEEN"), 0)
        self.assertEqual(mb.count("TLSRPT.Processed", "DELETED"), 0)
        self.assertEqual(mb.count("TLSRPT.Quarantine"), 1)
        self.assertEqual(self.summary()["totals"]["reports"], 3)

    def test_custom_folders_and_a_subfolder_to_read(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.m.create("Reports")
        mb.m.create("Reports.TLS")
        mb.append("Reports.TLS", [report_mail(numbered_report(1)), plain_mail(2)])
        # '/' in configured folders is the server's delimiter ('.' here); the URL's path
        # is the server's own name, percent-decoded
        res = self.imap(dv, url=dv.url(folder="Reports.TLS"),
                        opts=["--imap-done-folder", "Archive/TLS RPT/done",
                              "--imap-quarantine-folder", "Junk/tlsrpt"])
        self.assertExit(res, 0)
        folders = mb.folders()
        self.assertIn("Archive.TLS RPT.done", folders)
        self.assertIn("Junk.tlsrpt", folders)
        self.assertNotIn("TLSRPT", folders)
        self.assertEqual(mb.count("Archive.TLS RPT.done"), 1)
        self.assertEqual(mb.count("Junk.tlsrpt"), 1)
        self.assertEqual(mb.count("Reports.TLS"), 0)
        self.assertEqual(mb.count("INBOX"), 0)
        # a folder that does not exist is a configuration error
        res = self.imap(dv, url=dv.url(folder="No%20such"))
        self.assertExit(res, 78)
        self.assertIn("cannot open the folder No such", res.err)

    def test_starttls(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        res = self.imap(dv, url=dv.url(starttls=True))
        self.assertExit(res, 0)
        self.assertEqual(parse_stats(res.out)["stored"], 1)
        self.assertRegex(dv.log(), r"Login: user=<tlsrpt>.*TLS")

    def test_imap_without_starttls_needs_imap_insecure(self):
        dv = self.dovecot(ssl_mode="no")
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        res = self.imap(dv, url=dv.url(starttls=True))
        self.assertExit(res, 78)
        self.assertIn("does not offer STARTTLS", res.err)
        self.assertEqual(mb.count("INBOX", "UNSEEN"), 1)
        res = self.imap(dv, url=dv.url(starttls=True), opts=["--imap-insecure"])
        self.assertExit(res, 0)
        self.assertEqual(parse_stats(res.out)["stored"], 1)

    def test_untrusted_certificate_is_78(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        res = T.run(["imap", "--db", self.db, "--imap-password-file", self.password_file(),
                     dv.url()])
        self.assertExit(res, 78)
        self.assertIn("certificate is not trusted", res.err)
        self.assertIn("imap_ca_file", res.err)
        self.assertEqual(mb.count("INBOX", "UNSEEN"), 1)

    def test_usage_errors(self):
        pw = self.password_file()
        cases = [
            (["imaps://tlsrpt:pw@127.0.0.1/INBOX"], "password in the URL"),
            (["https://tlsrpt@127.0.0.1/INBOX"], "not an imaps:// or imap:// URL"),
            (["imaps://127.0.0.1/INBOX"], "no user"),
            (["imaps://tlsrpt@127.0.0.1/INBOX;UID=3"], "URL options"),
            (["imaps://tlsrpt@127.0.0.1/TLSRPT/Processed"], "also imap_done_folder"),
        ]
        for args, text in cases:
            res = T.run(["imap", "--db", self.db, "--imap-password-file", pw] + args)
            self.assertExit(res, T.EX_USAGE)
            self.assertIn(text, res.err)
        res = T.run(["imap", "--db", self.db, "imaps://tlsrpt@127.0.0.1/INBOX"])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("imap_password_file", res.err)
        res = T.run(["imap", "--db", self.db, "--imap-password-file", self.path("missing"),
                     "imaps://tlsrpt@127.0.0.1/INBOX"])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("missing", res.err)
        res = T.run(["imap", "--db", self.db, "--imap-password-file", pw,
                     "--imap-oauth2-token-file", pw, "imaps://tlsrpt@127.0.0.1/INBOX"])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("not both", res.err)
        res = T.run(["imap", "--db", self.db])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("no mailbox given", res.err)
        res = T.run(["imap", "--help"])
        self.assertExit(res, 0)
        self.assertIn("--watch", res.out)
        self.assertFalse(os.path.exists(self.db))

    def test_config_file_imap_list(self):
        dv = self.dovecot()
        dv.add_user("second", "other-pw")
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        conf = self.write("t.conf", "db = %s\nimap = %s\nimap_password_file = %s\n"
                                    "imap_ca_file = %s\nimap_poll = 1\n"
                          % (self.db, dv.url(), self.password_file(), dv.cert))
        res = T.run(["imap", "-c", conf])
        self.assertExit(res, 0)
        self.assertEqual(parse_stats(res.out)["stored"], 1)

    def test_imap_flags_replace_the_files_imap_list(self):
        # the first --imap flag replaces the file's imap lines, also after another list flag
        # (config_list_index once returned 32 for imap: an undefined 1u << 32 in the mask)
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        conf = self.write("t.conf", "imap = imaps://tlsrpt@127.0.0.1:1/INBOX\n")
        res = T.run(["imap", "-c", conf, "--db", self.db, "--listen", "127.0.0.1:1",
                     "--imap", dv.url(), "--imap-password-file", self.password_file(),
                     "--imap-ca-file", dv.cert])
        self.assertExit(res, 0)
        self.assertEqual(parse_stats(res.out)["stored"], 1)
        self.assertNotIn(":1/INBOX", res.err)


# ---- a hostile server -----------------------------------------------------------------------


class FakeImap(threading.Thread):
    """A plain-text IMAP server on 127.0.0.1 that logs libcurl in and then answers tlsrptd's
    commands from a script: answers[COMMAND] is the untagged text sent before "TAG OK"
    (or "TAG " + status[COMMAND])."""

    def __init__(self, answers, status=None):
        super().__init__(daemon=True)
        self.answers, self.status = answers, status or {}
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.commands = []

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self.session(conn.makefile("rwb", buffering=0))
                except (OSError, ValueError):
                    pass

    def session(self, f):
        f.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake server ready\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            tag, _, rest = line.decode().strip().partition(" ")
            cmd = rest.upper()
            self.commands.append(rest)
            if cmd.startswith("CAPABILITY") and tag.startswith("A"):
                f.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n" % tag.encode())
            elif cmd.startswith("AUTHENTICATE"):
                if len(rest.split()) < 3:
                    f.write(b"+ \r\n")
                    f.readline()
                f.write(b"%s OK logged in\r\n" % tag.encode())
            elif cmd.startswith("LOGOUT"):
                f.write(b"* BYE bye\r\n%s OK done\r\n" % tag.encode())
                return
            else:
                key = next((k for k in self.answers if cmd.startswith(k)), None)
                body = self.answers.get(key, b"")
                if callable(body):
                    body(f)
                else:
                    f.write(body)
                st = next((v for k, v in self.status.items() if cmd.startswith(k)), b"OK done")
                f.write(b"%s %s\r\n" % (tag.encode(), st))

    def stop(self):
        self.sock.close()


class Hostile(ImapCase):
    def fake(self, answers, status=None):
        srv = FakeImap(answers, status)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def run_fake(self, srv, opts=()):
        return T.run(["imap", "--db", self.db, "--imap-insecure", "--imap-password-file",
                      self.password_file()] + list(opts) +
                     ["imap://tlsrpt@127.0.0.1:%d/INBOX" % srv.port], timeout=120)

    def test_a_literal_over_max_message_is_dropped_unread(self):
        mail = report_mail(numbered_report(1))
        huge = 96 << 20

        def bodies(f):
            # the server said 100 bytes but sends 96 MiB for UID 1
            f.write(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % huge)
            chunk = b"x" * (1 << 20)
            for _ in range(huge >> 20):
                f.write(chunk)
            f.write(b")\r\n* 2 FETCH (UID 2 BODY[] {%d}\r\n%s)\r\n" % (len(mail), mail))

        srv = self.fake({
            "CAPABILITY": b"* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n",
            'LIST "" ""': b'* LIST (\\Noselect) "/" ""\r\n',
            "SELECT": b"* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n",
            "UID SEARCH": b"* SEARCH 1 2\r\n",
            "UID FETCH 1:2 (UID RFC822.SIZE)": b"* 1 FETCH (UID 1 RFC822.SIZE 100)\r\n"
                                               b"* 2 FETCH (UID 2 RFC822.SIZE 100)\r\n",
            "UID FETCH 1:2 (UID BODY.PEEK[])": bodies,
            "LIST": b"",
        })
        res = self.run_fake(srv, opts=["--max-message", "1M"])
        self.assertExit(res, 0)
        self.assertLess(res.maxrss_kib, (64 << 10) * (3 if T.asan() else 1), res)
        self.assertRegex(res.err, r"UID 1: quarantined to TLSRPT/Quarantine: message of 100663296 "
                                  r"bytes is larger than 1048576 bytes")
        self.assertEqual(self.summary()["totals"]["reports"], 1)
        self.assertIn('UID MOVE 2 "TLSRPT/Processed"', srv.commands)
        self.assertIn('UID MOVE 1 "TLSRPT/Quarantine"', srv.commands)
        self.assertIn('CREATE "TLSRPT/Processed"', srv.commands)

    def test_an_endless_line_is_cut_off(self):
        def endless(f):
            f.write(b"* SEARCH")
            chunk = b" 1" * (1 << 19)
            for _ in range(64):  # 64 MiB without a line end
                f.write(chunk)

        srv = self.fake({
            "CAPABILITY": b"* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n",
            'LIST "" ""': b'* LIST (\\Noselect) "/" ""\r\n',
            "SELECT": b"* OK [UIDVALIDITY 7] ok\r\n",
            "UID SEARCH": endless,
        })
        res = self.run_fake(srv)
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertIn("an answer line longer than 8388608 bytes", res.err)
        self.assertLess(res.maxrss_kib, (64 << 10) * (3 if T.asan() else 1), res)

    def test_a_bad_answer_to_move_leaves_the_messages_unseen(self):
        mail = report_mail(numbered_report(1))
        srv = self.fake({
            "CAPABILITY": b"* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n",
            'LIST "" ""': b'* LIST (\\Noselect) "/" ""\r\n',
            "SELECT": b"* OK [UIDVALIDITY 7] ok\r\n",
            "UID SEARCH": b"* SEARCH 5\r\n",
            "UID FETCH 5 (UID RFC822.SIZE)": b"* 1 FETCH (UID 5 RFC822.SIZE %d)\r\n" % len(mail),
            "UID FETCH 5 (UID BODY.PEEK[])": b"* 1 FETCH (UID 5 BODY[] {%d}\r\n%s)\r\n"
                                             % (len(mail), mail),
            "LIST": b'* LIST () "/" TLSRPT/Processed\r\n',
        }, status={"UID MOVE": b"NO [OVERQUOTA] over quota"})
        res = self.run_fake(srv)
        # stored (committed), not moved: a duplicate at the next pass, never lost
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertIn("UID MOVE: the server answered NO [OVERQUOTA] over quota", res.err)
        self.assertEqual(parse_stats(res.out)["deferred"], 1)
        self.assertEqual(self.summary()["totals"]["reports"], 1)
        self.assertNotIn("CREATE", " ".join(srv.commands))  # the folder exists
        self.assertNotIn("STORE", " ".join(srv.commands))  # nothing marked seen


# ---- 3. SIGKILL -----------------------------------------------------------------------------


class Crash(ImapCase):
    N = 1000
    PLAIN_EVERY = 50  # every 50th message is not a report

    def test_sigkill_during_a_pass_then_another_pass(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        reports, plain = [], 0
        msgs = []
        for i in range(self.N):
            if i % self.PLAIN_EVERY == 7:
                msgs.append(plain_mail(i))
                plain += 1
            else:
                r = numbered_report(i)
                msgs.append(report_mail(r))
                reports.append(r)
        mb.append("INBOX", msgs)
        self.assertEqual(mb.count("INBOX"), self.N)

        # a pass, killed with SIGKILL as soon as it has moved some messages
        bg = Background(self, ["imap", "--db", self.db, "--imap-ca-file", dv.cert,
                               "--imap-password-file", self.password_file(), dv.url()], "pass")
        watcher = Mailbox(dv)
        self.addCleanup(watcher.close)

        def moved():
            typ, data = watcher.m.status('"TLSRPT.Processed"', "(MESSAGES)")
            return typ == "OK" and int(re.search(rb"MESSAGES (\d+)", data[0]).group(1)) > 0

        self.assertTrue(wait_until(moved, 120, step=0.005), bg.log()[-3000:])
        bg.proc.send_signal(signal.SIGKILL)
        bg.proc.wait()
        left = mb.count("INBOX")
        stored_at_kill = T.scalar(self.db, "SELECT COUNT(*) FROM reports")
        self.assertGreater(left, 0, "the pass had finished before SIGKILL: no crash tested")
        self.assertGreater(stored_at_kill, 0)
        # committed first, moved after: nothing moved that is not stored
        self.assertGreaterEqual(stored_at_kill, mb.count("TLSRPT.Processed"))

        res = self.imap(dv)
        self.assertExit(res, 0)
        self.assertNoSanitizer(res.err)
        stats = parse_stats(res.out)
        self.assertEqual(stats["messages"], left)
        # every message moved
        self.assertEqual(mb.count("INBOX"), 0)
        self.assertEqual(mb.count("TLSRPT.Processed"), len(reports))
        self.assertEqual(mb.count("TLSRPT.Quarantine"), plain)
        # every report stored once, its sessions counted once
        ok = sum(expected_sessions(r)[0] for r in reports)
        bad = sum(expected_sessions(r)[1] for r in reports)
        t = self.summary()["totals"]
        self.assertEqual((t["reports"], t["successful_sessions"], t["failed_sessions"]),
                         (len(reports), ok, bad))
        listed = self.reports_listed()["reports"]
        self.assertEqual(len(listed), len(reports))
        self.assertEqual(sorted(r["report_id"] for r in listed),
                         sorted(r["report-id"] for r in reports))


# ---- 4. storage unavailable -----------------------------------------------------------------


class Storage(ImapCase):
    def lock_db(self):
        import sqlite3
        self.assertExit(T.run(["ingest", "--db", self.db, "--no-progress",
                               T.sample("report.json")]), 0)
        conn = sqlite3.connect(self.db, timeout=0, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        self.addCleanup(conn.close)
        return conn

    def test_locked_database_once_is_75_then_stored(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(i)) for i in range(4)] + [plain_mail(9)])
        conn = self.lock_db()
        res = self.imap(dv, opts=["--busy-timeout", "200"])
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertIn("storage unavailable", res.err)
        self.assertEqual(parse_stats(res.out)["deferred"], 5)
        self.assertEqual(mb.count("INBOX", "UNSEEN"), 5)
        self.assertIsNone(mb.count("TLSRPT.Processed"))
        conn.execute("ROLLBACK")
        res = self.imap(dv)
        self.assertExit(res, 0)
        self.assertEqual(mb.count("INBOX"), 0)
        self.assertEqual(mb.count("TLSRPT.Processed"), 4)
        self.assertEqual(mb.count("TLSRPT.Quarantine"), 1)
        self.assertEqual(self.summary()["totals"]["reports"], 5)  # with samples/report.json

    def test_locked_database_under_serve_is_retried(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        conn = self.lock_db()
        port = T.free_port()
        bg = Background(self, ["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                               "--busy-timeout", "100", "--imap", dv.url(), "--imap-poll", "1",
                               "--imap-password-file", self.password_file(),
                               "--imap-ca-file", dv.cert], "serve")
        self.assertTrue(bg.wait_log("serving", 15 * SLOW), bg.log())
        mb.append("INBOX", [report_mail(numbered_report(i)) for i in range(3)])
        self.assertTrue(wait_until(lambda: "storage unavailable" in bg.log(), 15), bg.log())
        time.sleep(1.5)
        self.assertEqual(mb.count("INBOX", "UNSEEN"), 3)
        conn.execute("ROLLBACK")
        self.assertTrue(wait_until(lambda: mb.count("INBOX") == 0, 30), bg.log())
        self.assertEqual(mb.count("TLSRPT.Processed"), 3)
        rc, _ = bg.stop()
        self.assertEqual(rc, 0, bg.log())
        self.assertNoSanitizer(bg.log())
        self.assertEqual(self.summary()["totals"]["reports"], 4)


# ---- 5. login, backoff, server restarts, serve ----------------------------------------------


class Serve(ImapCase):
    def test_wrong_password_is_77(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        res = self.imap(dv, pw=self.password_file("wrong"))
        self.assertExit(res, 77)
        self.assertRegex(res.err, r"imaps://tlsrpt@127\.0\.0\.1:\d+/INBOX: login refused")
        self.assertIn("imap_password_file", res.err)
        self.assertEqual(mb.count("INBOX", "UNSEEN"), 1)

    def test_wrong_password_in_serve_backs_off(self):
        dv = self.dovecot()
        port = T.free_port()
        pw = self.password_file("wrong")
        bg = Background(self, ["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                               "--imap", dv.url(), "--imap-poll", "1",
                               "--imap-password-file", pw, "--imap-ca-file", dv.cert], "serve")
        self.assertTrue(bg.wait_log("serving", 15 * SLOW), bg.log())
        self.assertTrue(wait_until(lambda: "retrying in 4 s" in bg.log(), 20), bg.log())
        log = bg.log()
        self.assertIn("login refused", log)
        self.assertIn("retrying in 2 s", log)
        # the backoff holds even though imap_poll is 1 s: 3 attempts, not 6+
        attempts = len(re.findall(r"login refused", log))
        self.assertLessEqual(attempts, 3, log)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        self.assertGreaterEqual(metric(text, "tlsrptd_imap_errors_total", dv.url()), 2)
        self.assertEqual(metric(text, "tlsrptd_imap_last_success_timestamp_seconds", dv.url()),
                         0)
        # the password fixed: the next attempt logs in
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        self.assertTrue(wait_until(lambda: mb.count("INBOX") == 0, 30), bg.log())
        rc, _ = bg.stop()
        self.assertEqual(rc, 0, bg.log())
        self.assertNoSanitizer(bg.log())

    def test_imap_watch_polls_until_sigterm(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        bg = Background(self, ["imap", "--watch", "--db", self.db, "--imap-poll", "1",
                               "--imap-password-file", self.password_file(),
                               "--imap-ca-file", dv.cert, dv.url()], "watch")
        self.assertTrue(bg.wait_log("polling INBOX every 1 s", 20 * SLOW), bg.log())
        mb.append("INBOX", [report_mail(numbered_report(1)), plain_mail(2)])
        self.assertTrue(wait_until(lambda: mb.count("INBOX") == 0, 20), bg.log())
        mb.append("INBOX", [report_mail(numbered_report(3))])
        self.assertTrue(wait_until(lambda: mb.count("INBOX") == 0, 20), bg.log())
        rc, out = bg.stop()
        self.assertEqual(rc, 0, bg.log())
        self.assertNoSanitizer(bg.log())
        self.assertEqual(parse_stats(out), {"messages": 3, "stored": 2, "duplicates": 0,
                                            "quarantined": 1, "deferred": 0})
        self.assertEqual(self.summary()["totals"]["reports"], 2)

    def test_serve_polls_and_resumes_after_the_server_restarts(self):
        dv = self.dovecot()
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(1))])
        port = T.free_port()
        bg = Background(self, ["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                               "--imap", dv.url(), "--imap-poll", "1",
                               "--imap-password-file", self.password_file(),
                               "--imap-ca-file", dv.cert], "serve")
        self.assertTrue(bg.wait_log("serving", 15 * SLOW), bg.log())
        self.assertTrue(wait_until(lambda: mb.count("INBOX") == 0, 20), bg.log())
        mb.append("INBOX", [report_mail(numbered_report(2))])
        self.assertTrue(wait_until(lambda: mb.count("INBOX") == 0, 20), bg.log())
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        first_ok = metric(text, "tlsrptd_imap_last_success_timestamp_seconds", dv.url())
        self.assertGreater(first_ok, time.time() - 120)
        self.assertEqual(metric(text, "tlsrptd_imap_errors_total", dv.url()), 0)
        self.assertRegex(text, r'tlsrptd_reports_total\{source="imap",outcome="stored"\} 2')
        mb.close()

        dv.stop()
        self.assertTrue(wait_until(lambda: "cannot reach the server" in bg.log(), 20), bg.log())
        dv.start()
        mb = self.mailbox(dv)
        mb.append("INBOX", [report_mail(numbered_report(3))])
        self.assertTrue(wait_until(lambda: mb.count("INBOX") == 0, 60), bg.log())
        self.assertTrue(wait_until(lambda: "polling INBOX every 1 s" in
                                   bg.log().split("cannot reach the server")[-1], 10), bg.log())
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        self.assertGreaterEqual(metric(text, "tlsrptd_imap_errors_total", dv.url()), 1)
        rc, _ = bg.stop()
        self.assertEqual(rc, 0, bg.log())
        self.assertNoSanitizer(bg.log())
        t = self.summary()["totals"]
        self.assertEqual(t["reports"], 3)
        self.assertEqual(mb.count("TLSRPT.Processed"), 3)


# ---- 6. OAuth2 ------------------------------------------------------------------------------


class Introspection(http.server.BaseHTTPRequestHandler):
    """RFC 7662 token introspection: POST token=... -> {"active": ..., "username": ...}."""

    tokens = {}  # token -> username
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        token = (form.get("token") or [""])[0]
        Introspection.seen.append(token)
        user = Introspection.tokens.get(token)
        body = json.dumps({"active": bool(user), "username": user or ""}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class OAuth2(ImapCase):
    def setUp(self):
        super().setUp()
        Introspection.tokens = {"token-one": "tlsrpt", "token-two": "tlsrpt"}
        Introspection.seen = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Introspection)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.addCleanup(self.httpd.server_close)
        self.addCleanup(self.httpd.shutdown)
        url = "http://127.0.0.1:%d/introspect" % self.httpd.server_address[1]
        self.dv = self.dovecot(oauth2_url=url)
        # a second, password instance would hold other mail; this one is filled by
        # delivering into its Maildir, as an MDA would
        self.inbox = os.path.join(self.dv.dir, "mail", "tlsrpt")

    def deliver(self, name, data):
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.inbox, sub), exist_ok=True)
        tmp = os.path.join(self.inbox, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.inbox, "new", name))
        self.dv._chown()

    def test_oauth2_token_file_read_at_every_poll(self):
        self.deliver("1.M1.oauth", report_mail(numbered_report(1)))
        token = self.write("token", "token-one\n")
        res = T.run(["imap", "--db", self.db, "--imap-ca-file", self.dv.cert,
                     "--imap-oauth2-token-file", token, self.dv.url()])
        self.assertExit(res, 0)
        self.assertEqual(parse_stats(res.out)["stored"], 1)
        self.assertIn("token-one", Introspection.seen)
        self.assertRegex(self.dv.log(), r"Login: user=<tlsrpt>, method=(XOAUTH2|OAUTHBEARER)")

        # under serve the file is read again at every poll: a refreshed token is used
        port = T.free_port()
        bg = Background(self, ["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                               "--imap", self.dv.url(), "--imap-poll", "1",
                               "--imap-oauth2-token-file", token,
                               "--imap-ca-file", self.dv.cert], "serve")
        self.assertTrue(bg.wait_log("serving", 15 * SLOW), bg.log())
        with open(token, "w") as f:
            f.write("token-two\n")
        self.assertTrue(wait_until(lambda: "token-two" in Introspection.seen, 20), bg.log())
        del Introspection.tokens["token-one"]
        self.deliver("2.M2.oauth", report_mail(numbered_report(2)))
        self.assertTrue(wait_until(lambda: self.summary()["totals"]["reports"] == 2, 20),
                        bg.log())
        rc, _ = bg.stop()
        self.assertEqual(rc, 0, bg.log())
        self.assertNoSanitizer(bg.log())
        self.assertEqual(len(os.listdir(os.path.join(self.inbox, "new"))) +
                         len(os.listdir(os.path.join(self.inbox, "cur"))), 0)

    def test_refused_token_is_77(self):
        self.deliver("1.M1.oauth", report_mail(numbered_report(1)))
        token = self.write("token", "expired-token\n")
        res = T.run(["imap", "--db", self.db, "--imap-ca-file", self.dv.cert,
                     "--imap-oauth2-token-file", token, self.dv.url()])
        self.assertExit(res, 77)
        self.assertIn("login refused", res.err)
        self.assertIn("imap_oauth2_token_file", res.err)
        self.assertIn("expired-token", Introspection.seen)


if __name__ == "__main__":
    T.main()

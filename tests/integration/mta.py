"""A real MTA for the integration tests: OpenSMTPD delivering into a Maildir, fed by swaks.

Python 3 standard library only. Needs root and the Debian packages `opensmtpd` and `swaks`
(plus `unshare`/`mount` from util-linux, which every Debian system has).

    import mta
    with mta.OpenSMTPD(maildir_root, tmpdir) as smtpd:       # smtpd.port on 127.0.0.1
        mta.send_with_swaks(smtpd.port, "report.eml")         # to tlsrpt@reports.example
        files = mta.wait_for_files(os.path.join(maildir_root, "new"), 1, 10)

OpenSMTPD (checked with 6.8.0p2, Debian 12) and how it is run here:

* The spool (/var/spool/smtpd), the control socket (/run/smtpd.sock) and a pid file
  (/run/smtpd.pid) are compiled in: no option or config line moves them. Two instances
  would share one queue, and the second refuses to start while the first holds the
  control socket. So smtpd runs in a private mount namespace (`unshare --mount`), where
  a directory under tmpdir is bind-mounted on /var/spool and another on /run. The
  system's smtpd, if any, and other test instances are not touched; the mounts vanish
  when smtpd exits.
* smtpd will not deliver as root (a Maildir delivery as uid 0 is refused) and
  mail.maildir refuses to run as root, so mail is delivered as DELIVERY_USER
  ("nobody" by default). The Maildir (maildir_root and its tmp/, new/, cur/) is chowned
  to that user; the delivered files are mode 0600 owned by it, which root (the tests)
  reads, renames and deletes as it likes.
* The delivery user must be able to reach maildir_root, and test directories
  (tempfile.mkdtemp) are mode 0700. So inside the namespace maildir_root is also
  bind-mounted on /run/tlsrpt-maildir, and the `maildir` action names that path: the
  permissions of maildir_root's parents do not matter.
* A `virtual` table maps "@DOMAIN" to the delivery user, so every local part at the
  test domain ("reports.example") is accepted; other domains are refused (no relay).
* The config and table files are written root-owned, mode 0600 (smtpd warns about or
  refuses secret files that others can read or that root does not own).
* smtpd runs in the foreground (`smtpd -d -v -f CONF`), its stdout+stderr going to a
  log file (`.log_path`, `.log()`), which every error from this module quotes.
* The banner names a random hostname, so the start-up check cannot be fooled by some
  other program that took the port first; a port lost to a race is retried.

swaks: `--data @FILE` sends a file as DATA, but by default swaks rewrites it (turns the
two characters backslash-n into a line break, replaces %DATE%-like tokens, drops a
leading "From " line, re-folds headers). send_with_swaks() therefore writes an
SMTP-ready copy (CRLF line ends, leading dots doubled, final "." line) and passes
`--no-data-fixup`, so the message arrives as it is in the file. What OpenSMTPD itself
changes (seen with the corpus): it stores LF line ends and drops bare CRs; prepends
Return-Path, Delivered-To and Received; adds Date and Message-ID to a header block
lacking them; qualifies a bare address in a header ("To: root" becomes
"To: root@<banner name>"); and refuses (550 "not RFC 2822 compliant") a message that
starts with an mbox "From " line. The body is delivered byte for byte otherwise.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

DOMAIN = "reports.example"
DEFAULT_TO = "tlsrpt@" + DOMAIN
DEFAULT_FROM = "noreply-smtp-tls-reporting@sender.example"
DELIVERY_USER = "nobody"
# Inside smtpd's mount namespace only.
NS_MAILDIR = "/run/tlsrpt-maildir"

_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class MTAError(RuntimeError):
    """The MTA or swaks did not do what was asked; the message carries their output."""


def _which(name):
    path = shutil.which(name)
    if path:
        return path
    for d in _SBIN:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def available(user=DELIVERY_USER):
    """(True, "") when OpenSMTPD, swaks and a mount namespace can be had, else (False, why).

    CI installs the packages, so a missing one should make a test FAIL with this reason.
    """
    missing = [n for n in ("smtpd", "swaks", "unshare", "mount") if not _which(n)]
    if missing:
        return False, ("not installed: %s (Debian: apt-get install opensmtpd swaks; "
                       "unshare and mount come with util-linux and mount)" % ", ".join(missing))
    if os.geteuid() != 0:
        return False, "OpenSMTPD must be started as root (uid %d here)" % os.geteuid()
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False, "delivery user %r does not exist" % user
    r = subprocess.run([_which("unshare"), "--mount", "--propagation", "private", "true"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        return False, ("cannot make a private mount namespace (unshare --mount): %s"
                       % r.stdout.decode("utf-8", "replace").strip())
    return True, ""


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(text, lines=60):
    parts = text.splitlines()
    if len(parts) > lines:
        parts = ["[... %d earlier lines]" % (len(parts) - lines)] + parts[-lines:]
    return "\n".join(parts)


def _exited(pid):
    """True once the child pid has exited; it is NOT reaped, so its pid (and process
    group id) cannot be taken by another process until Popen.wait() reaps it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_exited(pid, timeout):
    deadline = time.monotonic() + timeout
    while not _exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


# Run inside the new mount namespace. $1 spool dir, $2 run dir, $3 maildir, $4 config,
# $5 smtpd, $6.. smtpd options. exec keeps the pid: Popen.pid is smtpd itself.
_NS_SCRIPT = r"""set -e
mount --bind "$1" /var/spool
mount --bind "$2" /run
mkdir -p "%s"
mount --bind "$3" "%s"
conf=$4; smtpd=$5; shift 5
exec "$smtpd" "$@" -f "$conf"
""" % (NS_MAILDIR, NS_MAILDIR)


class OpenSMTPD:
    """A private OpenSMTPD on 127.0.0.1:<port> that delivers DOMAIN's mail into maildir_root.

    maildir_root: the Maildir (tmp/, new/, cur/ are made if missing); chowned to `user`.
    tmpdir: where this instance keeps its config, table, spool, /run and log (a new
            subdirectory is made there, so several instances can share one tmpdir).
    """

    def __init__(self, maildir_root, tmpdir, domain=DOMAIN, user=DELIVERY_USER,
                 start_timeout=15.0, verbose=True):
        self.maildir_root = os.path.abspath(maildir_root)
        self.tmpdir = os.path.abspath(tmpdir)
        self.domain = domain
        self.user = user
        self.start_timeout = start_timeout
        self.verbose = verbose
        self.port = None
        self.proc = None
        self.workdir = None
        self.log_path = None
        self.conf_path = None
        self.banner_name = None
        self._log = None
        self.returncode = None
        self._log_offset = 0

    # ---- set-up ------------------------------------------------------------------------

    def _prepare(self):
        ok, why = available(self.user)
        if not ok:
            raise MTAError("OpenSMTPD cannot run: " + why)
        pw = pwd.getpwnam(self.user)
        for sub in ("", "tmp", "new", "cur"):
            d = os.path.join(self.maildir_root, sub)
            os.makedirs(d, exist_ok=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(d, 0o700)
        self.workdir = tempfile.mkdtemp(prefix="opensmtpd-", dir=self.tmpdir)
        for sub in ("spool", "run"):
            os.mkdir(os.path.join(self.workdir, sub), 0o755)
        self.log_path = os.path.join(self.workdir, "smtpd.log")
        self.conf_path = os.path.join(self.workdir, "smtpd.conf")
        self.table_path = os.path.join(self.workdir, "virtual")
        self.banner_name = "tlsrptd-test-" + uuid.uuid4().hex[:12]
        self._write_secret(self.table_path,
                           "# every local part at %s goes to one local user\n@%s %s\n"
                           % (self.domain, self.domain, self.user))

    @staticmethod
    def _write_secret(path, text):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)

    def config_text(self, port):
        return (
            "# tlsrptd integration test MTA (written by tests/integration/mta.py)\n"
            "table vusers file:%(table)s\n"
            "listen on 127.0.0.1 port %(port)d hostname %(name)s\n"
            "action \"tlsrpt\" maildir \"%(maildir)s\" virtual <vusers>\n"
            "match from any for domain \"%(domain)s\" action \"tlsrpt\"\n"
            % {"table": self.table_path, "port": port, "name": self.banner_name,
               "maildir": NS_MAILDIR, "domain": self.domain})

    def _spawn(self, port):
        self._write_secret(self.conf_path, self.config_text(port))
        check = subprocess.run([_which("smtpd"), "-n", "-f", self.conf_path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if check.returncode != 0:
            raise MTAError("smtpd -n rejects the config:\n%s\n--- %s ---\n%s"
                           % (check.stdout.decode("utf-8", "replace"), self.conf_path,
                              self.config_text(port)))
        opts = ["-d"] + (["-v"] if self.verbose else [])
        argv = [_which("unshare"), "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", _NS_SCRIPT, "sh",
                os.path.join(self.workdir, "spool"), os.path.join(self.workdir, "run"),
                self.maildir_root, self.conf_path, _which("smtpd")] + opts
        self._log = open(self.log_path, "ab")
        self._log_offset = self._log.tell()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.port = port

    def _greets(self):
        """True when 127.0.0.1:port answers with OUR banner (not some other server's)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.settimeout(2)
                data = b""
                while b"\n" not in data and len(data) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                try:
                    s.sendall(b"QUIT\r\n")
                except OSError:
                    pass
        except OSError:
            return False
        return data.startswith(b"220 ") and self.banner_name.encode() in data

    def start(self):
        """Start smtpd and return once it greets on self.port; MTAError (with its log) if not."""
        self._prepare()
        try:
            return self._start()
        except BaseException:
            self._stop()
            raise

    def _start(self):
        deadline = time.monotonic() + self.start_timeout
        for attempt in range(3):
            self._spawn(_free_port())
            while time.monotonic() < deadline:
                if _exited(self.proc.pid):
                    break
                if self._greets():
                    return self
                time.sleep(0.1)
            if not _exited(self.proc.pid):
                self._stop()
                raise MTAError("OpenSMTPD did not greet on 127.0.0.1:%d within %.1f s\n%s"
                               % (self.port, self.start_timeout, self.describe()))
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                lost_port = b"Address already in use" in f.read()
            if not lost_port or attempt == 2 or time.monotonic() >= deadline:
                self._stop()
                raise MTAError("OpenSMTPD exited (status %s) before it listened\n%s"
                               % (self.returncode, self.describe()))
            self._stop()   # another process took the port: try a new one
        raise AssertionError("unreachable")

    # ---- tear-down ---------------------------------------------------------------------

    def _stop(self, timeout=10.0):
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.returncode is None:          # not reaped yet: the pid is still ours
                if not _exited(proc.pid):
                    proc.send_signal(signal.SIGTERM)
                    if not _wait_exited(proc.pid, timeout):
                        proc.send_signal(signal.SIGKILL)
                        _wait_exited(proc.pid, timeout)
                # smtpd's children share the session made for it; while the unreaped
                # smtpd keeps its group id reserved, end any of them still there.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            self.returncode = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self):
        self._stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self._stop()
        return False

    # ---- diagnostics -------------------------------------------------------------------

    def running(self):
        return self.proc is not None and not _exited(self.proc.pid)

    def log(self):
        """smtpd's output so far (stdout and stderr; -d logs to stderr)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def describe(self, lines=60):
        """A block for failure messages: where things are and the end of smtpd's log."""
        return ("--- OpenSMTPD on 127.0.0.1:%s (config %s, log %s) ---\n%s\n"
                "--- smtpd log (last %d lines) ---\n%s"
                % (self.port, self.conf_path, self.log_path,
                   self.config_text(self.port or 0).rstrip(), lines,
                   _tail(self.log(), lines)))


# ---- sending ---------------------------------------------------------------------------


def smtp_ready(data):
    """Bytes of a message as SMTP DATA: CRLF line ends, leading dots doubled, no final dot.

    swaks --no-data-fixup sends exactly this followed by CRLF, so we add the "." line.
    """
    text = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    if text.startswith(b"."):
        text = b"." + text
    text = text.replace(b"\r\n.", b"\r\n..")
    return text + b"."


def send_with_swaks(port, eml_path, to=DEFAULT_TO, sender=DEFAULT_FROM, timeout=60):
    """Send the RFC 5322 file eml_path, unchanged, to 127.0.0.1:port; return (0, output).

    sender "" or "<>" is the null sender (as in a bounce).

    Raises MTAError with swaks' transcript when swaks fails (the server refused, the
    connection broke, ...).
    """
    swaks = _which("swaks")
    if not swaks:
        raise MTAError("swaks is not installed (Debian: apt-get install swaks)")
    if sender in ("", None):
        sender = "<>"
    with open(eml_path, "rb") as f:
        data = smtp_ready(f.read())
    fd, tmp = tempfile.mkstemp(prefix="swaks-data-", suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        argv = [swaks, "--server", "127.0.0.1:%d" % port, "--to", to, "--from", sender,
                "--data", "@" + tmp, "--no-data-fixup", "--suppress-data",
                "--timeout", "30"]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode("utf-8", "replace")
            raise MTAError("swaks did not finish in %d s sending %s\n%s"
                           % (timeout, eml_path, out))
    finally:
        os.unlink(tmp)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        raise MTAError("swaks exited %d sending %s to 127.0.0.1:%d\n$ %s\n%s"
                       % (r.returncode, eml_path, port, " ".join(argv), out))
    return r.returncode, out


# ---- waiting ---------------------------------------------------------------------------


def _regular_files(dirpath):
    try:
        names = os.listdir(dirpath)
    except FileNotFoundError:
        return []
    out = []
    for n in sorted(names):
        p = os.path.join(dirpath, n)
        if os.path.isfile(p) and not os.path.islink(p):
            out.append(p)
    return out


def wait_for_files(dirpath, n, timeout, mta=None):
    """Wait until dirpath holds at least n regular files; return their paths (sorted).

    Raises MTAError on timeout, naming what is there (and quoting the MTA's log when the
    OpenSMTPD instance is given as mta).
    """
    deadline = time.monotonic() + timeout
    while True:
        files = _regular_files(dirpath)
        if len(files) >= n:
            return files
        if time.monotonic() >= deadline:
            msg = ("%s holds %d file(s) after %.1f s, expected at least %d: %s"
                   % (dirpath, len(files), timeout, n,
                      [os.path.basename(f) for f in files]))
            if mta is not None:
                msg += "\n" + mta.describe()
            raise MTAError(msg)
        time.sleep(0.05)

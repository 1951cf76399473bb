#!/usr/bin/env python3
"""A throwaway PostgreSQL cluster for the tests (Debian's postgresql-15).

    pg_cluster.py start STATE_DIR [DB ...]   initdb into STATE_DIR/data, start the server
                                             on a free 127.0.0.1 port with its socket in
                                             STATE_DIR, create the databases DB..., and
                                             write STATE_DIR/uri (postgresql://…/ without
                                             a database name)
    pg_cluster.py stop STATE_DIR             stop it and remove STATE_DIR
    pg_cluster.py pause STATE_DIR            stop the server, keep its data (a test of
                                             storage going away)
    pg_cluster.py resume STATE_DIR           start it again on the same port

As root (CI), the server runs as the unprivileged user 'nobody' (initdb refuses
root). Authentication is 'trust' for the superuser on 127.0.0.1 and the socket,
and 'scram-sha-256' for the role 'tlsrptd' (password 'tlsrptd-test'), so the tests
can check password files too. ctest runs 'start' as a fixture before the tests that
need PostgreSQL and 'stop' after them (tests/CMakeLists.txt).
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
PASSWORD = "tlsrptd-test"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def as_server(argv, **kw):
    """Run argv as the server's user."""
    if os.getuid() == 0:
        argv = ["runuser", "-u", "nobody", "--"] + argv
    return subprocess.run(argv, check=True, **kw)


def psql(state, port, sql, db="postgres"):
    as_server([os.path.join(PG_BIN, "psql"), "-X", "-q", "-h", state, "-p", str(port),
               "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql],
              stdout=subprocess.DEVNULL)


def run_server(state, port):
    """pg_ctl start: on 127.0.0.1:port, its socket in state. fsync is off: the tests
    stop and kill tlsrptd and the server, never the machine, and what a server
    wrote survives those in the page cache; with it on, a commit waits on the disk
    and the suites that store 100,000 reports take most of an hour.
    PG_CLUSTER_FSYNC=on (bench/pg.sh) makes it a server as a real one is."""
    fsync = "on" if os.environ.get("PG_CLUSTER_FSYNC") == "on" else "off"
    opts = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s "
            "-c max_connections=200 -c shared_buffers=64MB -c fsync=%s "
            "-c log_min_messages=warning" % (port, state, fsync))
    as_server([os.path.join(PG_BIN, "pg_ctl"), "-D", os.path.join(state, "data"), "-l",
               os.path.join(state, "server.log"), "-o", opts, "-w", "-t", "60", "start"],
              stdout=subprocess.DEVNULL)


def pause(state):
    as_server([os.path.join(PG_BIN, "pg_ctl"), "-D", os.path.join(state, "data"), "-m", "fast",
               "-w", "-t", "60", "stop"], stdout=subprocess.DEVNULL)


def resume(state):
    with open(os.path.join(state, "port")) as f:
        run_server(state, int(f.read()))


def start(state, dbs):
    if os.path.exists(state):
        shutil.rmtree(state)
    os.makedirs(state, mode=0o700)
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        # every directory above must be searchable by nobody
        d = os.path.dirname(os.path.abspath(state))
        while d not in ("/", ""):
            st = os.stat(d)
            if not st.st_mode & 0o001:
                os.chmod(d, st.st_mode | 0o001)
            d = os.path.dirname(d)
    data = os.path.join(state, "data")
    as_server([os.path.join(PG_BIN, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
               "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
              stdout=subprocess.DEVNULL)
    with open(os.path.join(data, "pg_hba.conf"), "w") as f:
        f.write("local all postgres trust\n"
                "host all postgres 127.0.0.1/32 trust\n"
                "local all all scram-sha-256\n"
                "host all all 127.0.0.1/32 scram-sha-256\n")
    port = free_port()
    run_server(state, port)
    psql(state, port, "CREATE ROLE tlsrptd LOGIN PASSWORD '%s'" % PASSWORD)
    for db in dbs:
        psql(state, port, "CREATE DATABASE %s OWNER tlsrptd" % db)
    with open(os.path.join(state, "uri"), "w") as f:
        f.write("postgresql://postgres@127.0.0.1:%d/\n" % port)
    with open(os.path.join(state, "port"), "w") as f:
        f.write("%d\n" % port)


def stop(state):
    data = os.path.join(state, "data")
    if os.path.isdir(data):
        for _ in range(3):
            r = subprocess.run((["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []) +
                               [os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-m", "immediate",
                                "-w", "stop"],  # no shutdown checkpoint: the data goes anyway
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                break
            time.sleep(1)
    shutil.rmtree(state, ignore_errors=True)


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("start", "stop", "pause", "resume"):
        sys.exit(__doc__)
    state = os.path.abspath(sys.argv[2])
    if sys.argv[1] == "start":
        start(state, sys.argv[3:])
    elif sys.argv[1] == "stop":
        stop(state)
    elif sys.argv[1] == "pause":
        pause(state)
    else:
        resume(state)


if __name__ == "__main__":
    main()

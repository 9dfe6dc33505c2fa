"""A PostgreSQL server of the fault suite's own, which its tests may stop and start at will.

The machine's PostgreSQL is shared; restarting it would break whatever else uses it. So
`make faults` runs the suite through this module:

    python -m tests.faults.postgres -- python -m pytest -m faults tests/faults

It creates a throw-away cluster (initdb, trust authentication, a free port on 127.0.0.1) in a
temporary folder, starts it, runs the command with DATABASE_URL pointing at it (pytest-django
creates its test database there) and FAULTS_PGDATA naming the cluster, then stops the server
and removes the folder, whatever the command did. Without PostgreSQL's server programs on the
machine the command runs as it is (SQLite), and the tests that restart PostgreSQL skip.

As root, PostgreSQL's programs run as the `postgres` user (initdb refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

# Seconds any pg_ctl call may take; `-w` makes it wait for the server itself.
PG_CTL_TIMEOUT = 60


def server_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), the newest version's."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found and Path(found).with_name("createdb").exists() else None


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_ctl(pgdata: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pg_ctl on the cluster in `pgdata` (as its owner); raises if it fails."""
    bindir = server_bin()
    assert bindir is not None, "no PostgreSQL server programs on this machine"
    return subprocess.run(
        _as_server_user([str(bindir / "pg_ctl"), "-D", str(pgdata), "-w", *args]),
        check=True,
        capture_output=True,
        text=True,
        timeout=PG_CTL_TIMEOUT,
    )


def create_cluster(root: Path) -> tuple[Path, int]:
    bindir = server_bin()
    assert bindir is not None
    pgdata = root / "pgdata"
    pgdata.mkdir(mode=0o700)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (root, pgdata):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        _as_server_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=PG_CTL_TIMEOUT,
    )
    port = _free_port()
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{root}'\n"
            # A test server: durability is not what these tests are about.
            "fsync = off\nfull_page_writes = off\nmax_connections = 200\n"
        )
    return pgdata, port


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: python -m tests.faults.postgres -- COMMAND...", file=sys.stderr)
        return 2
    bindir = server_bin()
    if bindir is None:
        print("faults: no PostgreSQL server programs here; the suite runs on", end=" ")
        print(os.environ.get("DATABASE_URL", "SQLite"), "and skips the PostgreSQL restart")
        return subprocess.call(argv)
    root = Path(tempfile.mkdtemp(prefix="faults-pg-"))
    try:
        pgdata, port = create_cluster(root)
        pg_ctl(pgdata, "-l", str(root / "server.log"), "start")
        subprocess.run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "faults",
            ],
            check=True,
            timeout=30,
        )
        env = dict(os.environ)
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/faults"
        env["FAULTS_PGDATA"] = str(pgdata)
        print(f"faults: a PostgreSQL server of their own on 127.0.0.1:{port} ({pgdata})")
        return subprocess.call(argv, env=env)
    finally:
        if (root / "pgdata" / "postmaster.pid").exists():
            try:
                pg_ctl(root / "pgdata", "-m", "immediate", "stop")
            except (subprocess.SubprocessError, OSError) as exc:
                print(f"faults: could not stop the PostgreSQL server: {exc}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run a command (the cluster suite) on hosts of its own: `make cluster` runs

    python -m tests.cluster.run -- python -m pytest -m cluster tests/cluster

It makes the hosts (tests/cluster/network.py): a data host running PostgreSQL and Redis bound to
its address (a throw-away cluster and server of their own, as the fault suite's), a web host, a
second beat host and two worker hosts. Then it runs the command with DATABASE_URL and REDIS_URL
naming the data host's address (pytest-django makes its test database there) and CLUSTER_HOSTS
describing the hosts (tests/cluster/conftest.py reads it), and removes everything after, whatever
the command did. Where the hosts cannot be made (not root, no iproute2) it says why and runs
nothing: exit code 0, as a skipped suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster.network import Host, Network, ip, missing_requirements
from tests.faults.postgres import _as_server_user, create_cluster, server_bin

# The hosts every cluster test may use: the data host first (tests/cluster/conftest.py).
HOSTS = ("data", "web", "beat2", "worker1", "worker2")
PG_PORT = 5432
REDIS_PORT = 6379
# Seconds the data host's servers may take to answer.
START_TIMEOUT = 60


def _wait(predicate: object, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise RuntimeError(f"cluster: timed out waiting for {what}")


def _start_postgres(data: Host, root: Path) -> Path:
    bindir = server_bin()
    if bindir is None:
        raise RuntimeError("cluster: no PostgreSQL server programs on this machine")
    pgdata, _ = create_cluster(root)
    with open(pgdata / "postgresql.conf", "a") as conf:
        # The later lines win: bound to the data host's own address, on its own port 5432.
        conf.write(f"\nlisten_addresses = '{data.address}'\nport = {PG_PORT}\n")
        # A client whose host was cut off and whose process ended meanwhile leaves its session
        # open on the server until the server asks: after 5 s of silence, as production should.
        conf.write(
            "tcp_keepalives_idle = 5\ntcp_keepalives_interval = 1\ntcp_keepalives_count = 3\n"
        )
    with open(pgdata / "pg_hba.conf", "a") as hba:
        # Every host of the cluster's network, trusted as the machine's own server trusts
        # 127.0.0.1 (a test server).
        subnet = data.address.rsplit(".", 1)[0]
        hba.write(f"\nhost all all {subnet}.0/24 trust\n")
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(pgdata), "-w", "-l", str(root / "pg.log")]
    subprocess.run(
        data.wrap(_as_server_user([*pg_ctl, "start"])),
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT,
    )
    createdb = [str(bindir / "createdb"), "-h", data.address, "-p", str(PG_PORT), "-U", "postgres"]
    subprocess.run(
        [*createdb, "cluster"],
        check=True,
        timeout=30,
    )
    return pgdata


def _stop_postgres(pgdata: Path) -> None:
    bindir = server_bin()
    if bindir is None or not (pgdata / "postmaster.pid").exists():
        return
    subprocess.run(
        _as_server_user([str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"]),
        capture_output=True,
        timeout=START_TIMEOUT,
    )


def redis_address(data: Host) -> str:
    """Redis's own address on the data host (a second one: a test can cut a host off Redis
    alone, `Network.cut_route`, and leave it PostgreSQL)."""
    return f"{data.address.rsplit('.', 1)[0]}.20"


def _start_redis(data: Host, root: Path) -> subprocess.Popen[bytes]:
    ip("-n", data.namespace, "addr", "add", f"{redis_address(data)}/24", "dev", "eth0")
    argv = ["redis-server", "--bind", data.address, redis_address(data)]
    argv += ["--port", str(REDIS_PORT)]
    argv += ["--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", str(root)]
    log = open(root / "redis.log", "wb")  # noqa: SIM115  (the server writes to it)
    server = subprocess.Popen(data.wrap(argv), stdout=log, stderr=subprocess.STDOUT)

    def answers() -> bool:
        done = subprocess.run(
            ["redis-cli", "-h", redis_address(data), "-p", str(REDIS_PORT), "ping"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return done.stdout.strip() == "PONG"

    _wait(answers, f"Redis on {data.address}")
    return server


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: python -m tests.cluster.run -- COMMAND...", file=sys.stderr)
        return 2
    why = missing_requirements() or (
        None if server_bin() else "the cluster suite needs PostgreSQL's server programs"
    )
    if why is not None:
        print(f"cluster: skipped: {why}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="cluster-"))
    root.chmod(0o755)  # PostgreSQL's own user reaches its cluster in root / "pg"
    (root / "pg").mkdir()
    network: Network | None = None
    redis: subprocess.Popen[bytes] | None = None
    pgdata: Path | None = None
    try:
        network = Network.up(HOSTS)
        data = network.hosts["data"]
        redis = _start_redis(data, root)
        pgdata = _start_postgres(data, root / "pg")
        env = {
            "DATABASE_URL": f"postgres://postgres@{data.address}:{PG_PORT}/cluster",
            "REDIS_URL": f"redis://{redis_address(data)}:{REDIS_PORT}/0",
            "CLUSTER_HOSTS": json.dumps(
                {
                    "switch": network.switch,
                    "client": network.client_address,
                    "redis": redis_address(data),
                    "hosts": [vars(host) for host in network.hosts.values()],
                }
            ),
        }
        print(
            f"cluster: hosts {', '.join(f'{h.name} {h.address}' for h in network.hosts.values())};"
            f" PostgreSQL on {data.address}, Redis on {redis_address(data)}"
        )
        return subprocess.call(argv, env={**os.environ, **env})
    finally:
        if redis is not None:
            redis.terminate()
            try:
                redis.wait(10)
            except subprocess.TimeoutExpired:
                redis.kill()
        if pgdata is not None:
            _stop_postgres(pgdata)
        if network is not None:
            network.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

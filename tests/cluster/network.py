"""Hosts on one machine: Linux network namespaces joined by veth links to a switch (a bridge in a
namespace of its own), each host with its own address, its own loopback and, for the processes it
runs, its own hostname (a UTS namespace). The test run makes all of it itself and removes it
after; it needs root (`ip netns`), which CI has.

    switch namespace: bridge br0
      ├─ veth ── host "data"     10.X.0.2   PostgreSQL and Redis, bound to that address
      ├─ veth ── host "web"      10.X.0.3
      ├─ veth ── ...
      └─ veth ── the test run's own namespace (10.X.0.1): it reaches the hosts as a client does

Nothing talks over loopback across hosts: a host's 127.0.0.1 is its own. Cutting a host's link
(`Network.cut`) takes its switch port down, as a pulled cable or a partition would: its
processes keep running, and every packet to or from it is lost until `heal`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

# Seconds any `ip` call may take.
IP_TIMEOUT = 15


def missing_requirements() -> str | None:
    """Why this machine cannot make the hosts, or None when it can."""
    if os.geteuid() != 0:
        return "the cluster suite makes network namespaces (ip netns): run it as root (CI does)"
    for program in ("ip", "unshare", "hostname"):
        if shutil.which(program) is None:
            return f"the cluster suite needs `{program}` (Debian: iproute2, util-linux)"
    return None


def ip(*args: str) -> str:
    """Run `ip ARGS`; its output. Raises with `ip`'s own message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@dataclass
class Host:
    """One host: its namespace, its address on the switch, its hostname."""

    name: str
    namespace: str
    address: str
    # The switch's end of its link (taken down to cut the host off).
    port: str

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """`argv` run on this host: in its network namespace, under its own hostname. Each
        wrapper execs the next, so the process started is the program itself (its pid, its
        signals)."""
        return [
            *("ip", "netns", "exec", self.namespace),
            *("unshare", "--uts", "--"),
            *("sh", "-c", 'hostname "$0" && exec "$@"', self.name),
            *argv,
        ]

    def run(self, argv: Sequence[str], *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a short command on this host and wait for it."""
        return subprocess.run(
            self.wrap(argv), capture_output=True, text=True, timeout=timeout, check=False
        )


@dataclass
class Network:
    """The switch, the hosts and the test run's own link, made by `up` and removed by `down`.

    Names carry the test run's pid: two runs on one machine (or a run and what a killed one
    left) never share a namespace.
    """

    hosts: dict[str, Host] = field(default_factory=dict)
    subnet: str = ""
    client_address: str = ""
    _prefix: str = ""
    _namespaces: list[str] = field(default_factory=list)
    _client_link: str = ""

    @classmethod
    def up(cls, names: Sequence[str]) -> Network:
        pid = os.getpid()
        # 10.<200-249>.<0-255>.0/24: one /24 per run, away from the usual 10.0/8 uses.
        subnet = f"10.{200 + pid % 50}.{(pid // 50) % 256}"
        network = cls(subnet=subnet, _prefix=f"as{pid}")
        try:
            network._make(names)
        except BaseException:
            network.down()
            raise
        return network

    @property
    def switch(self) -> str:
        return f"{self._prefix}-switch"

    def _namespace(self, name: str) -> str:
        namespace = f"{self._prefix}-{name}"
        ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
        return namespace

    def _make(self, names: Sequence[str]) -> None:
        switch = self._namespace("switch")
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        for index, name in enumerate(names, start=2):
            namespace = self._namespace(name)
            port = f"p{index}"
            # Made in the host's namespace, its far end moved into the switch's.
            ip("-n", namespace, "link", "add", "eth0", "type", "veth", "peer", "name", port)
            ip("-n", namespace, "link", "set", port, "netns", switch)
            ip("-n", switch, "link", "set", port, "master", "br0", "up")
            address = f"{self.subnet}.{index}"
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            self.hosts[name] = Host(name=name, namespace=namespace, address=address, port=port)
        # The test run's own link: it reaches the hosts as any client on the network would.
        self._client_link = f"{self._prefix}c"[:15]
        self.client_address = f"{self.subnet}.1"
        ip("link", "add", self._client_link, "type", "veth", "peer", "name", "p1", "netns", switch)
        ip("-n", switch, "link", "set", "p1", "master", "br0", "up")
        ip("addr", "add", f"{self.client_address}/24", "dev", self._client_link)
        ip("link", "set", self._client_link, "up")

    def cut(self, host: Host) -> None:
        """Every packet to and from `host` lost, until `heal`; its processes go on running."""
        ip("-n", self.switch, "link", "set", host.port, "down")

    def heal(self, host: Host) -> None:
        ip("-n", self.switch, "link", "set", host.port, "up")

    def cut_route(self, host: Host, address: str) -> None:
        """Every packet from `host` to `address` lost (one server of a host with several
        addresses), until `heal_route`; the rest of the network still answers it. The route
        leads into a link whose other end is down: nothing answers, nothing says so."""
        dead_end = "deadend0"
        if dead_end not in ip("-n", host.namespace, "-o", "link", "show"):
            ip(
                "-n",
                host.namespace,
                "link",
                "add",
                dead_end,
                "type",
                "veth",
                "peer",
                "name",
                "deadend1",
            )
            ip("-n", host.namespace, "link", "set", dead_end, "up")
        ip("-n", host.namespace, "route", "add", f"{address}/32", "dev", dead_end)
        # Its link-layer address known: packets leave and vanish, as in a partition (not an
        # address that fails to resolve, which the kernel reports after 3 s).
        neighbour = ("neigh", "replace", address, "lladdr", "02:00:00:00:00:01")
        ip("-n", host.namespace, *neighbour, "dev", dead_end, "nud", "permanent")

    def heal_route(self, host: Host, address: str) -> None:
        ip("-n", host.namespace, "route", "del", f"{address}/32")

    def down(self) -> None:
        """Remove the namespaces (their links go with them) and the test run's own link."""
        if self._client_link:
            subprocess.run(
                ["ip", "link", "del", self._client_link], capture_output=True, timeout=IP_TIMEOUT
            )
        for namespace in reversed(self._namespaces):
            subprocess.run(
                ["ip", "netns", "del", namespace], capture_output=True, timeout=IP_TIMEOUT
            )
        self._namespaces.clear()

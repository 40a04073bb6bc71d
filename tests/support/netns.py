"""Hosts on one machine: network namespaces (``ip netns``) on a private LAN, for tests that must show
that nothing assumes one host.

The LAN is a bridge in a namespace of its own; each host is a namespace with one veth pair into it
and one address of :data:`SUBNET`. Nothing is added to the machine's own network namespace, and
every name carries this process's id, so that runs side by side do not meet.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

#: The LAN's /24, which exists inside the namespaces only.
SUBNET = "10.77.16"
_CLONE_NEWNET = 0x40000000


def unusable_reason() -> str | None:
    """Why namespaces cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip command for network namespaces"
    probe = f"iq{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns is not usable here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=True)
    return None


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True)


class Lan:
    def __init__(self) -> None:
        self._prefix = f"iq{os.getpid()}"
        self.bridge = f"{self._prefix}-lan"
        self._hosts: dict[str, int] = {}
        _ip("netns", "add", self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")

    def namespace(self, host: str) -> str:
        return f"{self._prefix}-{host}"

    def add_host(self, host: str) -> str:
        """A new host on the LAN; its address."""
        number = len(self._hosts) + 1
        self._hosts[host] = number
        namespace, port = self.namespace(host), f"v{number}"
        _ip("netns", "add", namespace)
        _ip("-n", self.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("-n", self.bridge, "link", "set", port, "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{SUBNET}.{number}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        return self.address(host)

    def address(self, host: str) -> str:
        return f"{SUBNET}.{self._hosts[host]}"

    def command(self, host: str, command: list[str]) -> list[str]:
        """``command`` run on ``host``: in its network namespace."""
        return ["ip", "netns", "exec", self.namespace(host), *command]

    def remove_host(self, host: str) -> None:
        """Take ``host`` off the LAN as a machine that dies: its processes killed, its namespace and
        link gone."""
        namespace = self.namespace(host)
        pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self._hosts.pop(host, None)

    def delete(self) -> None:
        for host in list(self._hosts):
            self.remove_host(host)
        subprocess.run(["ip", "netns", "del", self.bridge], capture_output=True)

    @contextlib.contextmanager
    def entered(self, host: str) -> Iterator[None]:
        """This thread, and the threads and processes it starts meanwhile, on ``host``'s network."""
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as own, open(f"/run/netns/{self.namespace(host)}") as target:
            if libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"cannot enter {host}'s network namespace")
            try:
                yield
            finally:
                if libc.setns(own.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "cannot return to this process's network namespace")

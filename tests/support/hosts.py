"""Separate hosts on one machine: Linux network namespaces on a bridge, each with its own address and hostname.

The root namespace keeps the first address of the subnet (the "server host"); each namespace gets the
next one. Nothing is routed beyond the subnet: the hosts reach the root namespace's address and nothing else.
"""

import ipaddress
import os
import shutil
import subprocess


class HostsUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no `ip`, no permission)."""


class Hosts:
    """`count` namespaces named after this process, on a bridge; removed on exit, whatever happened."""

    def __init__(self, count: int, tag: str | None = None):
        self.tag = tag or str(os.getpid())
        self.bridge = f"wbr{self.tag}"[:15]
        self.names = [f"wt-{self.tag}-{index}" for index in range(count)]
        self.hostnames = [f"host-{chr(ord('a') + index)}" for index in range(count)]
        self._veths = [f"wv{self.tag}{index}"[:15] for index in range(count)]
        subnet = _free_subnet(int(self.tag) if self.tag.isdigit() else hash(self.tag))
        hosts = list(subnet.hosts())
        self.prefix = subnet.prefixlen
        self.gateway = str(hosts[0])
        self.addresses = [str(address) for address in hosts[1 : count + 1]]
        self._made: list[list[str]] = []

    def __enter__(self) -> "Hosts":
        if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
            raise HostsUnavailable("network namespaces need root, iproute2's `ip` and util-linux's `unshare`")
        try:
            self._ip("link", "add", self.bridge, "type", "bridge", undo=["link", "del", self.bridge])
            self._ip("addr", "add", f"{self.gateway}/{self.prefix}", "dev", self.bridge)
            self._ip("link", "set", self.bridge, "up")
            for name, veth, address in zip(self.names, self._veths, self.addresses, strict=True):
                self._ip("netns", "add", name, undo=["netns", "del", name])
                self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
                self._made.append(["link", "del", veth])
                self._ip("link", "set", veth, "master", self.bridge, "up")
                self._ip("-n", name, "addr", "add", f"{address}/{self.prefix}", "dev", "eth0")
                self._ip("-n", name, "link", "set", "eth0", "up")
                self._ip("-n", name, "link", "set", "lo", "up")
        except HostsUnavailable:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for undo in reversed(self._made):
            subprocess.run(["ip", *undo], capture_output=True, timeout=30)
        self._made.clear()

    def command(self, index: int, argv: list[str]) -> list[str]:
        """`argv` run inside host `index`: its network namespace, and a hostname of its own."""
        # unshare --uts: setting the hostname in a UTS namespace of its own leaves the machine's alone.
        set_hostname = 'hostname "$1" && shift && exec "$@"'
        return ["ip", "netns", "exec", self.names[index], "unshare", "--uts", "sh", "-c", set_hostname, "sh"] + [
            self.hostnames[index],
            *argv,
        ]

    def _ip(self, *args: str, undo: list[str] | None = None) -> None:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise HostsUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")
        if undo is not None:
            self._made.append(undo)


def _free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /29 of 10.213.0.0/16 that no address of this machine is in, picked from `seed`."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout
    taken = {ipaddress.ip_interface(field).network for field in used.split() if "/" in field and field[0].isdigit()}
    for offset in range(2048):
        candidate = ipaddress.ip_network(f"10.213.{(seed + offset) % 256}.{8 * (((seed + offset) // 256) % 32)}/29")
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise HostsUnavailable("no free /29 in 10.213.0.0/16")

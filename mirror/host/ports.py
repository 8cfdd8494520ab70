"""Free TCP ports, and who holds a taken one (read from /proc, no external tools)."""

import os
import socket
from pathlib import Path

from ..errors import HostError
from ..model.endpoint import DEBUG_HOST, Endpoint


def port_is_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port in TIME_WAIT from our own previous container is free to take.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def holder(port: int) -> str:
    """'name (pid N)' of the process listening on `port`, or a plain word when unknown."""
    inodes = _listening_inodes(port)
    if not inodes:
        return "an unknown process"
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    # the name only: a command line may carry someone's password
                    return f"{Path(f'/proc/{pid}/comm').read_text().strip()} (pid {pid})"
            except OSError:
                continue
    return "a process this user cannot see"


def free_loopback_endpoint(tries: int = 50) -> Endpoint:
    """A plain-HTTP endpoint on a free loopback port whose debug port is free too.

    distribution exits (log.Fatalf) when its debug listener cannot bind.
    """
    for _ in range(tries):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            endpoint = Endpoint.of("127.0.0.1", sock.getsockname()[1], tls=False)
        if port_is_free(DEBUG_HOST, endpoint.debug_port):
            return endpoint
    raise HostError("no free loopback port pair (port and debug port) for a temporary registry")

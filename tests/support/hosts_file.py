"""A name of the test's own in /etc/hosts for as long as a test needs it.

distribution 2.8's azure driver dials `https://<account>.blob.<realm>`, and
nothing here resolves `*.localhost` by itself: without a line in /etc/hosts
the name would go to the machine's DNS server, which a test must never ask.
The mirror's containers (host networking) get a copy of this host's
/etc/hosts when they start, so the line must be there before they do.

Several test processes may share the host: each adds a line for a name of
its own (a random account), under a lock, and removes that line only. The
file is rewritten in place, not replaced: it may be a bind mount.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

HOSTS = Path("/etc/hosts")
LOCK = Path(tempfile.gettempdir()) / "dmtest-etc-hosts.lock"   # shared by every test process
MARK = "# dmtest pid "   # + the pid of the test process: a killed one's lines go with the next change


def _alive(line: str) -> bool:
    pid = line.partition(MARK)[2].strip()
    return not pid.isdigit() or Path(f"/proc/{pid}").exists()


def _rewrite(change) -> None:
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(HOSTS, "r+") as hosts:
            lines = change([line for line in hosts.read().splitlines() if _alive(line)])
            hosts.seek(0)
            hosts.write("".join(f"{line}\n" for line in lines))
            hosts.truncate()


@contextmanager
def resolving(name: str, address: str = "127.0.0.1"):
    """`name` resolves to `address` (through /etc/hosts) inside the block."""
    line = f"{address} {name} {MARK}{os.getpid()}"

    def add(lines):
        # Never a second answer for the name: the test would not know which one is used.
        assert not [x for x in lines if name in x.split("#")[0].split()[1:]], f"{name} already in {HOSTS}"
        return [*lines, line]

    _rewrite(add)
    try:
        assert socket.gethostbyname(name) == address
        yield name
    finally:
        _rewrite(lambda lines: [x for x in lines if x != line])

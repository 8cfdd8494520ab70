"""What this host has of the clients in mirror.client_table: programs on the search path,
configuration directories, and the files a client's checks read (registries.conf and its
drop-ins). The table says what to look for and judges what was seen; looking is here, so
the table stays pure.
"""

from __future__ import annotations

import shutil

from ..client_table import HostView, look_for


def look(paths) -> HostView:
    """Everything client_table.survey(paths, ...) needs to know about this host."""
    wanted = look_for(paths)
    seen = {}
    for directory, pattern in wanted.files:
        for file in sorted(directory.glob(pattern)):
            try:
                seen[file] = file.read_bytes()
            except FileNotFoundError:
                continue            # gone since the listing: as if absent
            except OSError as err:  # unreadable: a check says so (or passes it by)
                seen[file] = err
    return HostView(
        programs=frozenset(p for p in wanted.programs if shutil.which(p, path=paths.search_path)),
        directories=frozenset(d for d in wanted.directories if d.is_dir()),
        seen=seen)

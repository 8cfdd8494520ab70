"""Who wrote a client file, and how to take it back: the header of the client
files templates/ renders (containerd's hosts.toml, the containers/image drop-in).

The same templates are written on a host (`make docker-mirror-clients`, and
`make docker-mirror-distribute`, whose playbook writes the same bytes) and onto
Kubernetes nodes by the DaemonSet of `make docker-mirror-k8s`, where there is
no `make` and no checkout: each caller says which, so the header names what
is true where the file lands.

The host's texts never change: clients-undo removes a file only while it holds
the bytes recorded when it was written (host/client_files.py), and a run of a
newer version over files an older one wrote compares against them too; a new
host header would make undo take those files for ones the user edited.
tests/test_client_origin.py pins them. Pure: strings only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """`by`: who wrote the file ("Written by {by}..."); `undo`: one sentence on how to
    take it back ("": none said). A "\\n" in either starts a new comment line."""

    by: str
    undo: str = ""


# A host's registries.conf.d drop-in (make docker-mirror-clients).
HOST = Origin("docker-mirror (make docker-mirror-clients)",
              "'make docker-mirror-clients-undo' removes this file.")
# A host's certs.d/<registry>/hosts.toml (said that way since the playbook came).
HOST_HOSTS_TOML = Origin("docker-mirror (make docker-mirror-clients or docker-mirror-distribute)")


def cluster(daemonset: str, namespace: str) -> Origin:
    """A node's file, copied there by the DaemonSet `daemonset` of `namespace` (both
    checked Kubernetes names: no line break or comment character can come in)."""
    return Origin(f"the docker-mirror DaemonSet {daemonset}\n(namespace {namespace})",
                  "Deleting the DaemonSet leaves this file on the node: delete the file\n"
                  "to take it back (docs/kubernetes.md, Nodes).")

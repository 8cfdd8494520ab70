"""Ansible filter plugin: `docker_mirror_image`, the mirror's image rewriting.

    image: "{{ 'minio/minio:RELEASE.x' | docker_mirror_image(docker_mirror_address,
                                                             docker_mirror_ports,
                                                             use_docker_mirror) }}"

The variables come from extra_vars.yaml (`make extra_vars.yaml`). The filter
does not probe the mirror: it runs on the controller, not where the image is
pulled, so a playbook that wants the fallback for a dead mirror probes it on
the target (e.g. the uri module on `docker_mirror_urls[...]/v2/`) and passes
the answer as the third argument.

Ansible loads this file by path, without the project on sys.path; the plugin
lives in the project tree, so it puts the tree's root on sys.path and uses
mirror.model.images itself, keeping the reference grammar in one place.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mirror.model.images import mirror_reference  # noqa: E402 -- needs the path above


def docker_mirror_image(reference, mirror_address, ports_map, enabled=True):
    """`reference` through the mirror of its registry; unchanged when not mirrored or disabled."""
    return mirror_reference(reference, mirror_address, ports_map, enabled)


class FilterModule:
    def filters(self):
        return {"docker_mirror_image": docker_mirror_image}

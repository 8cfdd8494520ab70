"""Ansible filter plugins: `docker_mirror_image`, the mirror's image rewriting, and
`docker_mirror_client_merge`, our entries merged into a client file the user owns.

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

`docker_mirror_client_merge` (ansible/docker-mirror-clients-more.yml) runs
mirror.client_merge, the checked merge `make docker-mirror-clients` uses for
BuildKit's buildkitd.toml and k3s/RKE2's registries.yaml, on the controller:
the same input gives the same bytes on a fleet host as on the mirror's host.
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


# The clients whose file the merge edits, and mirror.client_merge's function for each.
_MERGED = {"buildkit": "buildkit", "k3s": "k3s", "rke2": "k3s"}


def _hosts(mirror_address, ports_map, tls, custom_registry):
    """HostMirror for every mirrored registry, in Settings.upstreams' order (the upstreams'
    table, the custom one last): extra_vars.yaml holds docker_mirror_ports sorted by name, and
    BuildKit's tables are written in this order."""
    from mirror.config.settings import UPSTREAMS
    from mirror.model.client_config import HostMirror, registry_server

    scheme = "https" if tls else "http"
    known = tuple(registry for _, _, registry, _ in UPSTREAMS if registry)
    order = sorted(ports_map, key=lambda r: (r == custom_registry, known.index(r) if r in known else len(known)))
    return tuple(HostMirror(r, registry_server(r), f"{scheme}://{mirror_address}:{ports_map[r]}",
                            f"{mirror_address}:{ports_map[r]}", bool(tls)) for r in order)


def docker_mirror_client_merge(files, contents, mirror_address, ports_map, tls=False, ca_dir="",
                               credential=None, custom_registry=""):
    """Each of `files` ({client: buildkit|k3s|rke2, path}) with our entries merged in.

    `contents`: slurp's base64 content of each file, None where it is absent. `ca_dir`: the
    docker_certs_dir holding ADDRESS:PORT/ca.crt ('' when no CA is handed out); `credential`:
    [username, password] for k3s' configs.auth, or empty. One dict per file: `text` (what to
    write), `exists`, `changed`, `write` (our entries are in it: write it, or keep its mode), `secret`
    (holds the credential: 0600), `notes`, and `error` (why it is left untouched, '' if not).
    The text is what `make docker-mirror-clients` writes from the same file: its state makes
    a second run there merge into the original again; here the registries already pointing
    at the mirror are left out of the merge, which gives the same bytes.
    """
    import base64
    from pathlib import Path

    from mirror import client_merge
    from mirror.errors import ClientFileError

    hosts = _hosts(mirror_address, ports_map, tls, custom_registry)
    ca = {h.address: str(Path(ca_dir) / h.address / "ca.crt") for h in hosts if h.tls} if ca_dir else {}
    cred = tuple(credential) if credential else None
    out = []
    for entry, content in zip(files, contents):
        client, path = entry["client"], entry["path"]
        result = {"client": client, "path": path, "exists": content is not None, "text": "",
                  "changed": False, "write": False,
                  "secret": _MERGED[client] == "k3s" and cred is not None, "notes": [], "error": ""}
        try:
            try:
                text = None if content is None else base64.b64decode(content).decode("utf-8")
            except UnicodeDecodeError:
                raise ClientFileError(f"{path}: not UTF-8 text; left untouched") from None
            already = client_merge.already_ours(_MERGED[client], text, hosts)
            rest = tuple(h for h in hosts if h.registry not in already)
            if _MERGED[client] == "buildkit":
                merged = client_merge.buildkit(text, rest, ca, path)
            else:
                merged = client_merge.k3s(text, rest, ca, cred, path)
        except ClientFileError as err:
            result["error"] = str(err)
        else:
            result.update(text=merged.text, changed=text is None or merged.text != text,
                          write=bool(merged.inserted or already), notes=merged.notes)
        out.append(result)
    return out


class FilterModule:
    def filters(self):
        return {"docker_mirror_image": docker_mirror_image,
                "docker_mirror_client_merge": docker_mirror_client_merge}

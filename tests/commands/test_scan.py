"""`--scan`: image references found in .config, Kconfig defaults and YAML-ish files."""

import textwrap
from pathlib import Path

import pytest

from mirror.services import scan
from mirror.config import dotconfig
from mirror.config.kconfig import ROOT

DIGEST = "sha256:" + "ab" * 32


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def tree(tmp_path):
    """A project root (kconfig/, templates/, ansible/) and a workflow directory."""
    root = tmp_path / "project"
    write(root / "kconfig/Kconfig.apps", """
        config APP_IMAGE
        \tstring "App image"
        \tdefault "quay.io/acme/app:1.0"
        \tdefault "quay.io/acme/app:2.0" if NEWER
        \thelp
        \t  The help may say anything, even:
        \t  default "Help_Text_Is_Not_An_Image"
        \t  config FAKE_IMAGE

        config APP_ENABLE_IMAGE
        \tbool "A bool, not a reference"
        \tdefault y

        config TAG_NOT_IMAGE_NAME
        \tstring "Wrong suffix"
        \tdefault "busybox:1"

        config PROBED_IMAGE
        \tstring "From a probe: no literal"
        \tdefault "$(shell,echo x)"

        menu "Nested"
        config SIDECAR_IMAGE
        \tstring
        \tdefault "nginx:1.27"
        endmenu
        """)
    write(root / "templates/app.yml.j2", """
        {# a Jinja comment #}
        services:
          app:
            image: "{{ 'minio/minio:RELEASE.x' | docker_mirror_image(docker_mirror_address, docker_mirror_ports) }}"
          other:
            image: "{{ other_image }}"
          templated_tag:
            image: minio/minio:{{ minio_tag }}
        """)
    write(root / "ansible/roles/db/defaults/main.yml", """
        db_image: 'milvusdb/milvus:v2.5.10'
        """)
    work = tmp_path / "workflows"
    write(work / "compose.yml", """
        services:
          web:
            image: nginx   # the Hub's nginx, :latest
          web2:
            image: 'docker.io/library/nginx:latest'
          "image": "index.docker.io/library/nginx"
        """)
    write(work / "deep/er/k8s.yaml", """
        spec:
          containers:
            - name: x
              image: "ghcr.io/vllm-project/production-stack/router:v1"
            - container_image: quay.io/coreos/etcd:v3.5.0 # pinned
            # image: commented/out:1
              sidecar_image: "quay.io/acme/sidecar@%s"
              image: ${REGISTRY}/app:1
              use_image: true
              base-image: 5
              image:
                repository: not/scanned
              image: UPPER/Case:1
              image: "nginx:bad tag"
        """ % DIGEST)
    write(work / "notes.txt", "image: txt/files-are-not-scanned:1\n")
    write(work / ".git/config.yml", "image: git/internals-are-skipped:1\n")
    config = dotconfig.parse(textwrap.dedent("""\
        CONFIG_DOCKER_MIRROR_REGISTRY_IMAGE="registry:2"
        CONFIG_DOCKER_MIRROR_IMAGE_MINIO=y
        CONFIG_BROKEN_IMAGE="Not/Valid"
        CONFIG_EMPTY_IMAGE=""
        """), str(tmp_path / ".config"))
    return root, work, config


def test_scan_finds_normalises_deduplicates_and_reports_bad_references(tree, tmp_path):
    root, work, config = tree
    logged = []
    found = scan.scan(config, [str(work)], root=root, log=logged.append)
    by_ref = dict(found)
    cfg = str(tmp_path / ".config")
    assert found[0] == ("docker.io/library/registry:2", f"{cfg}:1")
    assert by_ref == {
        "docker.io/library/registry:2": f"{cfg}:1",
        "quay.io/acme/app:1.0": "kconfig/Kconfig.apps:3",
        "docker.io/library/nginx:1.27": "kconfig/Kconfig.apps:25",
        "docker.io/minio/minio:RELEASE.x": "templates/app.yml.j2:4",
        "docker.io/milvusdb/milvus:v2.5.10": "ansible/roles/db/defaults/main.yml:1",
        # nginx three ways, one entry: the first source is kept
        "docker.io/library/nginx:latest": f"{work}/compose.yml:3",
        "ghcr.io/vllm-project/production-stack/router:v1": f"{work}/deep/er/k8s.yaml:4",
        "quay.io/coreos/etcd:v3.5.0": f"{work}/deep/er/k8s.yaml:5",
        f"quay.io/acme/sidecar@{DIGEST}": f"{work}/deep/er/k8s.yaml:7",
    }
    assert len(found) == len(by_ref)
    # Invalid literals are reported with their file:line, and the scan went on.
    assert len(logged) == 3, logged
    assert logged[0].startswith(f"skipped: {cfg}:3: invalid image reference 'Not/Valid'")
    assert logged[1].startswith(f"skipped: {work}/deep/er/k8s.yaml:13: invalid image reference 'UPPER/Case:1'")
    assert logged[2].startswith(f"skipped: {work}/deep/er/k8s.yaml:14: invalid image reference 'nginx:bad tag'")


def test_listing_is_one_reference_per_line_with_its_source_after_a_tab(tree):
    root, work, config = tree
    found = scan.scan(config, [str(work)], root=root, log=lambda _: None)
    lines = scan.format_listing(found).splitlines()
    assert len(lines) == len(found)
    assert lines[0].split("\t") == list(found[0])


def test_literal_values(tree):
    assert scan.literal_value('"a:1" # c') == "a:1"
    assert scan.literal_value("'it''s'") == "it's"
    assert scan.literal_value("a#b") == "a#b"          # '#' inside a word is content
    assert scan.literal_value('"true"') == "true"      # quoted: a string after all
    for not_literal in ("", "true", "~", "5", "|", ">-", "*alias", "[a, b]", '"unterminated',
                        "{{ x }}", "'{{ x }}'", "a:{{ t }}", "${X}", "{{ 'a' | lower }}"):
        assert scan.literal_value(not_literal) is None, not_literal
    assert scan.literal_value("{{ 'a/b:1' }}") == "a/b:1"


def test_missing_directory_is_an_error_not_an_empty_scan(tree, tmp_path):
    root, _, config = tree
    with pytest.raises(scan.ScanError, match="no such directory"):
        scan.scan(config, [str(tmp_path / "typo")], root=root)


def test_this_project_scans_clean():
    """The real tree: the registry image's Kconfig default, and no invalid reference."""
    found, errors = scan.find(dotconfig.parse(""), [], root=ROOT)
    assert errors == []
    assert ("docker.io/library/registry:2", "kconfig/Kconfig.docker-mirror:100") in found or \
        any(ref == "docker.io/library/registry:2" for ref, _ in found)

"""htpasswd on, warming on: the refresh, `pull` and `pull --archive` use the product's
own user (config/mirror-credential, 0600) against a real authenticated mirror; anyone
else still gets 401, and the user's own htpasswd file is never written to."""

import os
import stat

import pytest
import requests

from mirror.host import credential
from mirror.host.layout import Layout
from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry, push_image


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


def test_warming_and_archiving_through_an_authenticated_mirror(tmp_path, make_mirror):
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{credential._bcrypt('wonderland')}\n")
    before = users.read_text()
    listing = tmp_path / "images.txt"
    listing.write_text("kept:1\n")
    with UpstreamRegistry(tmp_path / "hub") as hub:
        push_image(hub.url, "library/kept", "1")
        m = make_mirror(hub.url, DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                        DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing))
        assert requests.get(f"{m.url()}/v2/", timeout=5).status_code == 401
        assert requests.get(f"{m.url()}/v2/", auth=("alice", "wonderland"), timeout=5).status_code == 200

        result = m.run("pull", "--archive", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "HTTP 401" not in result.stdout
        assert list((m.root / "images/archives").glob("*.tar"))
        status = m.run("status", check=False)
        assert status.returncode == 0 and "HTTP 401" not in status.stdout, status.stdout + status.stderr

    layout = Layout.of(m.settings)
    kept = credential.read(layout)
    assert kept is not None and kept.password not in result.stdout + result.stderr
    for path in (credential.credential_path(layout), credential.merged_htpasswd_path(layout)):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    merged = credential.merged_htpasswd_path(layout).read_text()
    assert merged.startswith(before) and merged.count("\n") == 2 and f"{credential.USER}:$2b$" in merged
    assert users.read_text() == before
    # Unchanged user file, kept credential: the merged file (and so the containers) stay as they are.
    credential.ensure(m.settings, layout)
    assert credential.merged_htpasswd_path(layout).read_text() == merged

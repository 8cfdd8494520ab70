"""The lifecycle counts clients' pulls only, survives a host clock set back, and one damaged
entry of the store fails nothing else: real mirrors, real upstream registries, real docker pulls.

- A moving tag, retagged upstream three times with a warm after each, then a collection with
  the defaults (K=1 previous digest, 30 days): the digest left behind beyond K goes with its
  own layer, unless a client pulled it (by digest) since; that one stays 30 days from its pull.
- A cursor saved ahead of the clock (a fast clock, corrected) hides no pull.
- A manifest naming `sha256:../../...`, cached through a client's pull from a hostile upstream:
  status, metrics, the page and the collection go on, status names it, the collection removes it.
"""

import json
import time

import docker.errors
import pytest
import requests

from mirror.host import storage, usage
from mirror.model import manifests
from mirror.model.retention import DAY, ShiftedClock
from mirror.net import registry_api as regapi
from mirror.services import lifecycle, observe, observe_serve, status, warm
from support.configs import image_list, with_status_page
from support.hostile_upstream import HostileUpstream
from support.mirrors import docker_pull, pulls_offline
from support.upstream import make_layer, push_image

QUIET = dict(log=lambda _: None)


def own_layer(hub, repository, digest):
    """The digest of an image's last layer (the one no other version shares)."""
    return manifests.blobs_of(regapi.RegistryAPI(hub.url).get_manifest(repository, digest).json)[-1]["digest"]


def test_a_moving_tag_keeps_current_and_k_previous_with_the_defaults(tmp_path, hub, make_mirror,
                                                                     docker_client):
    base = make_layer(300_000, "moving-base")
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "team/app:latest",
                                                                         "team/api:latest"))
    assert m.settings.lifecycle.keep_previous == 1 and m.settings.lifecycle.keep_unused_days == 30
    app, api = [], []
    for n in range(3):   # retagged upstream three times, a refresh's warm after each
        app.append(push_image(hub.url, "team/app", "latest", layers=[base, make_layer(200_000, f"app-{n}")]))
        api.append(push_image(hub.url, "team/api", "latest", layers=[base, make_layer(200_000, f"api-{n}")]))
        assert warm.warm(m.settings, client=docker_client, gc=False, **QUIET) == []
    # The warm's own pulls are no use: nothing of team/app was ever pulled by a client.
    lifecycle.ingest(m.settings, docker_client)
    used = usage.read_usage(m.root, "dockerhub").used
    assert not [key for key in used if key.startswith("team/")], used
    # A client pulls team/api's oldest digest by digest (a rollback pinned in a deployment).
    assert docker_pull(docker_client, m, f"team/api@{api[0]}") == api[0]
    rows = {(r["repository"], r["digest"]): r for r in lifecycle.image_rows(m.settings, docker_client)["dockerhub"]}
    assert rows["team/app", app[0]]["drops"] == "at the next collection"
    assert "left behind" in rows["team/app", app[0]]["drop_reason"]
    assert rows["team/api", api[0]]["drops"] > rows["team/api", api[0]]["last_pulled"]   # 30 days on

    gone_layer = storage.blob_data(m.storage(), own_layer(hub, "team/app", app[0]))
    assert gone_layer.is_file()
    lines = []
    done = lifecycle.collect(m.settings, docker_client, log=lines.append)   # make docker-mirror-gc
    assert [(e.image.repository, e.image.digest) for e in done.plan.evictions] == [("team/app", app[0])], lines
    assert not gone_layer.exists()                                          # its own layer left the disk
    assert storage.blob_data(m.storage(), own_layer(hub, "team/api", api[0])).is_file()
    assert done.disk_before["dockerhub"] - done.disk_after["dockerhub"] >= 200_000
    hub.stop()
    try:   # offline: the newest and the K previous, and the digest a client pulled
        assert pulls_offline(m, "team/app", "latest") == app[2]
        for digest in app[1:] + api:
            assert pulls_offline(m, digest in app and "team/app" or "team/api", digest) == digest
    finally:
        hub.start()
    # Unused for 30 days, the client's old digest goes too; pinned ones never.
    clock = ShiftedClock()
    clock.advance(31)
    later = lifecycle.collect(m.settings, docker_client, clock=clock, **QUIET)
    assert [(e.image.repository, e.image.digest) for e in later.plan.evictions] == [("team/api", api[0])]
    assert set(storage.revisions(m.storage(), "team/app")) == set(app[1:])


def test_a_moving_tag_pulled_ad_hoc_keeps_current_and_k_previous(tmp_path, hub, make_mirror, docker_client):
    """Not an image to keep warm (no pins): the tag's history in the store says what it left behind."""
    m = make_mirror(hub.url)
    pushed = []
    for n in range(3):   # retagged upstream, a client pulls the tag after each
        pushed.append(push_image(hub.url, "team/tool", "latest", layers=[make_layer(150_000, f"tool-{n}")]))
        assert docker_pull(docker_client, m, "team/tool:latest") == pushed[-1]
    assert set(storage.tag_history(m.storage(), "team/tool", "latest")) == set(pushed)
    done = lifecycle.collect(m.settings, docker_client, **QUIET)
    assert [e.image.digest for e in done.plan.evictions] == [pushed[0]]
    assert "left behind" in done.plan.evictions[0].reason
    assert set(storage.revisions(m.storage(), "team/tool")) == set(pushed[1:])


def test_a_cursor_ahead_of_the_clock_hides_no_pull(tmp_path, hub, make_mirror, docker_client):
    digest = push_image(hub.url, "library/daily", "1", layers=[make_layer(150_000, "clock")])
    m = make_mirror(hub.url)
    docker_pull(docker_client, m, "library/daily:1")
    lifecycle.ingest(m.settings, docker_client)
    # The host clock ran two days fast while the log was read, then was set right.
    ahead = time.time() + 2 * DAY
    usage.write_usage(m.root, "dockerhub", usage.Usage(int(ahead * 1e9), {"library/daily:1": ahead}))
    before = time.time()
    docker_pull(docker_client, m, "library/daily:1")
    warnings = []
    assert lifecycle.ingest(m.settings, docker_client, log=warnings.append)["dockerhub"] >= 1
    assert any("ahead of the clock" in w for w in warnings), warnings
    record = usage.read_usage(m.root, "dockerhub")
    assert before - 5 <= record.used[f"library/daily@{digest}"] <= time.time()   # the pull is seen
    assert record.cursor_ns <= time.time_ns()                                    # not ahead any more
    assert lifecycle.ingest(m.settings, docker_client, log=warnings.append) == {"dockerhub": 0}
    # Moved forward 29 days, nothing goes; 31, the image goes. Moved back three days (last), every
    # last use is in the clock's future: it counts as now (said), and nothing goes.
    for days, dropped in ((29, []), (31, ["library/daily"]), (-3, [])):
        clock = ShiftedClock()
        clock.advance(days)
        lines = []
        done = lifecycle.collect(m.settings, docker_client, clock=clock, dry_run=True, log=lines.append)
        assert [e.image.repository for e in done.plan.evictions] == dropped, (days, lines)
        if days < 0:
            assert any("ahead of the clock" in line for line in lines), lines


def test_a_damaged_manifest_fails_only_itself(tmp_path, hub, make_mirror, docker_client):
    good = push_image(hub.url, "library/good", "1", layers=[make_layer(200_000, "good")])
    with HostileUpstream(hub.url, "evil/app") as hostile:
        m = make_mirror(hostile.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "library/good:1"))
        said = []
        assert warm.warm(m.settings, client=docker_client, gc=False, log=said.append) == [], said
        # A client pulls from the hostile upstream through the mirror: the pull fails, and
        # distribution has cached the manifest on the way.
        with pytest.raises(docker.errors.DockerException):
            docker_pull(docker_client, m, "evil/app:latest")
        assert hostile.digest in storage.revisions(m.storage(), "evil/app"), hostile.requests

        doc = status.gather(m.settings, docker_client, headroom=False)
        [upstream] = doc["upstreams"]
        assert status.exit_code(doc) == 0
        assert [(d["repository"], d["name"], d["kind"]) for d in upstream["damaged"]] == \
            [("evil/app", hostile.digest, "manifest")]
        assert "not a digest" in upstream["damaged"][0]["reason"]
        assert [i["repository"] for i in upstream["images"]] == ["library/good"]
        assert [c["repository"] for c in upstream["cached"]] == ["library/good"]
        text = status.format_text(doc)
        assert "damaged" in text and f"evil/app@{hostile.digest}" in text
        shown = m.run("status", "--json", check=False)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["upstreams"][0]["damaged"][0]["name"] == hostile.digest

        # The metrics and the page answer, and skip it.
        settings = with_status_page(m.settings)
        metrics = observe.exposition(observe.registry(settings, lambda: docker_client,
                                                      observe.Probes(settings, ttl=3600))).decode()
        assert 'docker_mirror_images{upstream="dockerhub"} 1.0' in metrics
        assert 'docker_mirror_damaged_entries{upstream="dockerhub"} 1.0' in metrics
        server = observe_serve.make_server(settings)
        import threading
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for path in ("/", "/metrics"):
                answer = requests.get(f"http://127.0.0.1:{settings.observe.port}{path}", timeout=30)
                assert answer.status_code == 200, (path, answer.text[:300])
        finally:
            server.shutdown()
            server.server_close()

        # The collection names it, removes it, and its blobs go; the good image stays whole.
        dry = []
        lifecycle.collect(m.settings, docker_client, dry_run=True, log=dry.append)
        assert any("damaged" in line and hostile.digest in line for line in dry), dry
        manifest_blob = storage.blob_data(m.storage(), hostile.digest)
        assert manifest_blob.is_file()
        lines = []
        done = lifecycle.collect(m.settings, docker_client, log=lines.append)
        assert not done.plan.evictions and [d.name for d in done.damaged] == [hostile.digest]
        assert storage.revisions(m.storage(), "evil/app") == []
        assert not manifest_blob.exists(), lines
        assert status.gather(m.settings, docker_client, headroom=False)["upstreams"][0]["damaged"] == []
        assert pulls_offline(m, "library/good", "1") == good

"""Image references: Docker's grammar and normalisation, and the pure rewrite onto mirror ports."""

import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from mirror.model.images import InvalidMirror, InvalidReference, mirror_reference, normalize, parse, rewrite
from support.references import references

D = "sha256:" + "ab" * 32
D512 = "sha512:" + "cd" * 64

NORMALISED = [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.25", "docker.io/library/nginx:1.25"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
    ("docker.io/library/nginx", "docker.io/library/nginx:latest"),
    ("minio/minio:RELEASE.2024-01-01T00-00-00Z", "docker.io/minio/minio:RELEASE.2024-01-01T00-00-00Z"),
    ("ghcr.io/vllm-project/production-stack/router:latest",
     "ghcr.io/vllm-project/production-stack/router:latest"),
    ("quay.io/coreos/etcd:v3.5.5", "quay.io/coreos/etcd:v3.5.5"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000/app:dev"),
    ("[::1]:5000/app", "[::1]:5000/app:latest"),
    ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest"),
    # a first component with an uppercase letter can only be a host (Docker's rule)
    ("Example/app", "Example/app:latest"),
    # no '/' after it: a single name, so the port-looking part is a tag
    ("localhost:5000", "docker.io/library/localhost:5000"),
    (f"nginx@{D}", f"docker.io/library/nginx@{D}"),
    (f"nginx:1.25@{D}", f"docker.io/library/nginx:1.25@{D}"),
    (f"quay.io/coreos/etcd@{D512}", f"quay.io/coreos/etcd@{D512}"),
    ("a__b/c--d/e.f_g:Tag_1.x-y", "docker.io/a__b/c--d/e.f_g:Tag_1.x-y"),
    ("x:" + "t" * 128, "docker.io/library/x:" + "t" * 128),
    ("a" * 247, "docker.io/library/" + "a" * 247 + ":latest"),  # 255 with library/
]


@pytest.mark.parametrize("reference, expected", NORMALISED)
def test_normalise(reference, expected):
    assert normalize(reference) == expected
    assert normalize(expected) == expected


def test_parsed_parts():
    ref = parse(f"index.docker.io/nginx:1.25@{D}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == ("docker.io", "library/nginx", "1.25", D)
    assert ref.reference == D  # a pinned digest wins over the tag when asking the registry
    assert parse("ghcr.io/a/b").reference == "latest"


INVALID = [
    ("", "empty"),
    (" nginx", "white space"),
    ("Nginx", "must be lowercase"),
    ("library/Nginx:1", "must be lowercase"),
    ("ghcr.io/Org/app", "must be lowercase"),
    ("nginx:", "tag must be"),
    ("nginx:.hidden", "tag must be"),
    ("nginx:" + "t" * 129, "tag must be"),
    ("nginx:tag\u00e9", "tag must be"),  # Go's \w is ASCII; Python's would take é
    (":latest", "no repository name"),
    ("a//b", "empty path component"),
    ("a/b/", "empty path component"),
    ("/a", "empty path component"),
    ("ghcr.io/", "empty path component"),
    ("a/-b", "path component '-b'"),
    ("a/b_", "path component 'b_'"),
    ("a/b___c", "path component 'b___c'"),
    ("a b", "path component 'a b'"),
    ("nginx@", "digest must be"),
    ("nginx@sha256:abc", "digest must be"),
    ("nginx@sha256:" + "AB" * 32, "64 lowercase hex"),
    ("nginx@sha256:" + "ab" * 33, "64 lowercase hex"),
    ("nginx@md5:" + "ab" * 16, "unsupported digest algorithm 'md5'"),
    ("nginx@" + "ab" * 32, "digest must be"),
    ("ab" * 32, "image ID"),
    ("bad!/app", "path component 'bad!'"),
    # '.' makes the first component a host, and '_' is no host character.
    # Docker's own regexp would read it as a host-less path; we refuse it.
    ("bad_host.com/app", "bad registry host 'bad_host.com'"),
    ("-bad.com/app", "bad registry host '-bad.com'"),
    ("a" * 248, "256 characters"),
    ("ghcr.io/" + "/".join(["a" * 50] * 5) + "/abcdef", "is 261 characters"),
]


@pytest.mark.parametrize("reference, why", INVALID)
def test_invalid_references_name_the_value_and_the_reason(reference, why):
    with pytest.raises(InvalidReference) as caught:
        parse(reference)
    message = str(caught.value)
    assert repr(reference) in message and why in message, message
    assert caught.value.exit_code == 2


def test_non_string_is_refused():
    with pytest.raises(InvalidReference, match="must be a string, not NoneType"):
        parse(None)


def test_the_length_limit_is_on_the_path_not_the_host():
    # current distribution/reference: a long host does not count, so a valid
    # reference stays valid once rewritten onto a longer mirror host
    host = "m" * 60 + ".example.com"
    path = "p" * 255
    assert parse(f"{host}/{path}").repository == path
    assert parse(rewrite(path[:247], host, {"docker.io": 5000})).repository == "library/" + path[:247]


# ------------------------------------------------------------------ rewrite

PORTS = {"docker.io": 5000, "ghcr.io": 5001, "quay.io": 5002, "registry.k8s.io": 5003}
H = "192.0.2.10"

REWRITES = [
    ("minio/minio:RELEASE.x", f"{H}:5000/minio/minio:RELEASE.x"),
    ("nginx", f"{H}:5000/library/nginx:latest"),
    ("docker.io/library/nginx:1.25", f"{H}:5000/library/nginx:1.25"),
    ("index.docker.io/vllm/vllm-openai", f"{H}:5000/vllm/vllm-openai:latest"),
    ("ghcr.io/vllm-project/production-stack/router:latest",
     f"{H}:5001/vllm-project/production-stack/router:latest"),
    ("quay.io/coreos/etcd:v3.5.5", f"{H}:5002/coreos/etcd:v3.5.5"),
    ("registry.k8s.io/pause:3.9", f"{H}:5003/pause:3.9"),
    (f"nginx@{D}", f"{H}:5000/library/nginx@{D}"),
    (f"quay.io/coreos/etcd:v3.5.5@{D}", f"{H}:5002/coreos/etcd:v3.5.5@{D}"),
    # unmirrored registries: the caller's own string, not its normalised form
    ("example.com/team/app", "example.com/team/app"),
    ("localhost:5000/app", "localhost:5000/app"),
    (f"gcr.io/distroless/static@{D}", f"gcr.io/distroless/static@{D}"),
    # already rewritten: its registry is the mirror itself, so it stays
    (f"{H}:5000/library/nginx:latest", f"{H}:5000/library/nginx:latest"),
]


@pytest.mark.parametrize("reference, expected", REWRITES)
def test_rewrite(reference, expected):
    assert rewrite(reference, H, PORTS) == expected


def test_namespaces_keep_same_named_images_apart():
    # the old design's bug: both became localhost:5000/vllm-openai
    a = rewrite("vllm/vllm-openai:latest", "localhost", PORTS)
    b = rewrite("lmcache/vllm-openai:latest", "localhost", PORTS)
    assert (a, b) == ("localhost:5000/vllm/vllm-openai:latest", "localhost:5000/lmcache/vllm-openai:latest")
    # and quay.io/ghcr.io never land on the Docker Hub port
    assert rewrite("quay.io/x/y", "localhost", PORTS) != rewrite("x/y", "localhost", PORTS)
    assert rewrite("ghcr.io/x/y", "localhost", PORTS) != rewrite("x/y", "localhost", PORTS)


def test_custom_registry_with_a_port():
    ports = {**PORTS, "registry.example.com:8443": 5004}
    assert rewrite("registry.example.com:8443/team/app:1", H, ports) == f"{H}:5004/team/app:1"


@pytest.mark.parametrize("host, expected", [("::1", "[::1]"), ("[fd00::5]", "[fd00::5]"),
                                            ("mirror.lan", "mirror.lan")])
def test_mirror_host_forms(host, expected):
    assert rewrite("nginx", host, PORTS) == f"{expected}:5000/library/nginx:latest"


@pytest.mark.parametrize("host", ["mirror.lan:5000", "[::1]:5000", "", "bad host", "http://x"])
def test_bad_mirror_host_is_refused(host):
    with pytest.raises(InvalidMirror, match="mirror address"):
        rewrite("nginx", host, PORTS)


@pytest.mark.parametrize("ports, why", [({"docker.io": 0}, "from 1 to 65535"),
                                        ({"docker.io": "http"}, "from 1 to 65535"),
                                        ({"docker.io": True}, "from 1 to 65535"),
                                        ({"docker.io": 5000, "ghcr.io": 5000}, "its own port")])
def test_bad_port_maps_are_refused(ports, why):
    with pytest.raises(InvalidMirror, match=why):
        rewrite("ghcr.io/a/b", H, ports)


def test_port_as_text_from_templating():
    assert rewrite("nginx", H, {"docker.io": "5000"}) == f"{H}:5000/library/nginx:latest"


def test_invalid_reference_raises_even_for_an_unmirrored_registry():
    with pytest.raises(InvalidReference, match="Example.com/App"):
        rewrite("Example.com/App", H, PORTS)


@pytest.mark.parametrize("enabled", [False, "false", "no", 0])
def test_filter_disabled_returns_the_reference_but_still_validates(enabled):
    assert mirror_reference("nginx", H, PORTS, enabled) == "nginx"
    with pytest.raises(InvalidReference):
        mirror_reference("NGINX", H, PORTS, enabled)


@pytest.mark.parametrize("enabled", [True, "true", "yes", 1])
def test_filter_enabled(enabled):
    assert mirror_reference("nginx", H, PORTS, enabled) == f"{H}:5000/library/nginx:latest"


# ------------------------------------------------------------------ properties

MIRRORED = {"docker.io", "ghcr.io", "quay.io", "registry.k8s.io"}


@hsettings(max_examples=200, deadline=None)
@given(ref=references())
@example(ref="index.docker.io/nginx")
@example(ref="localhost:5000/a:b")
def test_normalisation_is_idempotent(ref):
    once = normalize(ref)
    assert normalize(once) == once
    assert parse(once) == parse(ref)


@hsettings(max_examples=100, deadline=None)
@given(refs=st.lists(references(), min_size=2, max_size=20))
@example(refs=["vllm/vllm-openai", "lmcache/vllm-openai", "docker.io/library/nginx",
               "ghcr.io/library/nginx", "quay.io/library/nginx", "localhost:5000/library/nginx"])
def test_rewrite_is_injective(refs):
    images = {normalize(ref) for ref in refs}  # distinct upstream images
    # mirror.test is none of the generated hosts: an unmirrored reference
    # never names the mirror itself
    rewritten = {normalize(rewrite(image, "mirror.test", PORTS)) for image in images}
    assert len(rewritten) == len(images)


@hsettings(max_examples=200, deadline=None)
@given(ref=references())
def test_rewrite_keeps_path_tag_and_digest(ref):
    out = rewrite(ref, "mirror.test", PORTS)
    before, after = parse(ref), parse(out)
    assert (after.repository, after.tag, after.digest) == (before.repository, before.tag, before.digest)
    if before.registry in MIRRORED:
        assert after.registry == f"mirror.test:{PORTS[before.registry]}"
    # rewriting twice changes nothing more: the mirror is not itself mirrored
    assert rewrite(out, "mirror.test", PORTS) == out


@hsettings(max_examples=100, deadline=None)
@given(ref=references(hosts=("localhost:5000", "example.com")))
def test_rewrite_of_an_unmirrored_registry_is_the_identity(ref):
    assert rewrite(ref, "mirror.test", PORTS) == ref

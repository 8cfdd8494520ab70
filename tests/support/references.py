"""Hypothesis strategies for image references, shared by the image and rewriting tests."""

from hypothesis import assume, strategies as st

HOSTS = [None, "docker.io", "index.docker.io", "ghcr.io", "quay.io", "registry.k8s.io",
         "localhost:5000", "example.com"]

_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--"])


@st.composite
def path_components(draw):
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(_separator), draw(_alnum)]
    return "".join(parts)


_WORD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
tags = st.builds(lambda first, rest: first + rest,  # [\w][\w.-]{0,127}, kept short
                 st.sampled_from(_WORD), st.text(_WORD + ".-", max_size=20))
digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")


@st.composite
def references(draw, hosts=tuple(HOSTS), digest=True):
    """A valid reference by the grammar: [host/]path[:tag][@digest]."""
    host = draw(st.sampled_from(hosts))
    path = "/".join(draw(st.lists(path_components(), min_size=1, max_size=4)))
    ref = f"{host}/{path}" if host else path
    if draw(st.booleans()):
        ref += ":" + draw(tags)
    if digest and draw(st.booleans()):
        ref += "@" + draw(digests)
    # a bare 64-hex name is an image ID, which Docker refuses as a name
    assume(not (host is None and len(path) == 64 and set(path) <= set("0123456789abcdef")))
    # without a host, a first component holding '.' would be read as one
    # (the host list above covers hosts)
    assume(host is not None or "." not in path.split("/")[0])
    return ref

"""The registry engine: distribution built here from the distribution's own source package.

The recipe, as Debian builds docker-registry, with two differences: the
azure driver stays in, and the product's patches go on top.

1. `apt-get source --download-only docker-registry` (a deb-src source of the
   product's own is added by `make deps` where the machine has none:
   mirror.engine.apt_source), kept in CACHE/source/ for later builds;
2. `dpkg-source -x --skip-patches`, then Debian's patches in
   `debian/patches/series` order, except DROPPED_DEBIAN_PATCHES (Debian's
   0003-no-azure cuts the azure driver out);
3. the product's patches, patches/distribution/NNNN-*.patch, in name order;
4. `go build ./cmd/registry` in GOPATH mode against the golang-*-dev
   packages the source's Build-Depends name (no Go module proxy: offline).

The key names a build: sha256 over RECIPE_VERSION, UPSTREAM_VERSION, the
dropped Debian patches and every product patch's name and bytes; all of it
is in this checkout, so finding the image `make docker-mirror` runs needs no
apt and no network. What apt gave (the Debian source version, the Debian
patches applied) is recorded beside the binary (build.json) and in the
image's labels, not in the key: a new Debian revision of 2.8.2 is taken by
`python3 -m mirror engine --rebuild` (make engine REBUILD=1), which fetches
the source again. Bump RECIPE_VERSION whenever a step above changes what
is built.

Each build lives in ${DOCKER_MIRROR_ENGINE_CACHE:-/var/cache/docker-mirror/engine}/KEY/:
`registry` (the binary), `gopath/` (the patched tree, where `--test` runs
Go's own tests) and `build.json`; it is made in a temporary directory and
renamed into place, under a lock, so a reader never sees half a build.
The newest KEEP_BUILDS builds stay; older ones go when a new one lands.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import EngineBuildError, EnginePatchError, EngineTestFailure, EngineToolchainError

RECIPE_VERSION = "1"
UPSTREAM_VERSION = "2.8.2"            # the product patches are written against this release
SOURCE_PACKAGE = "docker-registry"
IMPORT_PATH = "github.com/docker/distribution"
DROPPED_DEBIAN_PATCHES = ("0003-no-azure.patch",)
# Beyond the source's Build-Depends: the azure driver's SDK (Debian leaves the
# driver out, so does not depend on it), and gocheck for the driver's tests.
EXTRA_BUILD_DEPENDS = ("golang-github-azure-azure-sdk-for-go-dev", "golang-gopkg-check.v1-dev")
# What `--test` runs, as (packages, -run pattern or None for all their tests): the proxy
# and the handlers (where the product's patches are), and the azure driver. The handlers'
# own suite takes over a minute here, so only the tests the patch there adds run.
TEST_RUNS = ((("./registry/proxy/...", "./registry/storage/driver/azure/..."), None),
             (("./registry/handlers/",), "^TestRedisPasswordNotInExpvar$"))
SYSTEM_GOPATH = "/usr/share/gocode"   # where Debian's golang-*-dev packages put their sources

ROOT = Path(__file__).resolve().parents[2]
PATCH_DIR = ROOT / "patches" / "distribution"
DEFAULT_CACHE = "/var/cache/docker-mirror/engine"
CACHE_ENV = "DOCKER_MIRROR_ENGINE_CACHE"
KEEP_BUILDS = 3                       # the newest builds kept in the cache (a patch's last versions)

IMAGE_REPO = "docker-mirror/registry"
KEY_LABEL = "io.docker-mirror.engine.key"
DEBIAN_VERSION_LABEL = "io.docker-mirror.engine.debian-version"
PATCHES_LABEL = "io.docker-mirror.engine.patches"

_PATCH_NAME = re.compile(r"^[0-9]{4}-[^/]+\.patch$")
_BUILT_TAG = re.compile(r"^\d+\.\d+\.\d+-dm\.[0-9a-f]{12}$")
MAKE_DEPS = "run `make deps` (it installs the build's packages and Debian's source)"


# ------------------------------------------------------------------ pure parts

def patch_names(names) -> list[str]:
    """The product patch files among `names`, in the order they apply (NNNN-*.patch by name)."""
    return sorted(name for name in names if _PATCH_NAME.match(name))


def engine_key(patches: list[tuple[str, bytes]]) -> str:
    """The build's key from the recipe and the product patches ((name, bytes), in order)."""
    doc = {"recipe": RECIPE_VERSION, "upstream": UPSTREAM_VERSION, "package": SOURCE_PACKAGE,
           "dropped": list(DROPPED_DEBIAN_PATCHES),
           "patches": [[name, hashlib.sha256(data).hexdigest()] for name, data in patches]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def version_string(key: str) -> str:
    """What the binary's --version says: the release, then the build (semver build metadata)."""
    return f"{UPSTREAM_VERSION}+dm.{key[:12]}"


def image_ref(key: str) -> str:
    """The image of a build: docker-mirror/registry:2.8.2-dm.KEY12 ('+' is not allowed in a tag)."""
    return f"{IMAGE_REPO}:{UPSTREAM_VERSION}-dm.{key[:12]}"


def is_built_ref(ref: str) -> bool:
    """Whether `ref` names an image of the engine built here (image_ref's form)."""
    repo, _, tag = ref.rpartition(":")
    return repo == IMAGE_REPO and bool(_BUILT_TAG.match(tag))


def debian_series(text: str) -> list[tuple[str, int]]:
    """(patch, strip level) of each line of a quilt series file (`NAME [-pN]`, # comments)."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        strip = 1
        for word in words[1:]:
            if re.fullmatch(r"-p\d+", word):
                strip = int(word[2:])
        found.append((words[0], strip))
    return found


def debian_patches_to_apply(series_text: str, dropped=DROPPED_DEBIAN_PATCHES) -> list[tuple[str, int]]:
    return [(name, strip) for name, strip in debian_series(series_text) if name not in dropped]


def build_depends(control_text: str) -> list[str]:
    """The golang-* packages the source stanza's Build-Depends names (the Go toolchain,
    golang-any, and the -dev packages), then EXTRA_BUILD_DEPENDS."""
    source = re.split(r"\n\s*\n", control_text.strip(), maxsplit=1)[0]
    found = re.search(r"^Build-Depends(?:-Arch|-Indep)?:(.*(?:\n[ \t].*)*)", source, re.MULTILINE | re.IGNORECASE)
    names = []
    for item in (found.group(1) if found else "").replace("\n", " ").split(","):
        first = item.split("|")[0].strip()          # of alternatives, the first (as sbuild does)
        name = re.split(r"[\s(\[<:]", first, maxsplit=1)[0] if first else ""
        if name.startswith("golang-"):
            names.append(name)
    return list(dict.fromkeys([*names, *EXTRA_BUILD_DEPENDS]))


def dsc_version(dsc_text: str) -> str:
    found = re.search(r"^Version:\s*(\S+)", dsc_text, re.MULTILINE)
    if not found:
        raise EngineBuildError("the downloaded .dsc has no Version field")
    return found.group(1)


def upstream_version(debian_version: str) -> str:
    """2.8.2 of 2.8.2+ds1-1 (epoch, Debian revision and repack suffix dropped)."""
    version = re.sub(r"^\d+:", "", debian_version)
    version = version.rsplit("-", 1)[0] if "-" in version else version
    found = re.match(r"\d+(?:\.\d+)*", version)
    return found.group(0) if found else version


def go_env(gopath: Path, gocache: Path, base: dict | None = None) -> dict[str, str]:
    """GOPATH mode on Debian's -dev packages, never a module proxy; no GO* setting of the caller's."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("GO")}
    env.update(GOPATH=f"{gopath}:{SYSTEM_GOPATH}", GO111MODULE="off", GOPROXY="off", GOFLAGS="",
               GOCACHE=str(gocache), GOENV="off", GOTOOLCHAIN="local")
    return env


# Compilers run at once (go build -p; Go's default is one per core). The keeper and refresh
# units may build the engine after a patch changed, under their MemoryMax= and TasksMax=
# (templates/keeper.service.j2): measured on 2 cores at 512 MiB and 20 tasks, a bound that
# must hold on a 64-core host too. More than 4 barely shortens a ~30 s build.
BUILD_JOBS = 4


def go_build_argv(output: Path, key: str, cpus: int | None = None) -> list[str]:
    jobs = max(1, min(BUILD_JOBS, cpus or os.cpu_count() or 1))
    return ["go", "build", "-p", str(jobs), "-ldflags", f"-X {IMPORT_PATH}/version.Version={version_string(key)}",
            "-o", str(output), "./cmd/registry"]


def go_test_results(output: str) -> list[tuple[str, str, str]]:
    """(ok | FAIL | no tests, package, time) of each package `go test` reported."""
    results = []
    for line in output.splitlines():
        found = re.match(r"^(ok|FAIL|\?)\s+(\S+)\s*(\S*)", line)
        if found and found.group(2) != "":
            status, package, rest = found.groups()
            if status == "FAIL" and package.endswith(("[build", "failed]")):
                continue
            # "ok PKG 0.01s [no tests to run]": a -run pattern that matched nothing.
            nothing = status == "?" or "[no tests to run]" in line
            results.append(("no tests" if nothing else status, package, "" if status == "?" else rest))
    return results


# ------------------------------------------------------------------ the cache

@dataclass(frozen=True)
class Build:
    """One build in the cache."""

    key: str
    directory: Path
    info: dict   # build.json

    @property
    def binary(self) -> Path:
        return self.directory / "registry"

    @property
    def gopath(self) -> Path:
        return self.directory / "gopath"

    @property
    def tree(self) -> Path:
        return self.gopath / "src" / IMPORT_PATH

    @property
    def image_ref(self) -> str:
        return image_ref(self.key)

    @property
    def labels(self) -> dict[str, str]:
        return {KEY_LABEL: self.key, DEBIAN_VERSION_LABEL: self.info.get("debian_version", ""),
                PATCHES_LABEL: ",".join(p["name"] for p in self.info.get("product_patches", []))}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def product_patches(directory: Path | None = None) -> list[tuple[str, bytes]]:
    """(name, bytes) of each product patch (default: PATCH_DIR), in the order they apply."""
    directory = Path(directory or PATCH_DIR)
    try:
        names = patch_names(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise EngineBuildError(f"cannot list the product's patches in {directory}: {err.strerror}") from None
    found = []
    for name in names:
        try:
            found.append((name, (directory / name).read_bytes()))
        except OSError as err:
            raise EngineBuildError(f"cannot read the patch {directory / name}: {err.strerror}") from None
    return found


def current_key(directory: Path | None = None) -> str:
    """The key of the engine this checkout builds (reads the patch files; no apt, no Go)."""
    return engine_key(product_patches(directory))


def cached(key: str, cache: Path | None = None) -> Build | None:
    directory = Path(cache or cache_dir()) / key
    try:
        info = json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        return None
    build = Build(key, directory, info)
    return build if build.binary.is_file() and info.get("key") == key else None


def ensure(*, rebuild: bool = False, apt: bool = False, log=print, cache: Path | None = None,
           patch_dir: Path | None = None) -> Build:
    """The build of this checkout's key: from the cache, else built now.

    `apt`: may add the deb-src source, run apt-get update when the machine's
    lists have no docker-registry source, and install missing packages (make
    deps); without it a missing piece is an error that says to run make deps.
    `rebuild`: build again, fetching Debian's source anew.
    """
    cache = Path(cache or cache_dir())
    patch_dir = Path(patch_dir or PATCH_DIR)
    patches = product_patches(patch_dir)
    key = engine_key(patches)
    if not rebuild and (found := cached(key, cache)):
        return found
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EngineBuildError(f"cannot make the engine's cache {cache}: {err.strerror} "
                               f"(set {CACHE_ENV} to a directory you can write)") from None
    with _locked(cache):
        if not rebuild and (found := cached(key, cache)):
            return found   # another process built it while this one waited
        return _build(key, patches, patch_dir, cache, apt=apt, refresh=rebuild, log=log)


@contextmanager
def _locked(cache: Path):
    try:
        lock = open(cache / ".lock", "a+")
    except OSError as err:
        raise EngineBuildError(f"cannot write in the engine's cache {cache}: {err.strerror} (run as root, "
                               f"or set {CACHE_ENV} to a directory you can write)") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one build at a time per cache (pytest -n, make in two shells)
        yield


def _run(argv, *, cwd=None, env=None, input=None, timeout=1800, what="") -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, env=env, input=input, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise EngineToolchainError(f"{argv[0]} is not installed ({what or 'needed to build the registry engine'}): "
                                   f"{MAKE_DEPS}") from None
    except subprocess.TimeoutExpired:
        raise EngineBuildError(f"`{' '.join(map(str, argv[:3]))} ...` took more than {timeout} s") from None


def _tail(result: subprocess.CompletedProcess, lines: int = 15) -> str:
    text = (result.stdout or b"").decode(errors="replace") + (result.stderr or b"").decode(errors="replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def _build(key: str, patches, patch_dir: Path, cache: Path, *, apt: bool, refresh: bool, log) -> Build:
    seconds: dict[str, float] = {}
    clock = time.monotonic()
    dsc = _source(cache, apt=apt, refresh=refresh, log=log)
    debian_version = dsc_version(dsc.read_text(errors="replace"))
    if upstream_version(debian_version) != UPSTREAM_VERSION:
        raise EngineBuildError(
            f"this machine's archive has {SOURCE_PACKAGE} {debian_version}; the registry engine's recipe "
            f"and patches are for distribution {UPSTREAM_VERSION}: build on a Debian 12 (bookworm) "
            f"or Ubuntu release whose {SOURCE_PACKAGE} is {UPSTREAM_VERSION}, or set "
            "CONFIG_DOCKER_MIRROR_REGISTRY_BUILT=n and choose an upstream image")
    seconds["source"] = time.monotonic() - clock

    clock = time.monotonic()
    work = cache / f".build-{key[:12]}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "gopath" / "src" / IMPORT_PATH
    tree.parent.mkdir(parents=True)
    try:
        _install(["dpkg-dev", "patch"], apt=apt, log=log)
        result = _run(["dpkg-source", "-x", "--skip-patches", str(dsc), str(tree)], cwd=work,
                      what="dpkg-dev's dpkg-source unpacks Debian's source")
        if result.returncode != 0:
            raise EngineBuildError(f"dpkg-source could not unpack {dsc}:\n{_tail(result)}")
        series = debian_patches_to_apply((tree / "debian/patches/series").read_text())
        for name, strip in series:
            _apply(tree, (tree / "debian/patches" / name).read_bytes(), strip,
                   f"Debian's {name}", debian_version)
        for name, data in patches:
            _apply(tree, data, 1, str(patch_dir / name), debian_version)
        seconds["patch"] = time.monotonic() - clock

        clock = time.monotonic()
        _install(build_depends((tree / "debian/control").read_text()), apt=apt, log=log)
        seconds["packages"] = time.monotonic() - clock

        clock = time.monotonic()
        if shutil.which("go") is None:
            raise EngineToolchainError(f"no Go toolchain (`go` is not on PATH): {MAKE_DEPS}")
        env = go_env(work / "gopath", cache / "go-build")
        log(f"engine: go build ./cmd/registry ({version_string(key)})")
        result = _run(go_build_argv(work / "registry", key), cwd=tree, env=env, what="Go")
        if result.returncode != 0:
            raise EngineBuildError(f"go build of the registry engine failed:\n{_tail(result, 30)}")
        seconds["go_build"] = time.monotonic() - clock
        go_version = _run(["go", "version"], env=env).stdout.decode().strip()

        info = {
            "key": key, "version": version_string(key), "recipe": RECIPE_VERSION,
            "source_package": SOURCE_PACKAGE, "debian_version": debian_version,
            "debian_patches": [name for name, _ in series], "dropped": list(DROPPED_DEBIAN_PATCHES),
            "product_patches": [{"name": name, "sha256": hashlib.sha256(data).hexdigest()}
                                for name, data in patches],
            "go": go_version, "binary_sha256": file_sha256(work / "registry"),
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (work / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        final = cache / key
        if final.exists():   # --rebuild: the old build goes once the new one is in place
            old = cache / f".old-{key[:12]}-{os.getpid()}"
            os.rename(final, old)
            os.rename(work, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(cache, keep=final)
    return Build(key, final, info)


def _prune(cache: Path, keep: Path, builds: int = KEEP_BUILDS) -> None:
    """Drop all but the newest `builds` builds (each ~40 MB): patches that moved on.
    A registry still running an old binary keeps running (the file stays open)."""
    found = sorted((p for p in cache.iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name) and p != keep),
                   key=lambda p: (p / "build.json").stat().st_mtime if (p / "build.json").exists() else 0,
                   reverse=True)
    for old in found[builds - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def _source(cache: Path, *, apt: bool, refresh: bool, log) -> Path:
    """The .dsc of Debian's docker-registry source, downloaded once into CACHE/source/."""
    kept = cache / "source"
    dscs = sorted(kept.glob(f"{SOURCE_PACKAGE}_*.dsc"))
    if dscs and not refresh:
        return dscs[-1]
    if apt:
        _index_sources(log)
    fresh = cache / f".source-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    log(f"engine: apt-get source --download-only {SOURCE_PACKAGE}")
    try:
        result = _run(["apt-get", "source", "--download-only", "-q", SOURCE_PACKAGE], cwd=fresh, timeout=600,
                      what="apt downloads Debian's source")
    except EngineBuildError:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    got = sorted(fresh.glob(f"{SOURCE_PACKAGE}_*.dsc"))
    if result.returncode != 0 or not got:
        shutil.rmtree(fresh, ignore_errors=True)
        if dscs:
            log(f"engine: could not fetch {SOURCE_PACKAGE}'s source again; building from {dscs[-1].name}")
            return dscs[-1]
        raise EngineToolchainError(
            f"`apt-get source {SOURCE_PACKAGE}` failed, so the registry engine cannot be built: "
            f"{_tail(result, 5)}\n{MAKE_DEPS}; it adds a deb-src source and runs apt-get update")
    shutil.rmtree(kept, ignore_errors=True)
    os.rename(fresh, kept)
    return kept / got[-1].name


def _index_sources(log) -> None:
    """Make apt know docker-registry's source: the product's deb-src file, then one apt-get update."""
    from . import apt_source
    shown = _run(["apt-cache", "showsrc", SOURCE_PACKAGE], what="apt").stdout.strip()
    if shown:
        return
    try:
        done = apt_source.ensure()
    except OSError as err:
        raise EngineToolchainError(f"cannot add a deb-src source for {SOURCE_PACKAGE} "
                                   f"({err.filename}: {err.strerror}): run make deps as root") from None
    if done:
        log(f"engine: {done}")
    log("engine: apt-get update (for the deb-src source)")
    result = _run(["apt-get", "update", "-q"], env=_apt_env(), timeout=600, what="apt")
    if result.returncode != 0:
        raise EngineToolchainError(f"apt-get update failed:\n{_tail(result, 5)}")


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def _install(packages: list[str], *, apt: bool, log) -> None:
    """Install the packages not installed yet (apt), or say which are missing."""
    result = _run(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Status}\n", *packages], what="dpkg")
    installed = {line.split("\t")[0] for line in result.stdout.decode().splitlines()
                 if line.endswith("\tinstalled")}
    missing = [p for p in packages if p not in installed]
    if not missing:
        return
    if not apt:
        raise EngineToolchainError(
            f"the registry engine's build needs packages that are not installed: {' '.join(missing)}: "
            f"{MAKE_DEPS} (or apt-get install them)")
    log(f"engine: apt-get install {' '.join(missing)}")
    result = _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                  env=_apt_env(), timeout=1800, what="apt")
    if result.returncode != 0:
        raise EngineToolchainError(f"apt-get install {' '.join(missing)} failed:\n{_tail(result, 8)}")


def _apply(tree: Path, data: bytes, strip: int, name: str, debian_version: str) -> None:
    result = _run(["patch", f"-p{strip}", "--batch", "--forward", "--no-backup-if-mismatch", "--quiet"],
                  cwd=tree, input=data, what="patch applies the patches")
    if result.returncode != 0:
        raise EnginePatchError(f"{name} does not apply to {SOURCE_PACKAGE} {debian_version}:\n{_tail(result)}")


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_tests(build: Build, runs=TEST_RUNS, log=print) -> list[tuple[str, str, str]]:
    """Go's own tests of `runs` in the build's patched tree; raises EngineTestFailure on a failure."""
    if shutil.which("go") is None:
        raise EngineToolchainError(f"no Go toolchain (`go` is not on PATH): {MAKE_DEPS}")
    env = go_env(build.gopath, build.directory.parent / "go-build")
    results = []
    for packages, pattern in runs:
        selected = ["-run", pattern] if pattern else []
        log(f"engine: go test {' '.join([*selected, *packages])} (in {build.tree})")
        result = _run(["go", "test", "-count=1", *selected, *packages], cwd=build.tree, env=env,
                      timeout=1800, what="Go")
        output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        found = go_test_results(output)
        if result.returncode != 0 or any(status == "FAIL" for status, _, _ in found):
            raise EngineTestFailure(f"go test failed in {build.tree}:\n"
                                    + "\n".join(output.strip().splitlines()[-40:]))
        if pattern and any(status == "no tests" for status, _, _ in found):
            raise EngineTestFailure(f"go test -run '{pattern}' {' '.join(packages)} ran no test in "
                                    f"{build.tree}: the patch that adds it was dropped, or the test renamed")
        results += found
    return results

"""What distribution 2.8 keeps in an object store, read and pruned by the product.

The s3 bucket (mirror.net.s3) and the azure container (mirror.net.azure_blob)
hold a registry's files as objects named by their paths under `prefix`, in
the layout of a filesystem store (mirror.host.storage):

    <prefix>/repositories/<name>/_manifests/revisions/sha256/<hex>/link
    <prefix>/repositories/<name>/_manifests/tags/<tag>/current/link
    <prefix>/repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
    <prefix>/repositories/<name>/_layers/sha256/<hex>/link
    <prefix>/repositories/<name>/_uploads/<id>/...
    <prefix>/blobs/sha256/<hex[:2]>/<hex>/data

Each store says only how to read an object's size, list objects under a
prefix, read one and delete some. On that, `ObjectStore` offers what the
cache's lifecycle reads and removes (the same calls as the filesystem's
mirror.services.cache_store.FileStore): repositories, their manifests and
tags, blob sizes, the removal of a manifest's links, and the store's usage.

A listing is a snapshot (one paginated LIST of `repositories/`, and one of
`blobs/` only when blobs are asked about: a tag's digest needs no blob
listing), taken on first use and kept true by our own removals; one GET per
tag link, once per snapshot. `forget()` drops it. Object stores have no
directories: a "directory" goes by deleting every key under it. A digest from
a key is validated before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import cached_image
from ..model.digests import is_digest
from ..model.images import ImageRef
from ..model.manifests import MAX_MANIFEST


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float    # seconds since the epoch (the store's clock)


class ObjectStore:
    prefix: str   # ".../docker/registry/v2" as the store names it
    where: str    # the store, named for messages ("s3 bucket B at URL")

    # ------------------------------------------------------------ what each store provides

    def size(self, key: str) -> int | None:
        """The object's size, None when there is none."""
        raise NotImplementedError

    def list(self, prefix: str, limit: int | None = None) -> list[StoredObject]:
        """Every object whose key starts with `prefix` (the first `limit`); a StoreError when
        the store fails."""
        raise NotImplementedError

    def read(self, key: str, limit: int) -> bytes | None:
        """At most `limit` bytes of the object, None when there is none; a StoreError when
        the store fails."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        """Delete these objects (absent ones are no error); a StoreError when the store fails."""
        raise NotImplementedError

    # ------------------------------------------------------------ the warm engine's question

    def data_key(self, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"{self.prefix}/blobs/{algorithm}/{hex_[:2]}/{hex_}/data"

    def link_key(self, repository: str, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"{self.prefix}/repositories/{repository}/_layers/{algorithm}/{hex_}/link"

    def linked(self, repository: str, digest: str) -> bool:
        """The mirror serves this blob to `repository` from the store."""
        return self.size(self.link_key(repository, digest)) is not None \
            and self.size(self.data_key(digest)) is not None

    # ------------------------------------------------------------ check-mirror's IMAGE_EXISTS

    def has_image(self, ref: ImageRef) -> bool:
        """A pull of `ref` is served from the store alone (mirror.model.cached_image has the
        rule): a few GETs, no listing; a StoreError when the store fails or refuses."""
        return cached_image.image_cached(_Files(self), ref.repository, ref.tag, ref.digest)

    # ------------------------------------------------------------ the lifecycle's reads

    _snapshot: "_Snapshot | None" = None

    def _tree(self) -> "_Snapshot":
        """The repositories' links (one LIST of repositories/)."""
        if self._snapshot is None:
            self._snapshot = _Snapshot.of(self.prefix, self.list(f"{self.prefix}/repositories/"))
        return self._snapshot

    def _blobs(self) -> dict[str, int]:
        """digest -> size of its data (one LIST of blobs/, with the snapshot)."""
        tree = self._tree()
        if tree.blobs is None:
            tree.add_blobs(self.prefix, self.list(f"{self.prefix}/blobs/"))
        return tree.blobs

    def forget(self) -> None:
        """Read the store again at the next call (after something else changed it)."""
        self._snapshot = None

    def repositories(self) -> list[str]:
        return sorted(self._tree().repos)

    def revisions(self, repository: str) -> list[str]:
        """The manifests (and indexes) the repository links whose blob is there."""
        repo = self._tree().repos.get(repository)
        blobs = self._blobs()
        return sorted(d for d in (repo.revisions if repo else {}) if d in blobs)

    def tags(self, repository: str) -> dict[str, str]:
        """{tag: digest} of the repository's tags whose current link reads as a digest."""
        tree = self._tree()
        if repository not in tree.tag_digests:
            repo = tree.repos.get(repository)
            found = {}
            for tag, key in sorted((repo.tags if repo else {}).items()):
                text = (self.read(key, 200) or b"").decode("ascii", "replace").strip()
                if is_digest(text):
                    found[tag] = text
            tree.tag_digests[repository] = found
        return dict(tree.tag_digests[repository])

    def read_manifest(self, digest: str, limit: int = MAX_MANIFEST) -> bytes | None:
        return self.read(self.data_key(digest), limit) if is_digest(digest) else None

    def blob_size(self, digest: str) -> int:
        return self._blobs().get(digest, 0)

    def cached_since(self, repository: str, digest: str) -> float | None:
        """When the repository's link to the manifest was written (it was cached then)."""
        repo = self._tree().repos.get(repository)
        found = repo.revisions.get(digest) if repo else None
        return found.modified if found else None

    def usage(self) -> int:
        """Bytes the store holds for this registry: every object under the prefix (the blobs
        are nearly all of it; links and uploads count too)."""
        self._blobs()
        return self._tree().bytes

    # ------------------------------------------------------------ the lifecycle's removals
    # Only with every registry on this storage stopped (or read-only).

    def remove_manifest(self, repository: str, digest: str) -> list[str]:
        """Unlink one manifest, as a DELETE by digest does: its revision link, the tags that
        point at it, their index entries for it; returns the tags removed. Its blobs stay
        until garbage-collect finds them unreferenced."""
        tree = self._tree()
        repo = tree.repos.get(repository)
        if repo is None or not is_digest(digest):
            return []
        algorithm, hex_ = digest.split(":", 1)
        base = f"{self.prefix}/repositories/{repository}/_manifests/"
        doomed = [f"{base}revisions/{algorithm}/{hex_}/"]
        removed = []
        for tag, current in self.tags(repository).items():
            if current == digest:
                doomed.append(f"{base}tags/{tag}/")
                removed.append(tag)
            else:
                doomed.append(f"{base}tags/{tag}/index/{algorithm}/{hex_}/")
        self._delete_under(doomed)
        return removed

    def purge_uploads(self, older_than: float | None = None) -> int:
        """Delete the repositories' unfinished uploads (only those untouched since
        `older_than`, the store's time, when given: what distribution's purger deletes while it
        serves); bytes freed."""
        uploads: dict[str, list[StoredObject]] = {}
        for obj in self._tree().objects:
            head, found, rest = obj.key.partition("/_uploads/")
            if found:
                uploads.setdefault(f"{head}/_uploads/{rest.split('/')[0]}/", []).append(obj)
        doomed = [objs for objs in uploads.values()
                  if older_than is None or max(o.modified for o in objs) < older_than]
        self._delete([o.key for objs in doomed for o in objs])
        return sum(o.size for objs in doomed for o in objs)

    def tidy(self) -> int:
        """After garbage-collect: drop layer links to blobs that are gone, and the links of
        repositories left without a manifest; returns how many layer links went."""
        self.forget()
        tree, blobs = self._tree(), self._blobs()
        doomed, dropped = [], 0
        for name, repo in tree.repos.items():
            if not any(d in blobs for d in repo.revisions):
                doomed += [o.key for o in repo.objects if "/_uploads/" not in o.key]
                continue
            for digest, key in repo.layers.items():
                if digest not in blobs:
                    doomed.append(key)
                    dropped += 1
        self._delete(doomed)
        return dropped

    def _delete_under(self, prefixes: list[str]) -> None:
        self._delete([o.key for o in self._tree().objects if o.key.startswith(tuple(prefixes))])

    def _delete(self, keys: list[str]) -> None:
        """Delete, and keep the snapshot true without listing the store again (a collection
        removes one manifest after another)."""
        if keys:
            self.delete(keys)
            if self._snapshot is not None:
                self._snapshot.drop(set(keys))


@dataclass(frozen=True)
class _Files:
    """A store's objects as mirror.model.cached_image reads them (paths relative to prefix)."""
    store: ObjectStore

    def read(self, path: str, limit: int) -> bytes | None:
        return self.store.read(f"{self.store.prefix}/{path}", limit)

    def exists(self, path: str) -> bool:
        # A one-byte GET: read() fails with a StoreError, where size() is the warm engine's.
        return self.read(path, 1) is not None


@dataclass
class _Repository:
    revisions: dict        # digest -> StoredObject of its revision link
    tags: dict             # tag -> key of its current link
    layers: dict           # digest -> key of its layer link
    objects: list          # every object under the repository's own _manifests/_layers/_uploads


@dataclass
class _Snapshot:
    repos: dict            # name -> _Repository
    objects: list          # every object under repositories/
    bytes: int             # every object's size, blobs included once they are listed
    blobs: dict | None = None   # digest -> size of its data (None: blobs/ not listed yet)
    tag_digests: dict = field(default_factory=dict)   # repository -> {tag: digest} read

    @classmethod
    def of(cls, prefix: str, repository_objects: list[StoredObject]):
        repos: dict[str, _Repository] = {}
        top = f"{prefix}/repositories/"
        for obj in repository_objects:
            parts = obj.key[len(top):].split("/")
            # The name is every component before the first of distribution's own ("_manifests"...).
            cut = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
            if not cut:
                continue
            name, rest = "/".join(parts[:cut]), parts[cut:]
            repo = repos.setdefault(name, _Repository({}, {}, {}, []))
            repo.objects.append(obj)
            if rest[-1] != "link":
                continue
            if rest[:2] == ["_manifests", "revisions"] and len(rest) == 5:
                digest = f"{rest[2]}:{rest[3]}"
                if is_digest(digest):
                    repo.revisions[digest] = obj
            elif rest[:2] == ["_manifests", "tags"] and len(rest) == 5 and rest[3] == "current":
                repo.tags[rest[2]] = obj.key
            elif rest[0] == "_layers" and len(rest) == 4:
                digest = f"{rest[1]}:{rest[2]}"
                if is_digest(digest):
                    repo.layers[digest] = obj.key
        repos = {name: repo for name, repo in repos.items() if repo.revisions or repo.tags or repo.layers}
        return cls(repos, repository_objects, sum(o.size for o in repository_objects))

    def add_blobs(self, prefix: str, blob_objects: list[StoredObject]) -> None:
        self.blobs = {}
        for obj in blob_objects:
            parts = obj.key[len(f"{prefix}/blobs/"):].split("/")
            if len(parts) == 4 and parts[3] == "data" and is_digest(f"{parts[0]}:{parts[2]}"):
                self.blobs[f"{parts[0]}:{parts[2]}"] = obj.size
        self.bytes += sum(o.size for o in blob_objects)

    def drop(self, keys: set[str]) -> None:
        """Forget these objects (deleted from under repositories/)."""
        self.bytes -= sum(o.size for o in self.objects if o.key in keys)
        self.objects = [o for o in self.objects if o.key not in keys]
        for repo in self.repos.values():
            repo.objects = [o for o in repo.objects if o.key not in keys]
            repo.revisions = {d: o for d, o in repo.revisions.items() if o.key not in keys}
            repo.tags = {t: k for t, k in repo.tags.items() if k not in keys}
            repo.layers = {d: k for d, k in repo.layers.items() if k not in keys}
        self.repos = {n: r for n, r in self.repos.items() if r.revisions or r.tags or r.layers}
        self.tag_digests = {name: {t: d for t, d in found.items() if t in self.repos[name].tags}
                            for name, found in self.tag_digests.items() if name in self.repos}

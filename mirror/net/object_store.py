"""What distribution 2.8 keeps in an object store, read and pruned by the product.

The s3 bucket (mirror.net.s3) and the azure container (mirror.net.azure_blob)
hold a registry's files as objects named by their paths under `prefix`, in
the layout of a filesystem store (mirror.model.registry_layout builds and
parses every path, for mirror.host.storage too):

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
a key or a link is validated before it is used (registry_layout,
cached_image.read_link).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ..model import cached_image, registry_layout as layout
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

    def key_of(self, path: str) -> str:
        """The object's key of a path of distribution's layout (mirror.model.registry_layout)."""
        return f"{self.prefix}/{path}"

    def data_key(self, digest: str) -> str:
        return self.key_of(layout.blob_data(digest))

    def link_key(self, repository: str, digest: str) -> str:
        return self.key_of(layout.layer_link(repository, digest))

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
            listed = self.list(self.key_of(f"{layout.REPOSITORIES}/"))
            self._snapshot = _Snapshot.of(self.prefix, listed)
        return self._snapshot

    def _blobs(self) -> dict[str, int]:
        """digest -> size of its data (one LIST of blobs/, with the snapshot)."""
        tree = self._tree()
        if tree.blobs is None:
            tree.add_blobs(self.prefix, self.list(self.key_of(f"{layout.BLOBS}/")))
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
            for tag in sorted(repo.tags if repo else {}):
                digest = cached_image.read_link(_Files(self), layout.tag_link(repository, tag))
                if digest:
                    found[tag] = digest
            tree.tag_digests[repository] = found
        return dict(tree.tag_digests[repository])

    def tag_history(self, repository: str, tag: str) -> list[str]:
        """Every digest the tag pointed at while cached (its index keys), the current one
        included."""
        repo = self._tree().repos.get(repository)
        return sorted(repo.history.get(tag, {})) if repo else []

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
        # A "directory" is every key under it: the link's, with its trailing slash.
        doomed = [self.key_of(posixpath.dirname(layout.revision_link(repository, digest)) + "/")]
        removed = []
        for tag, current in self.tags(repository).items():
            if current == digest:
                doomed.append(self.key_of(f"{layout.tags(repository)}/{tag}/"))
                removed.append(tag)
            else:
                index = posixpath.dirname(layout.tag_index_link(repository, tag, digest))
                doomed.append(self.key_of(index + "/"))
        self._delete_under(doomed)
        return removed

    def purge_uploads(self, older_than: float | None = None) -> int:
        """Delete the repositories' unfinished uploads (only those untouched since
        `older_than`, the store's time, when given: what distribution's purger deletes while it
        serves); bytes freed."""
        uploads: dict[str, list[StoredObject]] = {}
        for obj in self._tree().objects:
            head, found, rest = obj.key.partition(f"/{layout.UPLOADS}/")
            if found:
                uploads.setdefault(f"{head}{found}{rest.split('/')[0]}/", []).append(obj)
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
                doomed += [o.key for o in repo.objects if f"/{layout.UPLOADS}/" not in o.key]
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
        return self.store.read(self.store.key_of(path), limit)

    def exists(self, path: str) -> bool:
        # A one-byte GET: read() fails with a StoreError, where size() is the warm engine's.
        return self.read(path, 1) is not None


@dataclass
class _Repository:
    revisions: dict        # digest -> StoredObject of its revision link
    tags: dict             # tag -> key of its current link
    layers: dict           # digest -> key of its layer link
    objects: list          # every object under the repository's own _manifests/_layers/_uploads
    history: dict = field(default_factory=dict)   # tag -> {digest: key of its index link}


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
        for obj in repository_objects:
            found = layout.repository_of(obj.key[len(prefix) + 1:])
            if found is None:
                continue
            name, rest = found
            repo = repos.setdefault(name, _Repository({}, {}, {}, []))
            repo.objects.append(obj)
            kind, link = layout.link_of(rest) or (None, None)
            if kind == "revision":
                repo.revisions[link] = obj
            elif kind == "tag":
                repo.tags[link] = obj.key
            elif kind == "layer":
                repo.layers[link] = obj.key
            elif indexed := layout.tag_index_of(rest):
                tag, digest = indexed
                repo.history.setdefault(tag, {})[digest] = obj.key
        repos = {name: repo for name, repo in repos.items() if repo.revisions or repo.tags or repo.layers}
        return cls(repos, repository_objects, sum(o.size for o in repository_objects))

    def add_blobs(self, prefix: str, blob_objects: list[StoredObject]) -> None:
        self.blobs = {}
        for obj in blob_objects:
            digest = layout.blob_of(obj.key[len(prefix) + 1:])
            if digest:
                self.blobs[digest] = obj.size
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
            repo.history = {t: {d: k for d, k in found.items() if k not in keys}
                            for t, found in repo.history.items()}
        self.repos = {n: r for n, r in self.repos.items() if r.revisions or r.tags or r.layers}
        self.tag_digests = {name: {t: d for t, d in found.items() if t in self.repos[name].tags}
                            for name, found in self.tag_digests.items() if name in self.repos}

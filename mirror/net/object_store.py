"""What distribution 2.8 keeps in an object store, and how the product asks whether a blob is there.

The s3 bucket (mirror.net.s3) and the azure container (mirror.net.azure_blob)
hold a registry's files as objects named by their paths under `prefix`; a
blob is cached for a repository when its data object exists and the
repository links it, as on a filesystem. Each store says only how to read an
object's size.
"""

from __future__ import annotations


class ObjectStore:
    prefix: str   # ".../docker/registry/v2" as the store names it

    def size(self, key: str) -> int | None:
        """The object's size, None when there is none."""
        raise NotImplementedError

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

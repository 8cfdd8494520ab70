"""Every error the user can act on, and the one table of exit codes.

Each class carries a message for the user (`str(err)` is the whole of it);
its exit code comes from EXIT_CODES, by the nearest class listed there, and
mirror.cli.main is the one place that turns an error into that code. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class MirrorError(Exception):
    """A failure the user can act on."""

    @property
    def exit_code(self) -> int:
        return exit_code(self)


# ---------------------------------------------------------------- bad input (2)

class UsageError(MirrorError):
    """Something the user supplied is wrong: .config, a file, an argument."""


class ConfigError(UsageError):
    """A bad value in .config (or another user-supplied file)."""

    def __init__(self, symbol: str, value: object, allowed: str, source: str = ""):
        self.symbol = symbol
        self.value = value
        self.allowed = allowed
        self.source = source
        where = f" ({source})" if source else ""
        super().__init__(f"{symbol}={value!r}{where}: {allowed}")


class NotConfiguredError(UsageError):
    """No .config yet."""


class DotConfigSyntaxError(UsageError):
    """A .config line kconfiglib would not have written."""


class KconfigToolError(UsageError):
    """A Kconfig tool refused its arguments or its files."""


class InvalidReference(UsageError):
    """An image reference outside the Docker reference grammar."""

    def __init__(self, reference: str, why: str):
        self.reference = reference
        super().__init__(f"invalid image reference {reference!r}: {why}")


class InvalidMirror(UsageError):
    """A mirror host or port map that cannot form a reference (bad filter arguments)."""


class UnknownCheck(UsageError):
    """check_docker_mirror.sh was asked for a check it does not know."""


class ScanError(UsageError):
    """--scan was pointed at something that is not there."""


class ClientFileError(UsageError):
    """A host file (daemon.json, config.toml, hosts.toml, the state) that cannot be used."""


class MirrorNotInUse(UsageError):
    """The .config says this host's clients should not use the mirror."""


# ---------------------------------------------------------------- the host (3)

class HostError(MirrorError):
    """This host is not in the state the mirror needs (engine, ports, daemons)."""


class PortInUse(HostError):
    """Another process holds a port a mirror needs."""


class MirrorOwned(HostError):
    """The prefix's containers or unit files belong to another .config (another checkout's
    mirror) with other settings: nothing is touched."""


class MirrorGone(HostError):
    """What a keeper keeps is gone (.config, the mirror directory, the checkout): it stops."""


class SettingsChanged(MirrorError):
    """.config changed after a keeper read it: its check would apply settings no longer in force."""


class HostToolError(HostError):
    """A host tool (systemctl, exportfs) or a host path refused what the mirror asked."""


class DockerError(HostError):
    """The Docker engine is missing, unreachable, or refused an operation."""


class RegistryImageError(DockerError):
    """No usable distribution registry image."""


class MirrorStartError(DockerError):
    """A registry container did not come up answering."""


class EngineBuildError(HostError):
    """The registry engine (mirror.engine.build) cannot be built on this host."""


class EngineToolchainError(EngineBuildError):
    """What the engine's build needs (Go, dpkg-source, Debian's source and -dev packages) is missing."""


class EnginePatchError(EngineBuildError):
    """A Debian or product patch did not apply to distribution's source."""


class MaintenanceError(DockerError):
    """The short-lived maintenance registry could not be run."""


class StoreError(HostError):
    """The object store (s3 bucket, azure container) refused a request or did not answer."""


class DockerReloadError(DockerError):
    """dockerd could not be reloaded, or did not take the new settings."""


# ---------------------------------------------------------------- runs (1, 75)

class RegistryAPIError(MirrorError):
    """A registry answered the HTTP API with an error, or not at all."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class DigestMismatch(RegistryAPIError):
    """Content that does not hash to the digest it was asked for by."""


class TransferBroken(RegistryAPIError):
    """A body that broke off before its end: a passing fault as often as not (a replica that
    went, a connection reset), so worth another try."""


class InvalidDigest(RegistryAPIError):
    """A digest from a registry or an archive that is not sha256: plus 64 hex digits."""


class InvalidManifest(RegistryAPIError):
    """A manifest or index that is not the JSON object the spec describes."""


class ResponseTooLarge(RegistryAPIError):
    """A registry answer larger than any honest one (a manifest, a token, an error)."""


class DeadlineExceeded(RegistryAPIError):
    """A registry request that did not complete within its overall deadline."""


class ArchiveError(MirrorError):
    """An image archive that cannot be written, read or trusted."""


class WarmError(MirrorError):
    """One image could not be warmed (the run goes on with the others)."""


class DiskFull(WarmError):
    """The cache's file system has no room for what the mirror was storing."""

    def __init__(self, message: str, needed: int = 0):
        super().__init__(message)
        self.needed = needed  # bytes of the blob that did not fit


class EngineTestFailure(MirrorError):
    """Go's own tests failed in the registry engine's patched tree (python3 -m mirror engine --test)."""


class RefreshBusy(MirrorError):
    """Another refresh holds the lock (--no-wait)."""


class KeeperRunning(MirrorError):
    """Another keeper already keeps this mirror directory."""


class MirrorSwitchedOff(UsageError):
    """A command that needs the mirror set up, on a .config that switches it off."""


class PurgeRefused(UsageError):
    """DOCKER_MIRROR_PATH does not look like a mirror directory: it is not deleted."""


class K8sError(UsageError):
    """A Kubernetes output directory or option (make docker-mirror-k8s) that cannot be used."""


EXIT_CODES: dict[type[MirrorError], int] = {
    MirrorError: 1,
    UsageError: 2,
    HostError: 3,
    RefreshBusy: 75,  # EX_TEMPFAIL: try again later
    KeeperRunning: 75,
    K8sError: 2,
}


def exit_code(err: BaseException) -> int:
    """The exit code of `err`: that of its nearest class in EXIT_CODES."""
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1

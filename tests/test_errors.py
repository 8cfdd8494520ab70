"""One table of exit codes, and the CLI as the one place that applies it."""

import pytest

from mirror import cli, errors

EXPECTED = {
    errors.ConfigError: 2, errors.NotConfiguredError: 2, errors.DotConfigSyntaxError: 2,
    errors.KconfigToolError: 2, errors.InvalidReference: 2, errors.InvalidMirror: 2, errors.UnknownCheck: 2,
    errors.ScanError: 2, errors.ClientFileError: 2, errors.MirrorNotInUse: 2,
    errors.PortInUse: 3, errors.MirrorOwned: 3, errors.MirrorGone: 3, errors.SettingsChanged: 1, errors.DockerError: 3, errors.RegistryImageError: 3, errors.MirrorStartError: 3,
    errors.MaintenanceError: 3, errors.DockerReloadError: 3,
    errors.RegistryAPIError: 1, errors.DigestMismatch: 1, errors.TransferBroken: 1, errors.StoreError: 3, errors.InvalidDigest: 1, errors.InvalidManifest: 1,
    errors.ResponseTooLarge: 1, errors.DeadlineExceeded: 1, errors.ArchiveError: 1, errors.WarmError: 1,
    errors.MirrorError: 1, errors.RefreshBusy: 75, errors.UsageError: 2, errors.HostError: 3,
    errors.KeeperRunning: 75, errors.PurgeRefused: 2, errors.MirrorSwitchedOff: 2, errors.HostToolError: 3, errors.DiskFull: 1,
    errors.K8sError: 2, errors.EngineBuildError: 3, errors.EngineToolchainError: 3, errors.EnginePatchError: 3,
    errors.EngineTestFailure: 1,
}


def every_error_class(cls=errors.MirrorError):
    yield cls
    for sub in cls.__subclasses__():
        yield from every_error_class(sub)


def test_every_error_class_has_its_code_from_the_table():
    assert set(every_error_class()) == set(EXPECTED)  # a new class is added here, with its code
    for cls, code in EXPECTED.items():
        err = cls.__new__(cls)
        assert errors.exit_code(err) == code and err.exit_code == code, cls


def test_codes_are_declared_in_one_table():
    for cls in every_error_class():
        assert "exit_code" not in vars(cls) or cls is errors.MirrorError, cls


def test_cli_maps_an_error_to_its_message_and_code(tmp_path, capsys):
    assert cli.main(["--config", str(tmp_path / "none"), "check"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none'}: no configuration yet")
    (tmp_path / ".config").write_text("CONFIG_DOCKER_MIRROR_PORT=0\n")
    assert cli.main(["--config", str(tmp_path / ".config"), "check"]) == 2
    assert "CONFIG_DOCKER_MIRROR_PORT=0" in capsys.readouterr().err


def test_anything_else_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        errors.exit_code(ZeroDivisionError()) and 1 / 0

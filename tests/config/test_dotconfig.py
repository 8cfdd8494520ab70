"""Reading .config: every value kconfiglib writes, and where each came from."""

import pytest

from mirror.config import dotconfig
from mirror.errors import DotConfigSyntaxError, MirrorError, NotConfiguredError, exit_code

TEXT = """\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_ENABLE_DOCKER_MIRROR=y
CONFIG_MODULE_LIKE=m
# CONFIG_USE_DOCKER_MIRROR is not set
CONFIG_DOCKER_MIRROR_PORT=5000
CONFIG_NEGATIVE=-3
CONFIG_HEX=0x1F
CONFIG_DOCKER_MIRROR_PATH="/mirror/docker"
CONFIG_QUOTED="say \\"hi\\" \\\\ bye"
CONFIG_EMPTY_IMAGE=""
CONFIG_DOCKER_MIRROR_REGISTRY_IMAGE="registry:2"
"""


def test_every_value_kind_kconfiglib_writes():
    config = dotconfig.parse(TEXT, "x/.config")
    values = {name: entry.value for name, entry in config.entries.items()}
    assert values == {"ENABLE_DOCKER_MIRROR": True, "MODULE_LIKE": True, "USE_DOCKER_MIRROR": False,
                      "DOCKER_MIRROR_PORT": 5000, "NEGATIVE": -3, "HEX": 31,
                      "DOCKER_MIRROR_PATH": "/mirror/docker", "QUOTED": 'say "hi" \\ bye',
                      "EMPTY_IMAGE": "", "DOCKER_MIRROR_REGISTRY_IMAGE": "registry:2"}


def test_source_names_the_line_an_override_or_absence():
    config = dotconfig.parse(TEXT, "x/.config")
    assert config.source("DOCKER_MIRROR_PORT") == "x/.config:7"
    assert config.source("USE_DOCKER_MIRROR") == "x/.config:6"
    assert config.source("NOWHERE") == "x/.config (not set)"
    overridden = config.with_values({"DOCKER_MIRROR_PORT": 6000}, origin="command line")
    assert overridden.entries["DOCKER_MIRROR_PORT"].value == 6000
    assert overridden.source("DOCKER_MIRROR_PORT") == "command line"
    assert config.entries["DOCKER_MIRROR_PORT"].value == 5000  # the original is left as it was


def test_strings_named_skips_empty_and_non_strings():
    config = dotconfig.parse(TEXT + "CONFIG_COUNT_IMAGE=3\n", "x/.config")
    assert config.strings_named("_IMAGE") == [("registry:2", "x/.config:13")]


def test_a_value_split_only_on_newlines():
    # \x0b and \u2028 are content, not line ends, as kconfiglib reads them
    config = dotconfig.parse('CONFIG_A="x\x0by\u2028z"\n')
    assert config.entries["A"].value == "x\x0by\u2028z"


@pytest.mark.parametrize("line", ["CONFIG_PORT=5000x", "PORT=1", 'CONFIG_S="unterminated', "CONFIG_B=yes"])
def test_unreadable_line_names_file_and_line(line):
    with pytest.raises(DotConfigSyntaxError) as caught:
        dotconfig.parse(f"CONFIG_OK=y\n{line}\n", "my/.config")
    assert str(caught.value).startswith(f"my/.config:2: cannot read {line!r}")
    assert exit_code(caught.value) == 2


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(NotConfiguredError, match="make defconfig"):
        dotconfig.load(tmp_path / ".config")


def test_unreadable_file_is_a_user_error(tmp_path):
    (tmp_path / ".config").write_bytes(b"CONFIG_A=\"\xff\"\n")
    with pytest.raises(MirrorError, match="cannot read"):
        dotconfig.load(tmp_path / ".config")

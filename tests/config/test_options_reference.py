"""docs/options.md is the Kconfig tree, laid out: it cannot drift from what menuconfig offers."""

import re

import kconfiglib
import pytest

from mirror.config import kconfig_tree, options_reference


@pytest.fixture(scope="module")
def tree():
    return kconfig_tree.parse()


def test_the_checked_in_reference_is_the_trees(tree):
    # On failure: run `make docs` and commit docs/options.md with the Kconfig change.
    assert options_reference.OUT.read_text() == options_reference.render(tree)


def test_every_option_a_user_can_set_is_in_it_once(tree):
    prompted = {f"CONFIG_{node.item.name}" for node in tree.node_iter()
                if isinstance(node.item, kconfiglib.Symbol) and node.prompt}
    listed = re.findall(r"^\*\*`(CONFIG_\w+)`\*\*", options_reference.render(tree), flags=re.MULTILINE)
    assert sorted(listed) == sorted(prompted)


def test_a_default_and_range_are_the_trees_own_text(tree):
    port = next(o for s in options_reference.sections(tree) for o in s.options
                if o.name == "CONFIG_DOCKER_MIRROR_PORT")
    sym = tree.syms["DOCKER_MIRROR_PORT"]
    assert port.defaults == (kconfiglib.expr_str(sym.defaults[0][0]),)
    assert port.range == " to ".join(kconfiglib.expr_str(bound) for bound in sym.ranges[0][:2])
    assert port.depends == "ENABLE_DOCKER_MIRROR"

"""Write docs/options.md, the options reference, from the Kconfig tree.

    python3 -m mirror docs

Every option's symbol, prompt, default, range and help text, as Kconfig
declares them (the one source of defaults). `make docs` runs this.
"""

import argparse

from ..config import options_reference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args) -> int:
    print(f"wrote {options_reference.write()}")
    return 0

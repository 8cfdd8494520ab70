"""Rendering generated files from templates/ (pure: reads templates only)."""

from functools import lru_cache
from pathlib import Path

import jinja2
import yaml

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def to_yaml(value) -> str:
    """YAML that yaml.safe_load reads back to exactly `value`.

    allow_unicode stays off: PyYAML then writes U+0085 (NEL) raw inside a
    single-quoted scalar, which its own loader reads back as a line break.
    """
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True,
                          allow_unicode=False, width=float("inf")).rstrip("\n")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["to_yaml"] = to_yaml
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)

"""How the command line prints, for every command group (the main CLI, the server's
`serve` and `keys`, `bench`): stored text is printed as it is, never read as rich markup
or highlighted, and JSON is indented UTF-8."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console


def console() -> Console:
    """Stdout; stored text is printed as it is: no rich markup, no highlighting."""
    return Console(highlight=False, markup=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))

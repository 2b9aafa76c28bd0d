"""The `imaginarium` command: the one place that knows every part and wires them together."""
from __future__ import annotations

import typer

from replay.cli import app as buffer_app
from toolenv.cli import app as tools_app

app = typer.Typer(help="Imaginarium: teach language models to use tools.", no_args_is_help=True)
app.add_typer(buffer_app, name="buffer")
app.add_typer(tools_app, name="tools")

"""``python -m genesis``."""

from genesis.cli.main import app

app(prog_name="genesis")

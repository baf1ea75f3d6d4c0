"""The `patron` command line. It only wires services to arguments, files, progress bars and messages."""

from patron.cli.main import app

__all__ = ["app"]

"""Serve quart_app: `python run.py [--workers N] [--bind HOST:PORT] [--server granian]`.

The same as the `quart-app` command an install of the package provides; the code is in
`quart_app/cli.py`.
"""

from __future__ import annotations

import sys

from quart_app.cli import DEFAULTS, hypercorn_settings, main

__all__ = ["DEFAULTS", "hypercorn_settings", "main"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

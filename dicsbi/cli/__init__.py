"""The ``dicsbi`` command line: thin wrappers over the Python API.

A user mistake (bad file, unknown model, impossible conductances) prints one line ``error: ...`` and exits
with status 2; nothing is written in that case.
"""

from . import commands, modulation
from .app import app, err, main

# importing the command modules registers their commands on ``app``
__all__ = ["app", "commands", "err", "main", "modulation"]

"""``python -m dicsbi.cli``: the same as the ``dicsbi`` command."""

from . import main

main()

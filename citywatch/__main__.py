"""``python -m citywatch`` = the ``citywatch`` command."""

from citywatch.cli import main

main()

"""Command-line entry points (`python -m cvrl.tools.NAME`); each a thin main
over a library."""

"""`python -m registry`: the same entry point as the `registry` console script."""

from registry.cli import main

main()

"""`python -m tito` runs the same command line as `tito`."""

from .cli import main

main()

"""``python -m probe`` runs the command-line interface."""

from probe.cli.parser import main

if __name__ == "__main__":
    raise SystemExit(main())

"""tito's command groups, one small file each; tito/cli.py wires them together."""

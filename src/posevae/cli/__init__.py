"""The `posevae` command line: argparse only, one file per command group, calling plain functions."""

"""`posevae` command line: train | test | transfer | convert | demo | data | compare | report.

Only the command line knows argparse: each command group has its file here (:mod:`.train`, :mod:`.evaluation`,
:mod:`.demo`, :mod:`.data`, :mod:`.convert`, :mod:`.report`), whose handler calls one plain function of the
package; :mod:`.options` turns the config dataclasses into options and back.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence

from posevae.cli.convert import add_convert_command
from posevae.cli.data import add_data_commands
from posevae.cli.demo import add_demo_command
from posevae.cli.evaluation import add_test_command, add_transfer_command
from posevae.cli.report import add_report_commands
from posevae.cli.train import add_train_command
from posevae.errors import UserError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posevae", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_command(sub)
    add_test_command(sub)
    add_demo_command(sub)
    add_data_commands(sub)
    add_transfer_command(sub)
    add_convert_command(sub)
    add_report_commands(sub)
    return parser


def _version() -> str:
    from posevae import __version__

    return __version__


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Warnings shown as one line each, ``posevae: warning: MESSAGE`` on stderr (not Python's two lines with
    the source line that raised it), as errors are. Only how a warning is formatted changes: a caller that
    records warnings (``warnings.catch_warnings(record=True)``) still gets them."""
    def one_line(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> str:
        return f"posevae: warning: {' '.join(str(message).split())}\n"

    before = warnings.formatwarning
    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = before


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        with one_line_warnings():
            args.func(args)
    except UserError as err:
        print(f"posevae: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

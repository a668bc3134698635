"""The ``captum-leg`` command: explain images, evaluate and sanity-check saliency maps.

This module is the entry point (``captum-leg`` and ``python -m captum_leg.cli``): it
parses the command line, runs the command and turns errors into exit statuses. The
rooms behind it:

- :mod:`captum_leg.cli.options`: the commands, their options and help texts;
- :mod:`captum_leg.cli.checks`: bad option values, reported as argparse does;
- :mod:`captum_leg.cli.demo`, :mod:`~captum_leg.cli.explain`,
  :mod:`~captum_leg.cli.evaluate`, :mod:`~captum_leg.cli.sanity`: one per command;
- :mod:`captum_leg.cli.images`: finding and reading input images, pictures of maps;
- :mod:`captum_leg.cli.failures`: per-file failures of the batch commands;
- :mod:`captum_leg.cli.outputs`: atomic writes, settings beside each map, the map cache;
- :mod:`captum_leg.cli.sharding`: torchrun's share of the images and device per process;
- :mod:`captum_leg.cli.model`: the built-in model or ``--model MODULE:CALLABLE``;
- :mod:`captum_leg.cli.console`: log lines and progress bars.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, Optional, Sequence

from captum_leg.cli import demo as cli_demo, evaluate as cli_evaluate, explain as cli_explain, sanity as cli_sanity
from captum_leg.cli.checks import UsageError, check_args, option_in_error
from captum_leg.cli.images import collect_images, load_image, output_names, to_model_input
from captum_leg.cli.model import load_model
from captum_leg.cli.options import EPILOG, MODEL_HELP, build_parser, build_parsers
from captum_leg.cli.outputs import FigureSaver
from captum_leg.cli.outputs import atomic_save as _atomic_save  # noqa: F401  (tests write through it)
from captum_leg.cli.outputs import save_figure as _save_figure
from captum_leg.cli.sharding import pick_device

__all__ = [
    "EPILOG", "MODEL_HELP", "UsageError", "build_parser", "check_args", "collect_images", "load_image",
    "load_model", "main", "output_names", "pick_device", "to_model_input",
]

_COMMANDS: Dict[str, Callable[[argparse.Namespace, FigureSaver], int]] = {
    "demo": cli_demo.run,
    "explain": cli_explain.run,
    "evaluate": cli_evaluate.run,
    "sanity": cli_sanity.run,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``captum-leg`` command.

    Returns the exit status: 0 on success, 1 when a batch command skipped a file, 130
    after Ctrl-C. Bad option values exit with status 2 and one error line naming the
    option, as argparse's own errors do.
    """
    parser, commands = build_parsers()
    args = parser.parse_args(argv)
    usage = commands[args.command]
    try:
        check_args(args)
        # the commands write their figures with this module's _save_figure, looked up
        # now: a test replaces it to interrupt a run in the middle of a write
        return int(_COMMANDS[args.command](args, _save_figure) or 0)
    except UsageError as err:
        usage.error(str(err))
    except (ValueError, TypeError) as err:
        option = option_in_error(err, args)
        if option is None:
            raise
        usage.error(f"argument {option}: " + " ".join(str(err).split()))
    except KeyboardInterrupt:
        # finished outputs are complete files; the one being written was removed
        print("captum-leg: interrupted; completed outputs are kept, rerun to resume", file=sys.stderr)
        return 130
    return 0  # not reached: usage.error exits


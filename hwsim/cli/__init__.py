"""The ``hwsim`` command (typer + rich).

Commands are thin: parse options, call the library, render. Results go to stdout, progress and
errors to stderr. Errors are one line (``error: ...``); exit 2 for bad input, 1 for a failed run;
``--debug`` shows the traceback. Torch is imported only by commands whose model needs it.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from hwsim.errors import HwsimError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Simulate compressed neural networks on edge accelerators; rank and sweep designs.")
err_console = Console(stderr=True)

# Command modules; each has ``register(app)``. Optional ones may be absent in a partial checkout.
_COMMAND_MODULES = ("hwsim.cli.core", "hwsim.cli.scalesim", "hwsim.cli.compress", "hwsim.cli.dse",
                    "hwsim.cli.autocompress", "hwsim.cli.validate", "hwsim.cli.timeloop")


def _register_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point: run the app, turning hwsim errors into one line and an exit code."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app(prog_name="hwsim")
    except HwsimError as err:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {err}", highlight=False, soft_wrap=True)
        raise SystemExit(err.exit_code) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {err.filename}: {err.strerror}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except Exception as err:  # noqa: BLE001 - the CLI never shows a traceback without --debug
        if debug:
            raise
        err_console.print(f"[red]error:[/] {type(err).__name__}: {err} (run with --debug for the traceback)",
                          highlight=False, soft_wrap=True)
        raise SystemExit(1) from None

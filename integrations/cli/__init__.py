"""The `joulemeter` command line: thin commands over the Python API, rendered with rich.

Each command module defines `register(app)`; heavy imports stay inside the commands so
that `joulemeter --help` is fast.
"""

from __future__ import annotations

import importlib
import logging

import typer
from typer.core import TyperGroup


def _without_type_labels_on_flags(command: TyperGroup) -> None:
    """Flags (--json, -v) take no value, so their help shows none: typer labels every option
    with its type, `<bool>` and `<int>` included, as if `--json <bool>` or `-v 2` were asked for.
    Arguments are named by their metavar (RUN), so their `<str>` or `<list[str]>` goes too."""
    for param in command.params:
        # duck-typed: typer ships its own copy of click, whose Option is not click.Option
        if param.param_type_name == "option" and (param.is_flag or param.count):
            param.metavar = ""
            param.show_default = param.show_default and not param.count  # not "-v [default: 0]"
        elif param.param_type_name == "argument":
            param.display_type_rich = _no_type_label
    make_help_option = command.get_help_option  # --help is made when help is asked for

    def get_help_option(ctx: typer.Context) -> object:
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        _without_type_labels_on_flags(sub)


def _no_type_label(ctx: typer.Context) -> None:
    return None


class _Group(TyperGroup):
    """The joulemeter command group, its help tidied (`_without_type_labels_on_flags`)."""

    def __init__(self, **attrs: object) -> None:
        super().__init__(**attrs)
        _without_type_labels_on_flags(self)


app = typer.Typer(
    cls=_Group,
    name="joulemeter",
    help="Measure the energy of ML work, keep a ledger, and report kWh, cost and CO2e.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = ("meter_cmd", "manage_cmd", "distributed_cmd", "factors_cmd", "report_cmd", "inventory_cmd", "interop_cmd", "demo_cmd")

for _module in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_module}").register(app)


def _print_version(requested: bool) -> None:
    if requested:
        from importlib.metadata import version

        typer.echo(f"joulemeter {version('joulemeter')}")
        raise typer.Exit()


_HANDLER_NAME = "joulemeter-cli"


@app.callback()
def _configure(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Log what joulemeter does (-v info, -vv debug)."),
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="Print the installed version and exit."),
) -> None:
    """Measure the energy of ML work, keep a ledger, and report kWh, cost and CO2e."""
    from rich.logging import RichHandler

    from joulemeter.integrations.cli._common import SafeFormatter, stderr

    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logger = logging.getLogger("joulemeter")
    logger.setLevel(level)
    # warnings (a ledger write that failed and was spooled, a default factor) on stderr,
    # so --json output on stdout stays parseable
    # (times only where -v asks for the story of a run)
    handler = RichHandler(level=level, show_path=False, show_time=verbose > 0, console=stderr, markup=False)
    handler.setFormatter(SafeFormatter())  # a logged run name or path cannot drive the terminal
    handler.set_name(_HANDLER_NAME)
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:  # one per process:
        logger.removeHandler(old)  # commands invoked again (tests, notebooks) say each thing once
    logger.addHandler(handler)


def main() -> None:
    """Console-script entry point."""
    app()

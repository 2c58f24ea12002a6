"""Entry point of the ``attnsvm`` console script.

Sub-commands live in one module each (``solve_cmd``, ``train_cmd``, ...; the table
:data:`COMMANDS`).  This module imports only the one that runs (none for ``--help`` and
``--version``), and each command module imports what it needs at its top, so laziness lives at
this one boundary: ``attnsvm solve`` never imports PyTorch.  The probe's extra is checked
(:func:`attnsvm._extras.check_command_extra`) before its command runs.

Exit codes: 0 success, 2 bad input (one ``error:`` line on stderr), 3 infeasible SVM,
1 anything else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from attnsvm import __version__
from attnsvm._extras import check_command_extra
from attnsvm.exceptions import InfeasibleProblemError, InvalidInputError, MissingDependencyError

from ._examples import EXAMPLES

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_ERROR", "EXIT_BAD_INPUT", "EXIT_INFEASIBLE"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INFEASIBLE = 3

#: sub-command -> (module, add-arguments function, run function, help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "solve": ("solve_cmd", "add_solve_arguments", "run_solve", "solve an Att-SVM instance"),
    "train": ("train_cmd", "add_train_arguments", "run_train",
              "train one-layer attention on an instance"),
    "reproduce": ("reproduce_cmd", "add_reproduce_arguments", "run_reproduce",
                  "regenerate the papers' figures into an HTML report"),
    "probe": ("probe_cmd", "add_probe_arguments", "run_probe",
              "measure how SVM-like the heads of a pretrained transformer are"),
    "ntp": ("ntp_cmd", "add_ntp_arguments", "run_ntp",
            "next-token prediction: token-priority graphs, Graph-SVM and W_fin"),
    "pretrain": ("pretrain_cmd", "add_pretrain_arguments", "run_pretrain",
                 "train a small decoder-only transformer and write its checkpoints"),
    "track": ("track_cmd", "add_track_arguments", "run_track",
              "probe every checkpoint of a training run: heads against their Att-SVMs"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one ``error:`` line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser(command: str | None = None, *,
                 load: bool = True) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported (all when None, none when
    ``load`` is False: enough for ``--help``, ``--version`` and an unknown command)."""
    parser = _Parser(prog="attnsvm", description="Softmax attention as a max-margin SVM.")
    parser.add_argument("--version", action="version", version=f"attnsvm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (mod, add, _run, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES.get(name),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        if load and (command is None or command == name):
            module = importlib.import_module(f"attnsvm.cli.{mod}")
            getattr(module, add)(sp)
    return parser


def _single_job(args: list[str]) -> bool:
    """``--jobs 1`` (or ``--jobs=1``) among the probe's arguments."""
    for k, a in enumerate(args):
        if a == "--jobs" and k + 1 < len(args):
            return args[k + 1].strip() == "1"
        if a.startswith("--jobs="):
            return a.split("=", 1)[1].strip() == "1"
    return False


def _limit_blas_threads() -> None:
    # Oversubscribed BLAS threads on small shared machines slow the solvers by 10x and more;
    # one thread per process is the safe default unless the user says otherwise.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it).

    Whatever happens, stdout holds only what the command wrote on purpose (native library
    diagnostics are sent to stderr), Python warnings become one ``warning:`` line each on
    stderr (none when the input is rejected, so bad input gives exactly one ``error:``
    line), and a closed pipe (``| head``) ends the command quietly.
    """
    # numpy and tqdm (through _output) only once a command line is run, so that importing this
    # module stays cheap
    from ._output import native_stdout_to_stderr, silence_stdout, write_warnings

    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if a in COMMANDS), None)
    if command != "probe" or not _single_job(args_list):
        # one BLAS thread per process; a probe running one head at a time (--jobs 1) keeps
        # every core for its large dense factorizations
        _limit_blas_threads()
    error: BaseException | None = None
    code = EXIT_ERROR
    with warnings.catch_warnings(record=True) as caught:
        try:
            with native_stdout_to_stderr():
                code = _dispatch(args_list, command)
        except SystemExit as exc:
            code = int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
        except KeyboardInterrupt:
            error, code = _INTERRUPTED, 130
        except BrokenPipeError:
            silence_stdout()  # the reader went away: not worth an error line
            return EXIT_ERROR
        except BaseException as exc:  # noqa: BLE001 - the CLI never shows a traceback
            error, code = exc, error_code(exc)
    if code != EXIT_BAD_INPUT:
        write_warnings(caught)
    if error is not None:
        report_error(error)
    return code


#: Ctrl-C, reported as ``error: interrupted``
_INTERRUPTED = KeyboardInterrupt("interrupted")


def _dispatch(args_list: list[str], command: str | None) -> int:
    parser = build_parser(command, load=command is not None)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.error(f"a command is required (one of {', '.join(COMMANDS)}); "
                     f"see 'attnsvm --help'")
    mod, _add, run, _help = COMMANDS[args.command]
    check_command_extra(args.command, getattr(args, "model", None))  # the extra 'probe'
    module = importlib.import_module(f"attnsvm.cli.{mod}")
    return int(getattr(module, run)(args))


def error_code(exc: BaseException) -> int:
    """The exit code for an exception: 2 bad input, 3 infeasible, 130 interrupt, else 1."""
    if isinstance(exc, (InvalidInputError, MissingDependencyError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, InfeasibleProblemError):
        return EXIT_INFEASIBLE
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return EXIT_ERROR


def report_error(exc: BaseException) -> int:
    """Print one ``error:`` line for ``exc`` and return its exit code."""
    code = error_code(exc)
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if code == EXIT_ERROR:
        msg = f"{type(exc).__name__}: {msg}"
        if os.environ.get("ATTNSVM_DEBUG"):
            import traceback

            traceback.print_exception(exc)
    sys.stderr.write(f"error: {msg}\n")
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

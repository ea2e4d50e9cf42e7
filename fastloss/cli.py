"""The ``fastloss`` command.

    fastloss bench                      # the throughput table on built-in seeded data
    fastloss bench --rows 8192 --classes 100 --dtype float64 --loss cross_entropy
    fastloss bench --plot throughput.png
    fastloss eval cross_entropy --input logits.npy --target labels.npy --per-sample losses.npy
    fastloss diagnose train.csv val.csv --plot curves.png
"""
import argparse
import inspect
import json
import math
import os
import shutil
import signal
import sys
import textwrap
import threading

import numpy as np

from . import __version__
from ._core.backends import BACKENDS
from ._core.threads import set_num_threads
from .benchmarks import CASES, IMPLS

WIDTH = 100  # the widest line the command prints (narrower when the terminal is)


def _progress(enabled, text):
    if enabled:
        print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)


def bench(args):
    from . import benchmarks, warmup

    impls = [i for i in benchmarks.available_impls() if i in args.impl]
    base = "fastloss" if "fastloss" in impls else "cython"  # the Numba kernels, unless numba is not in use
    cases = [c for c in benchmarks.CASES if not args.loss or c.loss in args.loss]
    if not cases:
        known = sorted({c.loss for c in benchmarks.CASES})
        raise SystemExit(f"fastloss bench: no case for --loss {args.loss}; known losses: {', '.join(known)}")
    if args.plot:
        _check_output("--plot", args.plot)
    show = sys.stderr.isatty() and not args.no_progress
    _progress(show, "compiling / loading kernels ...")
    warmup(dtypes=(args.dtype,))
    rng = np.random.default_rng(args.seed)
    rows = []
    for i, case in enumerate(cases):
        inputs = case.make_inputs(rng, args.rows, args.classes, args.dtype)
        nbytes = inputs["x"].nbytes
        timings = {}
        for impl in impls:
            _progress(show, f"[{i + 1}/{len(cases)}] {case.label(args.rows, args.classes, args.dtype)}: {impl}")
            timings[impl] = benchmarks.time_call(case.impls[impl](inputs), repeat=args.repeat)
        rows.append((case.label(args.rows, args.classes, args.dtype), nbytes, timings))
    _progress(show, "")
    if args.plot:
        plot_throughput(cases, impls, _bench_sizes(args), args, show, args.plot)
        print(f"fastloss bench: plot written to {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps([{"case": label, "input_bytes": nbytes, "seconds": t} for label, nbytes, t in rows],
                         indent=2))
        return 0
    width = min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    notes = [
        f"fastloss bench: {benchmarks.machine()}",
        f"inputs: {args.rows} x {args.classes} {args.dtype} per case; time: median of {args.repeat} runs after a "
        f"warm-up call; GB/s: one read of the input per run; {base} speed-up: that row's time over {base}'s.",
        "fastloss = the Numba kernels (the default backend), cython = the same losses compiled ahead of time "
        "(backend=\"cython\"). " + BACKEND_NOTE,
    ]
    for note in notes:
        print(textwrap.fill(note, width, subsequent_indent="  "))
    print()
    groups = [(label, [(impl, f"{timings[impl] * 1e3:.3f}", f"{nbytes / timings[impl] / 1e9:.2f}",
                        "" if impl == base else f"{timings[impl] / timings[base]:.3g}x") for impl in impls])
              for label, nbytes, timings in rows]
    header = ("case", "implementation", "time (ms)", "GB/s", f"{base} speed-up")
    print("\n".join(_table(header, groups, width, "<>>>")))
    return 0


# Why the default backend can lose to the Cython one (measured figures: bench/RESULTS.md).
BACKEND_NOTE = ("Where fastloss is slower than cython: at small sizes a Numba parallel kernel starts its whole "
                "thread team on every call (only some kernels have a single-thread path for small inputs), while "
                "a Cython kernel runs on the calling thread when the work is small, and on a busy machine waiting "
                "for the team can take milliseconds; at large sizes the two compilers vectorise differently and "
                "either may be ahead.")


def _table(header, groups, width, align):
    """The lines of a table: ``groups`` are ``(label, rows)``; the label is wrapped down the
    first column beside its rows (so a long one never pushes the others out), the other
    columns are aligned by ``align`` ("<" or ">" each), and every line fits ``width``
    where the cells allow it."""
    cells = [header[1:]] + [row for _, rows in groups for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    room = width - sum(widths) - 2 * len(widths)
    first = max(min(room, max(len(header[0]), *(len(label) for label, _ in groups))), 12)

    def line(label, row):
        return (f"{label:<{first}}" + "".join(f"  {c:{a}{w}}" for c, a, w in zip(row, align, widths))).rstrip()

    out = [line(header[0], header[1:]), "-" * (first + sum(widths) + 2 * len(widths))]
    for number, (label, rows) in enumerate(groups):
        labels = textwrap.wrap(label, first)
        if number:
            out.append("")
        for i in range(max(len(labels), len(rows))):
            out.append(line(labels[i] if i < len(labels) else "",
                            rows[i] if i < len(rows) else ("",) * len(widths)))
    return out


def _bench_sizes(args):
    """Batch sizes for the throughput plot: powers of 4 from 256 rows up to ``--rows``."""
    sizes = [256]
    while sizes[-1] * 4 <= args.rows:
        sizes.append(sizes[-1] * 4)
    return sizes if sizes[-1] == args.rows else sizes + [args.rows]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("fastloss: --plot needs matplotlib: pip install 'fastloss[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_throughput(cases, impls, sizes, args, show, path):
    """One panel per case: GB/s of each implementation against the batch size, the median
    of ``args.repeat`` runs as a line and their range (min to max) as a band; one legend
    above the panels, and the machine, threads and versions below them."""
    from . import benchmarks

    plt = _pyplot()
    rng = np.random.default_rng(args.seed)
    columns = min(2, len(cases))
    rows = math.ceil(len(cases) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.4 * rows + 1.2), squeeze=False,
                             layout="constrained")
    for ax, case in zip(axes.flat, cases):
        for impl in impls:
            runs = []  # GB/s of each run, one row per size
            for n in sizes:
                _progress(show, f"plot: {case.label(n, args.classes, args.dtype)}: {impl}")
                inputs = case.make_inputs(rng, n, args.classes, args.dtype)
                runs.append(inputs["x"].nbytes / benchmarks.time_calls(case.impls[impl](inputs), args.repeat) / 1e9)
            runs = np.array(runs)
            line, = ax.plot(sizes, np.median(runs, axis=1), marker="o", ms=3, label=impl)
            ax.fill_between(sizes, runs.min(axis=1), runs.max(axis=1), color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"batch size N (C = {args.classes}, {args.dtype})")
        ax.set_ylabel("GB/s of input")
        ax.set_title(f"{case.loss} {case.mode}", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(cases):]:
        ax.set_visible(False)
    _progress(show, "")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside upper center", ncol=len(impls),
               frameon=False)
    caption = (f"median of {args.repeat} runs per point, band: fastest to slowest run. "
               f"{benchmarks.machine()}")
    fig.supxlabel(textwrap.fill(caption, 55 * columns), fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _check_output(option, path):
    """An output path whose folder exists, checked before the work that fills it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{option} {path}: no such folder {folder}")


# --------------------------------------------------------------------------- eval

def _eval_losses():
    """The losses ``fastloss eval`` can stream (name -> function): those whose value over a
    batch combines their values over its parts."""
    from ._core.table import LOSSES

    return {entry.name: entry for entry in sorted(LOSSES, key=lambda e: e.name) if entry.decomposable}


def _loss_options():
    """Every option of every loss ``fastloss eval`` takes (name -> default per loss), from the signatures."""
    from ._core.table import PLUMBING

    options = {}
    for name, entry in _eval_losses().items():
        data = set(entry.data)
        for p in inspect.signature(entry.function).parameters.values():
            if p.name not in data and p.name not in PLUMBING and p.name not in ("reduction", "backend"):
                options.setdefault(p.name, {})[name] = _typed_default(p)
    return options


class _NoInteger:
    """The default of an optional integer option (``ignore_index: int | None = None``):
    typed as an integer on the command line, shown as "none"."""

    def __str__(self):
        return "none"


NO_INTEGER = _NoInteger()


def _typed_default(parameter):
    """A loss option's default, :data:`NO_INTEGER` for None where the option is an optional int."""
    if parameter.default is None and str(parameter.annotation).replace(" ", "") in ("int|None", "Optional[int]"):
        return NO_INTEGER
    return parameter.default


def _option_help(defaults):
    """``(metavar, help)`` of a loss option from its default in each loss that has it (the
    type :func:`_convert_option` parses the text as)."""
    kinds = {int if d is NO_INTEGER else type(d) for d in defaults.values()}
    per_loss = ", ".join(f"{loss} ({'none' if d is None else str(d).lower() if isinstance(d, bool) else d})"
                         for loss, d in sorted(defaults.items()))
    if kinds == {bool}:
        return "{true,false}", f"of {per_loss}"
    if kinds == {str}:
        return "TEXT", f"of {per_loss}"
    if kinds == {int}:
        return "INT", f"of {per_loss}"
    if kinds <= {int, float}:
        return "NUMBER", f"of {per_loss}"
    return "NUMBER|FILE", f"a number, or an array file (.npy, .npz[:NAME], .parquet[:COLUMNS]), of {per_loss}"


def _parse_bool(text):
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _convert_option(name, text, default):
    """The command-line text of an option, typed as the loss's default is."""
    from . import streaming

    flag = "--" + name.replace("_", "-")
    integer = isinstance(default, int) or default is NO_INTEGER
    expected = "true or false" if isinstance(default, bool) else "an integer" if integer else "a number"
    try:
        if isinstance(default, bool):
            return _parse_bool(text)
        if integer:
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
    except ValueError:
        raise ValueError(f"{flag} expects {expected}, got {text!r}") from None
    try:
        return float(text)  # an option without a typed default: a number, or an array file
    except ValueError:
        return streaming.open_array(text)


def eval_command(args, option_values):
    from . import streaming
    from ._core import batch as _batch

    entry = _batch.resolve(args.loss)
    fn = entry.function
    known = inspect.signature(fn).parameters
    options = {}
    for name, text in option_values.items():
        if name not in known:
            raise ValueError(f"{fn.__name__} has no option --{name.replace('_', '-')}")
        options[name] = _convert_option(name, text, _typed_default(known[name]))
    if args.backend is not None:
        options["backend"] = args.backend
    data = entry.data
    arrays = {data[0]: streaming.open_array(args.input)}
    if args.target is not None:
        target = next((n for n in ("target", "targets", "labels") if n in data), None)
        if target is None:
            raise ValueError(f"{fn.__name__} takes no target (its data are {', '.join(data)}); use --arg NAME=FILE")
        arrays[target] = streaming.open_array(args.target)
    for item in args.arg or ():
        name, sep, path = item.partition("=")
        if not sep or name not in known:
            raise ValueError(f"--arg {item!r}: expected NAME=FILE with NAME one of {', '.join(data)}")
        arrays[name] = streaming.open_array(path)
    missing = [n for n in data if n not in arrays]
    if missing:
        raise ValueError(f"{fn.__name__} also needs {', '.join(missing)}: give them as --arg NAME=FILE")
    reduction = args.reduction or known["reduction"].default
    if args.per_sample is not None:
        if not args.per_sample.endswith(".npy"):
            raise ValueError(f"--per-sample {args.per_sample}: the per-sample losses are written as .npy")
        _check_output("--per-sample", args.per_sample)
    show = sys.stderr.isatty() and not args.no_progress

    def progress(done, total):
        filled = 30 * done // max(total, 1)
        _progress(show, f"{fn.__name__} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} rows")

    result = streaming.evaluate(fn, arrays, options, reduction, args.chunk_rows, args.per_sample,
                                progress if show else None)
    _progress(show, "")
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif result.value is None:
        where = f"written to {result.per_sample}" if result.per_sample else "not kept (use --per-sample OUT.npy)"
        print(f"{result.loss}: {result.rows} per-sample losses {where}")
    else:
        print(f"{result.loss} ({result.reduction} over {result.rows} rows, {result.dtype}): {float(result.value)!r}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_eval(sub):
    e = sub.add_parser("eval", help="a loss over prediction files (.npy, .npz, Parquet), streamed in constant memory",
                       description="Evaluate a loss over prediction and target files in chunks of rows; the result "
                                   "equals the in-memory call. Loss options are those of the Python function.")
    e.add_argument("loss", metavar="LOSS", help=f"one of: {', '.join(_eval_losses())}")
    e.add_argument("--input", required=True, help="predictions: FILE.npy, FILE.npz[:NAME], FILE.parquet[:COLUMNS]")
    e.add_argument("--target", help="targets, same formats")
    e.add_argument("--arg", action="append", metavar="NAME=FILE",
                   help="another data argument of the loss by name (repeatable)")
    e.add_argument("--reduction", help="mean, sum, none (or what the loss accepts; default: the loss's default)")
    e.add_argument("--per-sample", metavar="OUT.npy", help="write the unreduced losses here")
    e.add_argument("--chunk-rows", type=_integer(1), help="rows per chunk (default: about 64 MB of input)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--backend", choices=BACKENDS, help="the kernels to run (default: FASTLOSS_BACKEND, else numba)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _add_threads(e)
    options = e.add_argument_group("loss options", "the options of the Python functions; each names the losses "
                                                            "that take it, with their defaults in brackets")
    for name, defaults in sorted(_loss_options().items()):
        metavar, text = _option_help(defaults)
        options.add_argument("--" + name.replace("_", "-"), dest="opt_" + name, metavar=metavar, help=text)
    return e


def _add_threads(parser):
    parser.add_argument("--threads", type=int, metavar="N", help="threads of the parallel kernels (default: "
                                                                 "FASTLOSS_NUM_THREADS, else all CPUs)")


def _add_diagnose(sub):
    d = sub.add_parser("diagnose", help="read training/validation loss curves and say what is happening",
                       description="Verdict on loss curves (CSV or JSON with step,loss): still learning, "
                                   "overfitting, data problem, plateau, diverging or too early to tell.")
    d.add_argument("train", help="training curve: CSV (step,loss) or JSON")
    d.add_argument("val", nargs="?", help="validation curve, same formats")
    d.add_argument("--window", type=float, default=0.5,
                   help="trailing window for the trend test: a fraction of the run in (0, 1), or a whole number "
                        "of points >= 2 (default 0.5)")
    d.add_argument("--alpha", type=float, default=0.05,
                   help="two-sided significance level of the trend test, in (0, 1) (default 0.05)")
    d.add_argument("--plot", metavar="OUT.png", help="draw both curves with the verdict (needs matplotlib)")
    d.add_argument("--json", action="store_true", help="print the diagnosis as JSON")


def diagnose_command(args):
    from .diagnose import diagnose_training, plot_diagnosis

    if args.plot:
        _check_output("--plot", args.plot)
    diagnosis = diagnose_training(args.train, args.val, window=args.window, alpha=args.alpha)
    if args.plot:
        plot_diagnosis(diagnosis, args.plot)
        print(f"fastloss diagnose: plot written to {args.plot}", file=sys.stderr)
    print(json.dumps(diagnosis.as_dict(), indent=2) if args.json else diagnosis.report())
    return 0


def _integer(minimum):
    """An argparse type: an integer >= ``minimum`` (argparse names the option in its one-line error)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that the
    command's cleanup runs (a partial ``--per-sample`` file is removed)."""


def _raise_terminated(signum, frame):
    raise _Terminated


def _run_reporting_errors(command, fn, *args):
    """Bad input: one line on stderr naming the problem, exit status 1. SIGINT (Ctrl-C) and
    SIGTERM: the command's cleanup runs, one line on stderr, exit status 128 + the signal
    number (130, 143), as a shell reports a process the signal ended."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return fn(*args)
    except (ValueError, TypeError, OSError, ImportError, IndexError, KeyError, MemoryError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"fastloss {command}: error: {message}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Terminated) as stop:
        number = signal.SIGINT if isinstance(stop, KeyboardInterrupt) else signal.SIGTERM
        clear = "\r\033[K" if sys.stderr.isatty() else ""  # over a progress line
        print(f"{clear}fastloss {command}: stopped by {number.name}", file=sys.stderr)
        return 128 + number
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    parser = _Parser(prog="fastloss", description="fastloss: fused loss kernels for NumPy arrays")
    parser.add_argument("--version", action="version", version=f"fastloss {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("bench", help="throughput of fastloss against NumPy and torch on seeded synthetic data")
    b.add_argument("--rows", type=_integer(1), default=65536, help="batch size N (default 65536)")
    b.add_argument("--classes", type=_integer(1), default=1000, help="classes C (default 1000)")
    b.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    b.add_argument("--loss", action="append",
                   help=f"only this loss (repeatable): {', '.join(dict.fromkeys(c.loss for c in CASES))}")
    b.add_argument("--impl", action="append", default=None, choices=list(IMPLS),
                   help="only these implementations (repeatable; fastloss is always included; "
                        "cython: fastloss on its Cython kernels)")
    b.add_argument("--repeat", type=_integer(1), default=5, help="timed runs per case (default 5)")
    b.add_argument("--seed", type=_integer(0), default=0, help="seed of the synthetic data (default 0)")
    b.add_argument("--json", action="store_true", help="print JSON instead of the table")
    b.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    b.add_argument("--plot", metavar="OUT.png", help="also plot throughput against batch size, one line per "
                                                     "implementation with its min-max band (needs matplotlib)")
    _add_threads(b)
    _add_eval(sub)
    _add_diagnose(sub)
    args = parser.parse_args(argv)
    if getattr(args, "threads", None) is not None:
        try:
            set_num_threads(args.threads)  # for the whole process: every kernel of the command
        except ValueError as error:
            parser.error(f"--threads: {error}")
    if args.command == "eval":
        options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
        return _run_reporting_errors("eval", eval_command, args, options)
    if args.command == "diagnose":
        return _run_reporting_errors("diagnose", diagnose_command, args)
    if args.command == "bench":
        args.impl = sorted(set(args.impl or IMPLS) | {"fastloss"})
        return _run_reporting_errors("bench", bench, args)
    return 1


if __name__ == "__main__":
    sys.exit(main())

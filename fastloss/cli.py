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
import os
import platform
import sys

import numpy as np

from ._backend import BACKENDS
from ._threads import set_num_threads
from .benchmarks import IMPLS


def _progress(enabled, text):
    if enabled:
        print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)


def bench(args):
    from . import _backend, benchmarks, warmup

    impls = [i for i in benchmarks.available_impls() if i in args.impl]
    base = "fastloss" if "fastloss" in impls else "cython"  # the Numba kernels, unless numba is not in use
    cases = [c for c in benchmarks.CASES if not args.loss or c.loss in args.loss]
    if not cases:
        known = sorted({c.loss for c in benchmarks.CASES})
        raise SystemExit(f"fastloss bench: no case for --loss {args.loss}; known losses: {', '.join(known)}")
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
        sizes = _bench_sizes(args)
        plot_throughput(cases, impls, sizes, args, show, args.plot)
    if args.json:
        print(json.dumps([{"case": label, "input_bytes": nbytes, "seconds": t} for label, nbytes, t in rows],
                         indent=2))
        return 0
    try:
        import torch

        torch_note = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_note = " (torch not installed: pip install torch==2.13.0 to compare)"
    numba = _backend.numba
    numba_note = (f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads)" if numba is not None
                  else f"numba not in use ({_backend.NUMBA_OFF_REASON})")
    print(f"fastloss bench: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{numba_note}, numpy {np.__version__}{torch_note}")
    print("medians of", args.repeat, f"runs; GB/s counts one read of the input; 'x' = {base}'s speed-up over it; "
          "fastloss = Numba kernels, cython = Cython kernels")
    head = f"{'case':<50}" + "".join(f"{impl:>22}" for impl in impls)
    others = [i for i in impls if i != base]
    head += "".join(f"{'vs ' + i:>12}" for i in others)
    print(head)
    print("-" * len(head))
    for label, nbytes, timings in rows:
        line = f"{label:<50}"
        for impl in impls:
            t = timings[impl]
            line += f"{t * 1e3:>10.3f} ms {nbytes / t / 1e9:>6.1f} GB/s"
        for other in others:
            line += f"{timings[other] / timings[base]:>11.2f}x"
        print(line)
    return 0


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
    """One panel per case: GB/s of each implementation against the batch size, one line each."""
    from . import benchmarks

    plt = _pyplot()
    rng = np.random.default_rng(args.seed)
    fig, axes = plt.subplots(1, len(cases), figsize=(4.5 * len(cases), 3.8), squeeze=False)
    for ax, case in zip(axes[0], cases):
        for impl in impls:
            throughput = []
            for n in sizes:
                _progress(show, f"plot: {case.label(n, args.classes, args.dtype)}: {impl}")
                inputs = case.make_inputs(rng, n, args.classes, args.dtype)
                seconds = benchmarks.time_call(case.impls[impl](inputs), repeat=args.repeat)
                throughput.append(inputs["x"].nbytes / seconds / 1e9)
            ax.plot(sizes, throughput, marker="o", label=impl)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"batch size N (C = {args.classes}, {args.dtype})")
        ax.set_ylabel("GB/s of input")
        ax.set_title(f"{case.loss} {case.mode}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
    _progress(show, "")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- eval

def _loss_options():
    """Every option of every loss (name -> default per loss), from the signatures."""
    from . import _batch

    options = {}
    for name, fn in _batch.losses().items():
        data = set(_batch.data_parameters(fn))
        for p in inspect.signature(fn).parameters.values():
            if p.name not in data and p.name not in _batch.PLUMBING and p.name not in ("reduction", "backend"):
                options.setdefault(p.name, {})[name] = p.default
    return options


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
    try:
        if isinstance(default, bool):
            return _parse_bool(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
    except ValueError:
        raise ValueError(f"{flag} expects a {type(default).__name__}, got {text!r}") from None
    try:
        return float(text)  # an option without a typed default: a number, or an array file
    except ValueError:
        return streaming.open_array(text)


def eval_command(args, option_values):
    from . import _batch, streaming

    fn, spec = _batch.resolve(args.loss)
    known = inspect.signature(fn).parameters
    options = {}
    for name, text in option_values.items():
        if name not in known:
            raise ValueError(f"{fn.__name__} has no option --{name.replace('_', '-')}")
        options[name] = _convert_option(name, text, known[name].default)
    if args.backend is not None:
        options["backend"] = args.backend
    data = _batch.data_parameters(fn)
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
    if args.per_sample is not None and not args.per_sample.endswith(".npy"):
        raise ValueError(f"--per-sample {args.per_sample}: the per-sample losses are written as .npy")
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
    e.add_argument("loss", help="a fastloss loss, e.g. cross_entropy")
    e.add_argument("--input", required=True, help="predictions: FILE.npy, FILE.npz[:NAME], FILE.parquet[:COLUMNS]")
    e.add_argument("--target", help="targets, same formats")
    e.add_argument("--arg", action="append", metavar="NAME=FILE",
                   help="another data argument of the loss by name (repeatable)")
    e.add_argument("--reduction", help="mean, sum, none (or what the loss accepts; default: the loss's default)")
    e.add_argument("--per-sample", metavar="OUT.npy", help="write the unreduced losses here")
    e.add_argument("--chunk-rows", type=int, help="rows per chunk (default: about 64 MB of input)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--backend", choices=BACKENDS, help="the kernels to run (default: FASTLOSS_BACKEND, else numba)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _add_threads(e)
    for name, defaults in sorted(_loss_options().items()):
        kinds = sorted({type(d).__name__ for d in defaults.values()})
        e.add_argument("--" + name.replace("_", "-"), dest="opt_" + name, metavar="VALUE",
                       help=f"option {name} of {', '.join(sorted(defaults))} ({'/'.join(kinds)}; "
                            f"an array option takes a file)")
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
                   help="trailing window for the trend test: a fraction of the run (< 1) or a number of points")
    d.add_argument("--alpha", type=float, default=0.05, help="significance level of the trend test")
    d.add_argument("--plot", metavar="OUT.png", help="draw both curves with the verdict (needs matplotlib)")
    d.add_argument("--json", action="store_true", help="print the diagnosis as JSON")


def diagnose_command(args):
    from .diagnose import diagnose_training, plot_diagnosis

    window = int(args.window) if args.window >= 1 else args.window
    diagnosis = diagnose_training(args.train, args.val, window=window, alpha=args.alpha)
    if args.plot:
        plot_diagnosis(diagnosis, args.plot)
    print(json.dumps(diagnosis.as_dict(), indent=2) if args.json else diagnosis.report())
    return 0


def _run_reporting_errors(command, fn, *args):
    """Bad input: one line on stderr naming the problem, exit status 1."""
    try:
        return fn(*args)
    except (ValueError, TypeError, OSError, ImportError, IndexError, KeyError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"fastloss {command}: error: {message}", file=sys.stderr)
        return 1


def main(argv=None):
    parser = _Parser(prog="fastloss", description="fastloss: fused loss kernels for NumPy arrays")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("bench", help="throughput of fastloss against NumPy and torch on seeded synthetic data")
    b.add_argument("--rows", type=int, default=65536, help="batch size N (default 65536)")
    b.add_argument("--classes", type=int, default=1000, help="classes C (default 1000)")
    b.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    b.add_argument("--loss", action="append", help="only this loss (repeatable)")
    b.add_argument("--impl", action="append", default=None, choices=list(IMPLS),
                   help="only these implementations (repeatable; fastloss is always included; "
                        "cython: fastloss on its Cython kernels)")
    b.add_argument("--repeat", type=int, default=5, help="timed runs per case (default 5)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true", help="print JSON instead of the table")
    b.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    b.add_argument("--plot", metavar="OUT.png", help="also plot throughput against batch size, one line per "
                                                     "implementation (needs matplotlib)")
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
        if args.rows < 1 or args.classes < 1 or args.repeat < 1:
            parser.error("--rows, --classes and --repeat must be positive")
        args.impl = sorted(set(args.impl or IMPLS) | {"fastloss"})
        return bench(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``fastloss`` command.

    fastloss bench                      # the throughput table on built-in seeded data
    fastloss bench --rows 8192 --classes 100 --dtype float64 --loss cross_entropy
"""
import argparse
import json
import os
import platform
import sys

import numpy as np


def _progress(enabled, text):
    if enabled:
        print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)


def bench(args):
    import numba

    from . import benchmarks, warmup

    impls = [i for i in benchmarks.available_impls() if i in args.impl]
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
    if args.json:
        print(json.dumps([{"case": label, "input_bytes": nbytes, "seconds": t} for label, nbytes, t in rows],
                         indent=2))
        return 0
    try:
        import torch

        torch_note = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_note = " (torch not installed: pip install torch==2.13.0 to compare)"
    print(f"fastloss bench: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), numpy {np.__version__}{torch_note}")
    print("medians of", args.repeat, "runs; GB/s counts one read of the input; 'x' = times faster than fastloss' rival")
    head = f"{'case':<50}" + "".join(f"{impl:>22}" for impl in impls)
    others = [i for i in impls if i != "fastloss"]
    head += "".join(f"{'vs ' + i:>12}" for i in others)
    print(head)
    print("-" * len(head))
    for label, nbytes, timings in rows:
        line = f"{label:<50}"
        for impl in impls:
            t = timings[impl]
            line += f"{t * 1e3:>10.3f} ms {nbytes / t / 1e9:>6.1f} GB/s"
        for other in others:
            line += f"{timings[other] / timings['fastloss']:>11.2f}x"
        print(line)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastloss", description="fastloss: fused loss kernels for NumPy arrays")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="throughput of fastloss against NumPy and torch on seeded synthetic data")
    b.add_argument("--rows", type=int, default=65536, help="batch size N (default 65536)")
    b.add_argument("--classes", type=int, default=1000, help="classes C (default 1000)")
    b.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    b.add_argument("--loss", action="append", help="only this loss (repeatable)")
    b.add_argument("--impl", action="append", default=None, choices=["numpy", "torch", "fastloss"],
                   help="only these implementations (repeatable; fastloss is always included)")
    b.add_argument("--repeat", type=int, default=5, help="timed runs per case (default 5)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true", help="print JSON instead of the table")
    b.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    args = parser.parse_args(argv)
    if args.command == "bench":
        if args.rows < 1 or args.classes < 1 or args.repeat < 1:
            parser.error("--rows, --classes and --repeat must be positive")
        args.impl = sorted(set(args.impl or ["numpy", "torch", "fastloss"]) | {"fastloss"})
        return bench(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())

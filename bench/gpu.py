"""fastloss's GPU kernels on a real GPU: checked against the CPU functions, timed against
torch CUDA, and written up as the "GPU" section of bench/RESULTS.md.

    python bench/gpu.py              # checks, timings at the issue's sizes, RESULTS.md
    python bench/gpu.py --quick      # fewer repetitions (and only the example calls checked)
    python bench/gpu.py --compile    # also compile every family's PTX_SIGNATURES for sm_90
    python bench/gpu.py --simulate   # Numba's CUDA simulator: the checks only, toy sizes, no file written

1. Checks: every device entry point that exists (``fastloss.<family>.cuda.<loss>`` for the
   losses of :data:`fastloss._core.table.LOSSES`) on its table entry's example call (and its variants), moved to the device with
   ``numba.cuda.to_device``, value and gradient against the CPU function on the same host
   arrays: float64 to 1e-10 and float32 to 2e-5, relative (near-zero entries relative to
   a thousandth of their array's largest).
2. Timings (not with ``--simulate``): median of several repetitions between CUDA events,
   fastloss against torch CUDA on the same device tensors (fastloss views them without a
   copy), at the issue's sizes: cross-entropy 65536 x 1000 and 8192 x 128256 (forward,
   and forward + gradient), CTC at bench/bench_ctc.py's sizes, triplet mining at B=4096
   (pytorch-metric-learning if installed, else a torch ``cdist`` batch-hard), elementwise
   losses at 2^28 elements. Bandwidth: the bytes a loss must move (its inputs read, its
   gradient written) over its time, as a fraction of the device-to-device copy bandwidth
   measured in the same run. A loss without a GPU kernel on this checkout is listed as such.
3. ``--compile``: ``compile_ptx(kernel.py_func, signature, cc=(9, 0))`` for each (kernel,
   signature) of each family's ``PTX_SIGNATURES``; needs NVVM (a CUDA toolkit), not a GPU.

Budget: well under 5 minutes on an H100/H200 (a few seconds of JIT per kernel, then
milliseconds per repetition).
"""
import argparse
import datetime
import importlib
import os
import platform
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "RESULTS.md")
TOL = {"float32": 2e-5, "float64": 1e-10}


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", action="store_true", help="Numba's CUDA simulator: checks only, toy sizes")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, the example calls only")
    parser.add_argument("--compile", action="store_true", help="compile the families' PTX_SIGNATURES (cc 9.0)")
    return parser.parse_args(argv)


def _optional_module(name):
    """The module ``name``, or None if it does not exist (an error inside it is raised)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == name:
            return None
        raise


def discover():
    """``[(table entry, device entry point)]`` for every loss with a GPU kernel here."""
    from fastloss._core.table import LOSSES

    found = []
    for entry in LOSSES:
        module = _optional_module(f"fastloss.{entry.family}.cuda")
        if module is not None and hasattr(module, entry.name):
            found.append((entry, getattr(module, entry.name)))
    return found


def _leaves(value):
    """The arrays of a result (a loss, ``(loss, grad)``, ``(loss, (g1, g2))``) in order."""
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _relative_error(got, expected):
    """The largest |got - expected| relative to |expected|, or to a thousandth of the
    array's largest finite magnitude for entries near 0 (a gradient's near-zero entries
    carry the rounding of its large ones); equal infinities and NaN where NaN count as 0."""
    import numpy as np

    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return float("inf")
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    finite = np.abs(expected[np.isfinite(expected)])
    floor = max(1e-3 * float(finite.max(initial=0.0)), 1e-30)
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(got - expected) / np.maximum(np.abs(expected), floor))
    return float(np.max(np.nan_to_num(diff, nan=np.inf), initial=0.0))


def check(found, quick):
    """Rows (loss, dtype, call, max relative error, ok) of the device entry points against
    the CPU functions on their table examples."""
    import numpy as np
    from numba import cuda

    rows = []
    for entry, device_function in found:
        makers = (None,) if quick else (None, *entry.variants)
        for dtype in (("float64",) if quick else ("float64", "float32")):
            for index, make in enumerate(makers):
                rng = np.random.default_rng(index)
                args, options = entry.call(rng, np.dtype(dtype), make)
                expected = entry.function(*args, **options, grad=True)
                device_args = [cuda.to_device(a) for a in args]
                device_options = {k: cuda.to_device(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
                call = "example" if make is None else f"variant {index}"
                try:
                    got = device_function(*device_args, **device_options, grad=True)
                except Exception as error:  # a failed row: the other entry points are still checked
                    rows.append((entry.name, dtype, f"{call}: {type(error).__name__}: {error}"[:160], float("inf"),
                                 False))
                    continue
                errors = [_relative_error(g.copy_to_host() if hasattr(g, "copy_to_host") else g, e)
                          for g, e in zip(_leaves(got), _leaves(expected))]
                error = max(errors) if len(errors) == len(_leaves(expected)) else float("inf")
                rows.append((entry.name, dtype, call, error, error <= TOL[dtype]))
    return rows


def compile_ptx_report():
    """Rows (module, kernel, signature, result) of compiling every PTX_SIGNATURES entry for sm_90."""
    from fastloss._core.cuda import load, simulating
    from fastloss._core.table import LOSSES

    cu = load()
    rows = []
    for family in sorted({entry.family for entry in LOSSES}):
        module = _optional_module(f"fastloss.{family}.cuda")
        for kernel, signature in getattr(module, "PTX_SIGNATURES", ()):
            name = getattr(kernel, "__name__", None) or kernel.py_func.__name__
            if simulating():
                rows.append((module.__name__, name, str(signature[0]), "skipped: the simulator compiles nothing"))
                continue
            try:
                ptx, _ = cu.compile_ptx(kernel.py_func, signature, cc=(9, 0))
                result = f"ok, {len(ptx.splitlines())} lines of PTX"
            except Exception as error:  # reported, not raised: the other kernels still compile
                result = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
            rows.append((module.__name__, name, str(signature[0]), result))
    return rows


# ----------------------------------------------------------------- timings (a real GPU)

class Timer:
    """Median seconds of a callable between CUDA events, after one untimed call."""

    def __init__(self, torch, reps):
        self.torch, self.reps = torch, reps

    def __call__(self, fn):
        torch = self.torch
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(self.reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)


def _entry_point(found, name):
    return dict((entry.name, function) for entry, function in found).get(name)


def timings(found, torch, timer):
    """Rows (case, fastloss s, torch s, bytes moved) at the issue's sizes."""
    from fastloss._core.cuda import as_device

    F = torch.nn.functional
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    rows = []

    def row(case, ours, theirs, moved):
        """Time ``ours`` and ``theirs`` (callables, or None for none); an error is noted, not raised."""
        times = []
        for who, fn in (("fastloss", ours), ("torch", theirs)):
            try:
                times.append(None if fn is None else timer(fn))
            except Exception as error:  # e.g. torch.cuda.OutOfMemoryError: the other cases still run
                times.append(None)
                case += f" ({who}: {type(error).__name__}: {str(error).splitlines()[0][:100]})"
                torch.cuda.empty_cache()
        rows.append((case, *times, moved))

    def missing(case):
        rows.append((case + " (no GPU kernel on this checkout)", None, None, 0))

    cross_entropy = _entry_point(found, "cross_entropy")
    for n, c in ((65536, 1000), (8192, 128256)):
        case = f"cross_entropy {n} x {c} float32"
        if cross_entropy is None:
            missing(case)
            continue
        logits = torch.randn(n, c, device=dev, generator=gen)
        target = torch.randint(0, c, (n,), device=dev, generator=gen)
        x, t = as_device(logits), as_device(target)
        row(case + ", forward", lambda: cross_entropy(x, t), lambda: F.cross_entropy(logits, target), logits.nbytes)
        leaf = logits.clone().requires_grad_(True)

        def torch_fwd_grad():
            leaf.grad = None
            F.cross_entropy(leaf, target).backward()

        row(case + ", forward + gradient", lambda: cross_entropy(x, t, grad=True), torch_fwd_grad, 2 * logits.nbytes)

    ctc = _entry_point(found, "ctc_loss")
    sys.path.insert(0, HERE)
    from bench_ctc import SIZES  # the CPU benchmark's sizes: (T, N, C, S)

    for n_time, n, c, s in SIZES:
        case = f"ctc_loss T={n_time} N={n} C={c} S={s} float32, forward + gradient from logits"
        if ctc is None:
            missing(case)
            continue
        z = torch.randn(n_time, n, c, device=dev, generator=gen)
        targets = torch.randint(1, c, (n, s), device=dev, generator=gen)
        il = torch.full((n,), n_time, device=dev, dtype=torch.int64)
        tl = torch.full((n,), s, device=dev, dtype=torch.int64)
        args = [as_device(a) for a in (z, targets, il, tl)]
        leaf = z.clone().requires_grad_(True)

        def torch_ctc():
            leaf.grad = None
            F.ctc_loss(leaf.log_softmax(2), targets, il, tl).backward()

        row(case, lambda: ctc(*args, from_logits=True, grad=True), torch_ctc, 2 * z.nbytes)

    triplet = _entry_point(found, "batch_triplet_loss")
    b, d, classes, margin = 4096, 512, 256, 0.2
    x = torch.randn(b, d, device=dev, generator=gen)
    y = torch.randint(0, classes, (b,), device=dev, generator=gen)
    reference = _triplet_reference(torch, margin)
    dx, dy = as_device(x), as_device(y)
    for strategy, options in (("batch_hard", {}), ("semi_hard", {}), ("batch_all", {"reduction": "mean_nonzero"})):
        case = f"batch_triplet_loss {strategy} B={b} D={d} float32, forward + gradient"
        if triplet is None:
            missing(case)
            continue
        theirs = reference(strategy, x, y)  # pytorch-metric-learning's "all" triplets mask is B^3: it may not fit
        row(case + ("" if theirs is None else f" (torch: {reference.name})"),
            lambda: triplet(dx, dy, strategy=strategy, margin=margin, grad=True, **options), theirs, x.nbytes * 2)

    for name in ("mse_loss", "binary_cross_entropy_with_logits"):
        function = _entry_point(found, name)
        case = f"{name} 2^28 float32"
        if function is None:
            missing(case)
            continue
        a = torch.randn(1 << 28, device=dev, generator=gen)
        other = torch.rand(1 << 28, device=dev, generator=gen)
        da, db = as_device(a), as_device(other)
        reference_loss = getattr(F, name)
        row(case + ", forward", lambda: function(da, db), lambda: reference_loss(a, other), 2 * a.nbytes)
        leaf = a.clone().requires_grad_(True)

        def torch_elementwise():
            leaf.grad = None
            reference_loss(leaf, other).backward()

        row(case + ", forward + gradient", lambda: function(da, db, grad=True), torch_elementwise, 3 * a.nbytes)
    return rows


def _triplet_reference(torch, margin):
    """``reference(strategy, x, y)``: a callable running torch's loss and backward, or None.
    pytorch-metric-learning's miners and TripletMarginLoss (un-normalised Euclidean, as
    bench/bench_triplet.py) when installed; else a cdist batch-hard for batch_hard only."""
    try:
        from pytorch_metric_learning import distances, losses, miners
    except ImportError:
        miners = None

    def reference(strategy, x, y):
        leaf = x.clone().requires_grad_(True)
        if miners is not None:
            distance = distances.LpDistance(normalize_embeddings=False)
            miner = {"semi_hard": lambda: miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard",
                                                                     distance=distance),
                     "batch_all": lambda: miners.TripletMarginMiner(margin=margin, type_of_triplets="all",
                                                                     distance=distance),
                     "batch_hard": lambda: miners.BatchHardMiner(distance=distance)}[strategy]()
            loss_fn = losses.TripletMarginLoss(margin=margin, distance=distance)

            def call():
                leaf.grad = None
                loss_fn(leaf, y, miner(leaf, y)).backward()

            return call
        if strategy != "batch_hard":
            return None
        same = y[:, None] == y[None, :]

        def batch_hard():
            leaf.grad = None
            dist = torch.cdist(leaf, leaf)
            eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
            hardest_positive = dist.masked_fill(~same | eye, float("-inf")).amax(1)
            hardest_negative = dist.masked_fill(same, float("inf")).amin(1)
            torch.relu(margin + hardest_positive - hardest_negative).mean().backward()

        return batch_hard

    reference.name = "pytorch-metric-learning" if miners is not None else "cdist batch-hard"
    return reference


def copy_bandwidth(torch, timer):
    """Bytes per second of a device-to-device copy of 1 GiB (read + write)."""
    source = torch.empty(1 << 28, device="cuda")
    target = torch.empty_like(source)
    seconds = timer(lambda: target.copy_(source))
    return 2 * source.nbytes / seconds


# ----------------------------------------------------------------- the report

def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return lines


def render(command, device, versions, checks, compiled, timed, bandwidth, reps):
    lines = ["## GPU", "", "bench/gpu.py: the GPU entry points checked against the CPU functions on the table's "
             "example calls, and timed against torch CUDA on the same device tensors.", "",
             f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}: `{command}`", f"- device: {device}", f"- {versions}",
             f"- {platform.platform()}", ""]
    lines += _table(("loss", "dtype", "call", "max relative error", "within tolerance"),
                    [(n, d, c, f"{e:.2e}", "yes" if ok else "**NO**") for n, d, c, e, ok in checks])
    if compiled:
        lines += ["", "PTX for sm_90 (`--compile`):", ""]
        lines += _table(("module", "kernel", "first argument", "result"), compiled)
    if timed is not None:
        lines += ["", f"Timings: medians of {reps} repetitions between CUDA events; device-to-device copy "
                  f"bandwidth {bandwidth / 1e9:.0f} GB/s.", ""]
        body = []
        for case, ours, theirs, moved in timed:
            if ours is None:
                body.append((case, "", f"{theirs * 1e3:.3f} ms" if theirs else "", "", ""))
                continue
            speed = f"{theirs / ours:.2f}x" if theirs else ""
            rate = moved / ours
            body.append((case, f"{ours * 1e3:.3f} ms", f"{theirs * 1e3:.3f} ms" if theirs else "none",
                         speed, f"{rate / 1e9:.0f} GB/s = {rate / bandwidth:.0%} of copy"))
        lines += _table(("case", "fastloss", "torch CUDA", "speed-up", "fastloss bandwidth"), body)
    return "\n".join(lines) + "\n"


def write_section(section):
    """Put ``section`` into bench/RESULTS.md in place of its "## GPU" section (appended if none)."""
    with open(RESULTS) as f:
        text = f.read()
    pattern = re.compile(r"^## GPU\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(RESULTS, "w") as f:
        f.write(text)


def main(argv=None):
    args = _arguments(argv)
    if args.simulate:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported
    import numba

    from fastloss._core.cuda import load

    cu = load()
    start = time.perf_counter()
    found = discover()
    checks = check(found, args.quick)
    compiled = compile_ptx_report() if args.compile else []
    command = "python bench/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    versions = f"python {platform.python_version()}, numba {numba.__version__}, kernels compiled by {cu.__name__}"
    timed, bandwidth, reps = None, None, 3 if args.quick else 10
    if args.simulate:
        device = "Numba's CUDA simulator (checks only)"
    else:
        import torch

        device = torch.cuda.get_device_name()
        versions += f", torch {torch.__version__}"
        timer = Timer(torch, reps)
        bandwidth = copy_bandwidth(torch, timer)
        timed = timings(found, torch, timer)
    section = render(command.strip(), device, versions, checks, compiled, timed, bandwidth, reps)
    print(section)
    print(f"{len(found)} GPU entry points, {sum(ok for *_, ok in checks)}/{len(checks)} checks within tolerance, "
          f"{time.perf_counter() - start:.1f} s")
    if not args.simulate:
        write_section(section)
    return 0 if all(ok for *_, ok in checks) and not any("FAILED" in r[-1] for r in compiled) else 1


if __name__ == "__main__":
    sys.exit(main())

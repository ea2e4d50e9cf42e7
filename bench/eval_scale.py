"""Speed and memory of evaluation at scale (issue 7): run as a script, not under pytest.

    python bench/eval_scale.py                       # the issue's sizes: 4 GB for eval, 2 GB for Dask
    python bench/eval_scale.py --gigabytes 1 --dask-gigabytes 0.5 [--dir /tmp] [--skip-dask]

1. ``fastloss eval cross_entropy`` over an (N, 1000) float32 .npy of logits in the page
   cache: peak RSS of the command (VmHWM of the child) and its throughput (its own
   timing, kernels already cached) against the in-memory kernel on the loaded array.
2. ``fastloss.dask.cross_entropy`` on a two-process LocalCluster (1 thread each) reading
   logits and targets .npy of its own size with ``from_npy`` on the workers, against the
   in-memory call;
   by default one chunk per worker (each task maps its rows from the page cache, and on
   2 cores every further task costs scheduling time: with the graph of 2026-11-23 morning,
   16 chunks of 128 MB took 0.44 s where 2 of 1 GB took 0.22 s for the same 2 GB).

Prints the figures as JSON and writes them as a section of bench/RESULTS.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import fastloss as fl  # noqa: E402


def median_time(fn, repeat=3):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def alternated_medians(fns, repeat=5):
    """Median times of ``fns``, called in turn ``repeat`` times after one warm-up call each,
    so that every one of them meets the same conditions (this machine's speed drifts by
    tens of percent over minutes: other guests, and a kernel thread reclaiming memory)."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, own in zip(fns, times):
            start = time.perf_counter()
            fn()
            own.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def logits_file(directory, gigabytes, classes):
    """``(logits .npy, targets .npy, rows)`` of seeded random data of that size, made once."""
    n = int(gigabytes * 2**30 / (4 * classes))
    x_path = os.path.join(directory, f"eval_scale_x_{n}x{classes}.npy")
    t_path = os.path.join(directory, f"eval_scale_t_{n}.npy")
    if not os.path.exists(x_path) or np.load(x_path, mmap_mode="r").shape != (n, classes):
        out = np.lib.format.open_memmap(x_path, "w+", np.float32, (n, classes))
        rng = np.random.default_rng(0)
        for a in range(0, n, 65536):
            out[a:a + 65536] = rng.standard_normal((min(n, a + 65536) - a, classes), np.float32)
        out.flush()
        del out
        np.save(t_path, np.random.default_rng(1).integers(0, classes, n))
    return x_path, t_path, n


def in_memory_call(x_path, t_path):
    """The in-memory call on the loaded arrays (loading also puts the file in the page
    cache), and its value."""
    x, t = np.load(x_path), np.load(t_path)
    return (lambda: fl.cross_entropy(x, t)), float(fl.cross_entropy(x, t))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=4.0, help="size of the logits fastloss eval reads")
    parser.add_argument("--dask-gigabytes", type=float, default=2.0, help="size of the logits the Dask path reads")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--dask-chunk-rows", type=int, default=None,
                        help="rows per Dask chunk (default: one chunk per worker, the fewest tasks)")
    args = parser.parse_args()
    x_path, t_path, n = logits_file(args.dir, args.gigabytes, args.classes)
    in_memory_fn, expected = in_memory_call(x_path, t_path)
    env = {**os.environ, "PYTHONPATH": ROOT}
    cmd = [sys.executable, "-m", "fastloss.cli", "eval", "cross_entropy", "--input", x_path, "--target", t_path,
           "--json", "--no-progress"]
    # The command's own peak RSS: VmHWM of its address space, printed at exit (getrusage's
    # maxrss would count the forked parent's 1 GB: Linux carries it across exec).
    wrapper = [sys.executable, "-c", "import sys, runpy; sys.argv = ['fastloss'] + sys.argv[1:]\n"
               "try:\n    runpy.run_module('fastloss.cli', run_name='__main__')\n"
               "finally:\n    print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr)"
               ] + cmd[3:]
    subprocess.run(wrapper, check=True, capture_output=True, env=env)  # warm: kernel cache, page cache
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run(wrapper, capture_output=True, text=True, env=env)
        runs.append((json.loads(out.stdout), time.perf_counter() - start, int(out.stderr.split()[-1]) / 1024))
    peak_rss_mb = max(r for _, _, r in runs)
    # Throughput of the engine once its kernels are loaded (a command pays that once at start-up).
    from fastloss import streaming

    def stream():
        arrays = {"input": streaming.open_array(x_path), "target": streaming.open_array(t_path)}
        return streaming.evaluate("cross_entropy", arrays)

    in_memory, streamed = alternated_medians([in_memory_fn, stream])
    del in_memory_fn  # frees the in-memory arrays
    report = {
        "rows": n, "classes": args.classes, "gigabytes": x_path and os.path.getsize(x_path) / 1e9,
        "in_memory_s": in_memory, "eval_s": streamed, "eval_command_s": float(np.median([r["seconds"] for r, _, _ in runs])),
        "eval_command_wall_s": float(np.median([w for _, w, _ in runs])),
        "eval_throughput_vs_in_memory": in_memory / streamed, "eval_peak_rss_mb": peak_rss_mb,
        "eval_equals_in_memory": abs(runs[0][0]["value"] - expected) <= 1e-6 * abs(expected),
    }
    if not args.skip_dask:
        import dask
        import distributed

        import fastloss.dask as fld

        dx_path, dt_path, dn = logits_file(args.dir, args.dask_gigabytes, args.classes)
        dask_in_memory_fn, dask_expected = in_memory_call(dx_path, dt_path)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=40) as cluster, distributed.Client(cluster) as client:
            client.run(lambda: __import__("fastloss").warmup(("float32",)))

            chunk_rows = args.dask_chunk_rows or -(-dn // 2)

            def run():  # as the README's cluster example: both arrays read on the workers
                logits = fld.from_npy(dx_path, chunk_rows=chunk_rows)
                labels = fld.from_npy(dt_path, chunk_rows=chunk_rows)
                return dask.compute(fld.cross_entropy(logits, labels))[0]

            value = run()
            report["dask_rows"] = dn
            report["dask_chunks"] = -(-dn // chunk_rows)
            report["dask_chunk_mb"] = chunk_rows * args.classes * 4 / 2**20
            report["dask_gigabytes"] = os.path.getsize(dx_path) / 1e9
            report["dask_in_memory_s"], report["dask_s"] = alternated_medians([dask_in_memory_fn, run])
            report["dask_vs_in_memory"] = report["dask_s"] / report["dask_in_memory_s"]
            report["dask_equals_in_memory"] = abs(float(value) - dask_expected) <= 1e-6 * abs(dask_expected)
            tiny = fld.cross_entropy(fld.from_npy(dx_path, chunk_rows=chunk_rows)[:2],
                                     fld.from_npy(dt_path, chunk_rows=chunk_rows)[:2])
            report["dask_overhead_s_tiny_graph"] = median_time(lambda: dask.compute(tiny))
    print(json.dumps(report, indent=2))
    write_section(report, sys.argv[1:])


def write_section(r, argv):
    """The figures as a section of bench/RESULTS.md."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import report as results

    rows = ["| measure | value |", "|---|---|",
            f"| eval: logits | {r['rows']} x {r['classes']} float32, {r['gigabytes']:.2f} GB .npy, page cache |",
            f"| eval: peak RSS of `fastloss eval cross_entropy` | {r['eval_peak_rss_mb']:.0f} MB |",
            f"| eval: streamed / in-memory kernel time | {r['eval_s']:.3f} s / {r['in_memory_s']:.3f} s = "
            f"{r['eval_throughput_vs_in_memory']:.0%} of in-memory throughput |",
            f"| eval: whole command, wall (start-up included) | {r['eval_command_wall_s']:.2f} s |",
            f"| eval: same value as in memory | {r['eval_equals_in_memory']} |"]
    if "dask_s" in r:
        rows += [f"| dask: logits | {r['dask_rows']} x {r['classes']} float32, {r['dask_gigabytes']:.2f} GB .npy, "
                 f"{r['dask_chunks']} chunks of {r['dask_chunk_mb']:.0f} MB |",
                 f"| dask: LocalCluster (2 processes x 1 thread) / in-memory | {r['dask_s']:.3f} s / "
                 f"{r['dask_in_memory_s']:.3f} s = {r['dask_vs_in_memory']:.2f}x the in-memory time |",
                 f"| dask: a 2-row graph's round trip (scheduling overhead) | {r['dask_overhead_s_tiny_graph']:.3f} s |",
                 f"| dask: same value as in memory | {r['dask_equals_in_memory']} |"]
    results.add_section("Evaluation at scale",
                        "bench/eval_scale.py: `fastloss eval` streaming a .npy, and fastloss.dask on a LocalCluster; "
                        "each ratio's two sides are medians of 5 calls made in turn with each other after a warm-up "
                        "(the command's own figures: medians of 3 runs).",
                        " ".join(["python bench/eval_scale.py"] + argv), rows)


if __name__ == "__main__":
    main()

"""Run the benchmarks and write the ratio table to bench/RESULTS.md.

    python bench/report.py                 # every benchmark
    python bench/report.py -k cross_entropy  # a subset (pytest -k expression)

For each group (a loss, size, dtype and mode) the table gives each implementation's
median and how many times faster fastloss is (their median / fastloss's median), all
from one pytest-benchmark run on the same inputs. The machine, thread count and
versions head the file.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))


def machine_header():
    import numba
    import numpy

    try:
        import cpuinfo

        cpu = cpuinfo.get_cpu_info().get("brand_raw", platform.processor())
    except ImportError:
        cpu = platform.processor()
    lines = [f"- CPU: {cpu}, {os.cpu_count()} logical cores; numba threads {numba.config.NUMBA_NUM_THREADS}"]
    versions = [f"python {platform.python_version()}", f"numpy {numpy.__version__}", f"numba {numba.__version__}"]
    try:
        import torch

        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    lines.append("- " + ", ".join(versions))
    return lines


def table(results):
    groups = defaultdict(dict)
    for bench in results["benchmarks"]:
        groups[bench["group"]][bench["extra_info"]["impl"]] = bench["stats"]["median"]
    rows = ["| benchmark | numpy | torch | fastloss | vs numpy | vs torch |", "|---|---|---|---|---|---|"]
    for group in sorted(groups):
        medians = groups[group]
        fast = medians.get("fastloss")

        def cell(impl):
            return f"{medians[impl] * 1e3:.3f} ms" if impl in medians else "-"

        def ratio(impl):
            return f"{medians[impl] / fast:.2f}x" if fast and impl in medians else "-"

        rows.append(f"| {group} | {cell('numpy')} | {cell('torch')} | {cell('fastloss')} | "
                    f"{ratio('numpy')} | {ratio('torch')} |")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default=None, help="pytest -k expression selecting benchmarks")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    json_path = os.path.join(HERE, "results.json")
    command = [sys.executable, "-m", "pytest", HERE, "-c", os.path.join(HERE, "pytest.ini"), "-q",
               "-p", "no:cacheprovider", "--benchmark-only",
               f"--benchmark-json={json_path}", "--benchmark-min-rounds=5", "--benchmark-warmup=on"]
    if args.k:
        command += ["-k", args.k]
    subprocess.run(command, check=True)
    with open(json_path) as f:
        results = json.load(f)
    shown = " ".join(["python bench/report.py"] + (["-k", repr(args.k)] if args.k else []))
    lines = ["# Benchmark results", "", f"Produced by `{shown}` (medians of one pytest-benchmark run; "
             "ratios are how many times faster fastloss is).", ""] + machine_header() + [""] + table(results)
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Two selector binaries timed on the same trees in one run, alternating per issue (A then B,
then B then A), so that the machine's drift falls on both alike.

  alternate.py --base OLD_BINARY --new NEW_BINARY --data SPLIT.jsonl [--data ...]

The trees are those localize.py materialized (its cache, /tmp/localize-trees by default): run
localize.py on the split first. Prints each binary's median, mean and max seconds per issue
end to end (process start to JSON printed) and the ratio of the medians (new / base).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "localize-trees"))
    args = ap.parse_args()
    rows = [json.loads(line) for path in args.data for line in open(path) if line.strip()]
    times = {args.base: [], args.new: []}
    for n, row in enumerate(rows):
        tree = os.path.join(args.cache, row["instance_id"])
        if not os.path.isdir(tree):
            raise SystemExit(f"{tree}: no tree (run localize.py on this split first)")
        with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as fh:
            fh.write(row["problem_statement"])
        order = (args.base, args.new) if n % 2 == 0 else (args.new, args.base)
        try:
            for binary in order:
                start = time.perf_counter()
                subprocess.run([binary, "context", "--repo", tree, "--issue-file", fh.name,
                                "--format", "json"], check=True, stdout=subprocess.DEVNULL)
                times[binary].append(time.perf_counter() - start)
        finally:
            os.unlink(fh.name)
    for label, binary in (("base", args.base), ("new", args.new)):
        t = times[binary]
        print(f"{label}: n={len(t)} median={statistics.median(t):.3f}s "
              f"mean={statistics.mean(t):.3f}s max={max(t):.3f}s")
    ratio = statistics.median(times[args.new]) / statistics.median(times[args.base])
    print(f"median new/base: {ratio:.3f}")


if __name__ == "__main__":
    main()

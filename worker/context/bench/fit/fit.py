#!/usr/bin/env python3
"""Choosing the ranking's weights without fitting them to the issues they are judged on.

Two steps:

  fit.py dump --mirrors DIR --data A.jsonl [--data B.jsonl] --out DUMPS \
      --cmd 'target/release/examples/context context --repo {repo} --issue-file {issue} --format json --max-files 300'

runs the selector on every issue (trees materialized as localize.py does, in the same cache)
and keeps, per issue, the ranked files with their role and signals (DUMPS/<instance>.json).

  fit.py fit --data A.jsonl [--data B.jsonl] --dumps DUMPS [--weights W.json]

re-ranks the dumped files under the combination the selector uses (rank.rs `combine`):

    score = role_factor[role] * sum(weight[s] * signal[s])

and prints, per language and overall, Acc@1/Acc@5/MRR for

  * `current`: the weights as dumped (the selector's own constants; a check that the re-rank
    reproduces its ranking),
  * `fitted`: weights fitted on every issue of the given splits,
  * `cross-validated`: leave one repository out: for each repository, weights fitted on all
    the others rank its issues. This is the figure to trust on repositories nobody tuned on.

The fit (`--method softmax`, the default) is a softmax regression over each issue's dumped
files: the probability the ranking puts on the issue's gold files, each issue weighted
1/sqrt(its repository's issue count) so sympy's 77 issues do not outvote the 20 other
repositories, an L2 pull (`--l2`, 0.01) towards the starting weights (`--weights`, else the
selector's constants), weights kept >= 0, role factors fixed. `--method ascent` is the
coordinate ascent over a multiplicative grid maximizing (Acc@1 + Acc@5)/2 + MRR/10 that was
tried first (it fits the issues it is judged on: see the crate's README). Deterministic;
numpy only (`pip install numpy`).

`--free NAME` fits only that signal's weight (a new signal fitted into the shipped weights);
`--per-ecosystem` also fits a table per ecosystem (tried and dropped: see the README).

Only files in the dump can be re-ranked (a gold file beyond --max-files stays missed), so dump
generously.
"""
import argparse
import collections
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "localize"))
import localize  # noqa: E402  (materialize, find_mirror)

ROLES = ["source", "test", "example", "doc", "vendored", "other", "declaration"]
GRID = (0.0, 0.5, 0.7, 0.85, 1.2, 1.4, 2.0)
MIN_ROLE, MAX_WEIGHT = 0.05, 8.0
BALANCE = float(os.environ.get("FIT_BALANCE", "0.5"))
PULL = float(os.environ.get("FIT_PULL", "0.002"))


def rows_of(paths):
    rows = []
    for p in paths:
        for line in open(p):
            if line.strip():
                r = json.loads(line)
                r.setdefault("language", "python")
                rows.append(r)
    return rows


def dump(args):
    os.makedirs(args.out, exist_ok=True)
    rows = rows_of(args.data)
    for n, row in enumerate(rows, 1):
        target = os.path.join(args.out, row["instance_id"] + ".json")
        if os.path.exists(target) and not args.force:
            continue
        tree = os.path.join(args.cache, row["instance_id"])
        localize.materialize(localize.find_mirror(args.mirrors, row["repo"]), row["base_commit"], tree)
        with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as fh:
            fh.write(row["problem_statement"])
            issue = fh.name
        out = subprocess.run(args.cmd.format(repo=tree, issue=issue), shell=True,
                             capture_output=True, text=True)
        os.unlink(issue)
        if out.returncode != 0:
            print(f"{row['instance_id']}: failed: {out.stderr[-300:]}", file=sys.stderr)
            continue
        answer = json.loads(out.stdout)
        keep = {
            "files": [{"path": f["path"], "role": f.get("role", "source"), "score": f["score"],
                       "signals": f["signals"]} for f in answer["files"]],
            "included": answer.get("included", []),
            "total_ms": answer.get("timings", {}).get("total_ms"),
        }
        with open(target, "w") as fh:
            json.dump(keep, fh)
        print(f"[{n}/{len(rows)}] {row['instance_id']}", file=sys.stderr)


class Problem:
    """Every dumped file of every issue as one matrix, with the issue boundaries."""

    def __init__(self, rows, dumps):
        self.rows, feats, roles, gold, starts = [], [], [], [], []
        # Every signal any dump has (a dump without files must not decide the names).
        names = sorted({k for row in rows for f in self._files(dumps, row) or [] for k in f["signals"]})
        for row in rows:
            path = os.path.join(dumps, row["instance_id"] + ".json")
            if not os.path.exists(path):
                continue
            files = json.load(open(path))["files"]
            if not files:
                files = [{"path": "", "role": "source", "signals": {}}]
            starts.append(len(feats))
            golds = set(row["gold_files"])
            for f in files:
                feats.append([f["signals"].get(k, 0.0) for k in names])
                roles.append(ROLES.index(f["role"]))
                gold.append(f["path"] in golds)
            self.rows.append(row)
        self.names = names
        self.x = np.array(feats, dtype=np.float64)
        self.role = np.array(roles)
        self.gold = np.array(gold)
        self.starts = np.array(starts)
        self.issue = np.repeat(np.arange(len(starts)), np.diff(np.append(self.starts, len(feats))))
        counts = collections.Counter(r["repo"] for r in self.rows)
        self.weight = np.array([1.0 / counts[r["repo"]] ** BALANCE for r in self.rows])
        # For --per-ecosystem; a language outside the table is an ecosystem of no table (-1).
        ecosystem = [ECOSYSTEM_OF_LANGUAGE.get(r["language"]) for r in self.rows]
        self.eco = np.array([ECOSYSTEMS.index(e) if e in ECOSYSTEMS else -1 for e in ecosystem])

    def scores(self, w):
        """Each file's weighted sum: `w` one vector, or one row per ecosystem."""
        if w.ndim == 1:
            return self.x @ w
        return np.einsum("ij,ij->i", self.x, w[self.eco[self.issue]])

    @staticmethod
    def _files(dumps, row):
        path = os.path.join(dumps, row["instance_id"] + ".json")
        return json.load(open(path))["files"] if os.path.exists(path) else None

    def ranks(self, w, factors):
        """Rank of the first gold file per issue (0 = not in the dump)."""
        score = self.scores(w) * factors[self.role]
        n = len(self.starts)
        best_gold = np.full(n, -np.inf)
        np.maximum.at(best_gold, self.issue[self.gold], score[self.gold])
        # Ties count against the gold file (a pessimistic reading of the selector, which
        # breaks them by path).
        above = (score >= best_gold[self.issue]) & ~self.gold
        rank = np.bincount(self.issue, weights=above, minlength=n) + 1
        rank[~np.isfinite(best_gold)] = 0
        return rank


def objective(ranks, weight):
    hit = ranks > 0
    acc1 = hit & (ranks < 1.5)
    acc5 = hit & (ranks < 5.5)
    mrr = np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)
    return float(np.sum(weight * ((acc1 + acc5) / 2 + mrr / 10)) / np.sum(weight))


def ascent(problem, mask, w0, f0, rounds=6):
    """Coordinate ascent over the signal weights and the non-source role factors."""
    w, f = w0.copy(), f0.copy()
    sub_weight = problem.weight * mask

    def value(w, f):
        # The pull towards the start: a weight moves only as far as several issues ask.
        drift = np.sum(np.log((w + 0.05) / (w0 + 0.05)) ** 2) + np.sum(np.log(f / f0) ** 2)
        return objective(problem.ranks(w, f), sub_weight) - PULL * drift

    best = value(w, f)
    params = [("w", k) for k in range(len(w))] + [("f", k) for k in range(1, len(f))]
    for _ in range(rounds):
        improved = False
        for kind, k in params:
            vec = w if kind == "w" else f
            base = vec[k]
            for g in GRID:
                vec[k] = base * g if base > 0 else (g if g > 0 else 0.0) * 0.25
                if kind == "f":  # a role never silences its files altogether
                    vec[k] = min(max(vec[k], MIN_ROLE), 1.0)
                else:
                    vec[k] = min(vec[k], MAX_WEIGHT)
                v = value(w, f)
                if v > best + 1e-9:
                    best, base, improved = v, vec[k], True
            vec[k] = base
        if not improved:
            break
    return w, f


def fit_softmax(problem, mask, w0, f, l2=0.1, steps=400, lr=0.05, free=None):
    """Softmax regression over each issue's files (the probability the ranking puts on its
    gold files), issues weighted as in the objective, an L2 pull towards `w0`, weights kept
    non-negative; role factors fixed. Smooth (convex for an issue with one gold file), so
    it moves the weights only as far as many issues agree, unlike the coordinate ascent."""
    z = problem.x * f[problem.role][:, None]
    n = len(problem.starts)
    has_gold = np.zeros(n, dtype=bool)
    has_gold[problem.issue[problem.gold]] = True
    iw = problem.weight * mask * has_gold
    iw = iw / max(iw.sum(), 1e-12)
    w = w0.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        s = z @ w
        # Each issue's files are contiguous, starting at problem.starts.
        top = np.maximum.reduceat(s, problem.starts)
        e = np.exp(s - top[problem.issue])
        total = np.bincount(problem.issue, weights=e, minlength=n)
        gold_total = np.bincount(problem.issue, weights=e * problem.gold, minlength=n)
        p = e / total[problem.issue]
        q = np.where(problem.gold, e / np.maximum(gold_total[problem.issue], 1e-300), 0.0)
        grad = z.T @ ((p - q) * iw[problem.issue]) + 2 * l2 * (w - w0)
        if free is not None:
            grad = grad * free
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        step = lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        w = np.clip(w - step, 0.0, MAX_WEIGHT)
    return w, f


def report(label, problem, ranks, rows_mask=None):
    lines = []
    groups = collections.defaultdict(list)
    for i, r in enumerate(problem.rows):
        groups[r["language"]].append(i)
    # The multilingual split's own line: every issue not of the Python split.
    others = [i for i, r in enumerate(problem.rows) if r["language"] != "python"]
    if others and len(others) < len(problem.rows):
        groups["multilingual"] = others
    groups["all"] = list(range(len(problem.rows)))
    for lang in sorted(groups, key=lambda g: (g in ("multilingual", "all"), g == "all", g)):
        idx = np.array(groups[lang])
        rk = ranks[idx]
        hit = rk > 0
        a1 = 100 * np.mean(hit & (rk < 1.5))
        a5 = 100 * np.mean(hit & (rk < 5.5))
        mrr = np.mean(np.where(hit, 1.0 / np.maximum(rk, 1), 0.0))
        lines.append(f"{label:16} {lang:11} n={len(idx):3}  Acc@1 {a1:5.1f}  Acc@5 {a5:5.1f}  MRR {mrr:.3f}")
    print("\n".join(lines))


RANK_RS = os.path.join(HERE, "..", "..", "src", "rank.rs")
SIGNAL_OF_CONSTANT = {"PATH": "path", "TRACE": "trace", "DEF": "definitions", "BM25": "bm25",
                      "WINDOW": "window", "STEM": "stem", "TESTS": "tests", "LITERAL": "literal",
                      "GRAPH": "graph", "CALLERS": "callers", "KEYS": "keys", "SIZE": "size",
                      "PACKAGE": "package"}
# `--per-ecosystem` (tried, dropped: see the README) groups the languages into these.
ECOSYSTEMS = ["python", "rust", "go", "java", "ecmascript"]
ECOSYSTEM_OF_LANGUAGE = {"python": "python", "rust": "rust", "go": "go", "java": "java",
                         "javascript": "ecmascript", "typescript": "ecmascript"}


def current_weights(names):
    """The selector's own weights, read from rank.rs (`pub const W_*`), so the re-rank starts
    where the selector is and the two never drift apart."""
    text = open(RANK_RS).read()
    table = {SIGNAL_OF_CONSTANT[k]: float(v)
             for k, v in re.findall(r"pub const W_([A-Z0-9]+): f64 = ([0-9.]+);", text)}
    return np.array([table.get(k, 0.0) for k in names])


def current_factors():
    """`role_factor` of rank.rs, read the same way."""
    text = open(RANK_RS).read()
    table = {k.lower(): float(v) for k, v in re.findall(r"FileRole::([A-Za-z]+) => ([0-9.]+),", text)}
    return np.array([table[r] for r in ROLES])


def do_fit(args):
    problem = Problem(rows_of(args.data), args.dumps)
    if args.weights:
        start = json.load(open(args.weights))
        w0 = np.array([start["weights"].get(k, 0.5) for k in problem.names])
        f0 = np.array([start["roles"][r] for r in ROLES])
    else:
        w0, f0 = current_weights(problem.names), current_factors()
    for item in args.role:
        role, factor = item.split("=")
        f0[ROLES.index(role)] = float(factor)
    print("signals:", ", ".join(problem.names))
    report("current", problem, problem.ranks(w0, f0))
    everything = np.ones(len(problem.rows))
    # --free: only these signals' weights move (a new signal fitted into the others).
    unknown = [k for k in args.free if k not in problem.names]
    if unknown:
        sys.exit(f"--free {', '.join(unknown)}: no such signal in the dumps ({', '.join(problem.names)})")
    if args.free and args.method == "ascent":
        sys.exit("--free works with the softmax fit only")
    free = np.array([float(k in args.free) for k in problem.names]) if args.free else None

    def fit(mask):
        """The shared weights on the issues of `mask`, then (--per-ecosystem) each
        ecosystem's on its own issues of `mask`, pulled towards the shared ones."""
        if args.method == "ascent":
            return ascent(problem, mask, w0, f0)
        w, f = fit_softmax(problem, mask, w0, f0, l2=args.l2, free=free)
        if not args.per_ecosystem:
            return w, f
        # One row per ecosystem, and the shared weights last (row -1: no ecosystem).
        tables = np.tile(w, (len(ECOSYSTEMS) + 1, 1))
        for e in range(len(ECOSYSTEMS)):
            own = mask * (problem.eco == e)
            if own.sum() > 0:
                tables[e], _ = fit_softmax(problem, own, w, f, l2=args.l2_ecosystem, free=free)
        return tables, f

    w, f = fit(everything)
    report("fitted", problem, problem.ranks(w, f))
    if w.ndim == 1:
        print("fitted weights:", json.dumps({"weights": dict(zip(problem.names, np.round(w, 3).tolist())),
                                             "roles": dict(zip(ROLES, np.round(f, 3).tolist()))}))
    else:
        for e, name in enumerate(ECOSYSTEMS):
            print(f"fitted weights ({name}):", json.dumps(dict(zip(problem.names, np.round(w[e], 3).tolist()))))
    repos = sorted({r["repo"] for r in problem.rows})
    cv = np.zeros(len(problem.rows))
    for repo in repos:
        held = np.array([r["repo"] == repo for r in problem.rows])
        wr, fr = fit((~held).astype(float))
        cv[held] = problem.ranks(wr, fr)[held]
    report("cross-validated", problem, cv)
    if args.json and w.ndim == 1:
        json.dump({"weights": dict(zip(problem.names, w.tolist())),
                   "roles": dict(zip(ROLES, f.tolist()))}, open(args.json, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--mirrors", required=True)
    d.add_argument("--data", action="append", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--cmd", required=True)
    d.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "localize-trees"))
    d.add_argument("--force", action="store_true")
    f = sub.add_parser("fit")
    f.add_argument("--data", action="append", required=True)
    f.add_argument("--dumps", required=True)
    f.add_argument("--weights", help="JSON {weights: {...}, roles: {...}} to start from")
    f.add_argument("--json", help="write the weights fitted on everything here")
    f.add_argument("--method", choices=["softmax", "ascent"], default="softmax")
    f.add_argument("--l2", type=float, default=0.01, help="pull of the softmax fit towards the start")
    f.add_argument("--free", action="append", default=[],
                   help="fit only this signal's weight (repeatable); the others stay as started")
    f.add_argument("--per-ecosystem", action="store_true",
                   help="also fit a table per ecosystem, pulled towards the shared one (tried, dropped)")
    f.add_argument("--l2-ecosystem", type=float, default=0.05,
                   help="pull of an ecosystem's table towards the shared one")
    f.add_argument("--role", action="append", default=[], help="role=factor to start from (ascent fits them)")
    args = ap.parse_args()
    dump(args) if args.step == "dump" else do_fit(args)


if __name__ == "__main__":
    main()

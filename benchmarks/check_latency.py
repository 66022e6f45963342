"""How long does a live check take, compared with one round trip to the engine?

For every exercise that uses Docker (all but the file-only ones): cleanup → setup →
solve, then time the check (``checkers.check``, recording included, as a student
would run it) ``--repeat`` times, then cleanup. The floor is the median
``docker ping`` measured in the same run. The last line is
``ratio <median check / median ping>``, where the median check is the median of the
per-exercise medians. Kubernetes exercises are measured by ``kube_check_latency.py``.

    python benchmarks/check_latency.py [--repeat 11] [--lab 02-isolation] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--pings", type=int, default=101)
    parser.add_argument("--lab", default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    # Keep benchmark attempts out of a real student's progress.
    os.environ.setdefault("DOCKYARD_HOME", tempfile.mkdtemp(prefix="dockyard-bench-"))
    import checkers
    from kernel_helpers import engine as eng

    try:
        engine = eng.connect()
    except eng.EngineUnavailable as exc:
        print(f"benchmark needs a Docker engine: {exc}", file=sys.stderr)
        return 2

    pings = []
    for _ in range(args.pings):
        started = time.perf_counter()
        engine.ping()
        pings.append(time.perf_counter() - started)
    ping_ms = _median_ms(pings)

    rows: list[dict[str, object]] = []
    for exercise in checkers.all_exercises(args.lab):
        if exercise.static or not exercise.needs_engine:  # files only, or a cluster's
            continue
        try:
            checkers.cleanup(exercise.id)
            checkers.solve(exercise.id)
            samples = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                verdict = checkers.check(exercise.id, source="benchmark")
                samples.append(time.perf_counter() - started)
            rows.append({"exercise": exercise.id, "median_ms": round(_median_ms(samples), 2),
                         "min_ms": round(min(samples) * 1000, 2),
                         "max_ms": round(max(samples) * 1000, 2), "status": verdict.status})
        finally:
            checkers.cleanup(exercise.id)

    if not rows:
        print("no Docker exercises to measure", file=sys.stderr)
        return 2
    width = max(len(str(r["exercise"])) for r in rows)
    print(f"{'exercise':<{width}}  {'median ms':>9}  {'min ms':>8}  {'max ms':>8}  status")
    for r in rows:
        print(f"{r['exercise']!s:<{width}}  {r['median_ms']:>9}  {r['min_ms']:>8}  "
              f"{r['max_ms']:>8}  {r['status']}")
    check_ms = statistics.median(float(str(r["median_ms"])) for r in rows)
    print(f"median docker ping: {ping_ms:.3f} ms over {args.pings} pings")
    print(f"median check (median of per-exercise medians): {check_ms:.2f} ms")
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump({"ping_ms": ping_ms, "check_ms": check_ms, "rows": rows}, out, indent=2)
    print(f"ratio {check_ms / ping_ms:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

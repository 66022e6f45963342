"""How long does a Kubernetes check take, compared with one round trip to the API server?

No cluster runs here, so this measures against kmock's emulator with the fake
controllers of ``tests/kubesim.py`` (the same harness the tests use). For every
Kubernetes exercise that reads a cluster: cleanup → setup → solve, then time the check
(``checkers.check``, recording included) ``--repeat`` times, then cleanup. The floor is
the median ``GET /version`` through the same client, measured in the same run. The last
line is ``ratio <median check / median round trip>``: how many round trips a check
costs, which is what carries over to a real cluster, where each round trip is slower.

    python benchmarks/kube_check_latency.py [--repeat 11] [--lab 06-kubernetes]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--pings", type=int, default=101)
    parser.add_argument("--lab", default=None)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="dockyard-kube-bench-"))
    os.environ["DOCKYARD_HOME"] = str(scratch / "home")
    os.environ["DOCKYARD_WORKSPACE"] = str(scratch / "workspace")
    os.environ.pop("DOCKYARD_KUBE_CONTEXT", None)

    import kubesim

    import checkers
    from kernel_helpers import kubernetes as kube

    with kubesim.Emulator() as emulator:
        os.environ["KUBECONFIG"] = str(emulator.write_kubeconfig(scratch / "kubeconfig"))
        fake = kubesim.FakeCluster(emulator)
        fake.seed_nodes()
        kubesim.finish_bounded_loops(fake)
        fake.start()
        try:
            cluster = kube.connect()
            pings = []
            for _ in range(args.pings):
                started = time.perf_counter()
                cluster.ping()
                pings.append(time.perf_counter() - started)
            ping_ms = _median_ms(pings)
            rows: list[dict[str, object]] = []
            for exercise in checkers.all_exercises(args.lab):
                if not exercise.needs_cluster:
                    continue
                try:
                    checkers.cleanup(exercise.id)
                    checkers.solve(exercise.id)
                    samples = []
                    for _ in range(args.repeat):
                        started = time.perf_counter()
                        verdict = checkers.check(exercise.id, source="benchmark")
                        samples.append(time.perf_counter() - started)
                    rows.append({"exercise": exercise.id,
                                 "median_ms": round(_median_ms(samples), 2),
                                 "status": verdict.status})
                except checkers.RunError as exc:
                    rows.append({"exercise": exercise.id, "median_ms": float("nan"),
                                 "status": f"solve failed: {exc}"})
                finally:
                    checkers.cleanup(exercise.id)
        finally:
            fake.stop()

    measured = [r for r in rows if r["median_ms"] == r["median_ms"]]  # drop NaN
    if not measured:
        print("no Kubernetes exercises to measure", file=sys.stderr)
        return 2
    width = max(len(str(r["exercise"])) for r in rows)
    print(f"{'exercise':<{width}}  {'median ms':>9}  status")
    for r in rows:
        print(f"{r['exercise']!s:<{width}}  {r['median_ms']:>9}  {r['status']}")
    check_ms = statistics.median(float(str(r["median_ms"])) for r in measured)
    print(f"median GET /version: {ping_ms:.3f} ms over {args.pings} round trips (emulator)")
    print(f"median check (median of per-exercise medians): {check_ms:.2f} ms")
    print(f"ratio {check_ms / ping_ms:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

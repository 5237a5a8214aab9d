"""`python -m bench`: every benchmark in turn with its default settings; the soak on request.

    .venv/bin/python -m bench              intake, converge, resync, dispatch, storm, e2e, memory,
                                           hostile, fleet, pushpath (the push path's steps, side by
                                           side with Flux), node (the real node; skipped without
                                           containers)
    .venv/bin/python -m bench --soak       the same, then the 10-minute soak
    .venv/bin/python -m bench --only storm e2e

Each benchmark prints its own figures, ratios to its baseline and goals; a summary at the end
says which ran to the end. One that fails does not stop the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

BENCHMARKS = (
    "intake",
    "converge",
    "resync",
    "dispatch",
    "storm",
    "e2e",
    "memory",
    "hostile",
    "fleet",
    "pushpath",
    "node",
)
ALL = (*BENCHMARKS, "soak")


def run(name: str) -> tuple[str, float]:
    """Run bench.<name>_bench with its defaults; (outcome, seconds)."""
    print(f"\n{'=' * 30} {name} {'=' * (60 - len(name))}", flush=True)
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}_bench")
        code = module.main([])
        outcome = "ran" if code in (0, None) else f"exited {code}"
    except SystemExit as exc:
        outcome = "ran" if exc.code in (0, None) else f"stopped: {exc.code}"
    except Exception:
        traceback.print_exc()
        outcome = "failed (traceback above)"
    return outcome, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--soak", action="store_true", help="run the soak too (10 minutes)")
    parser.add_argument("--only", nargs="+", choices=ALL, help="run just these")
    args = parser.parse_args(argv)
    names = list(args.only or BENCHMARKS)
    if args.soak and "soak" not in names:
        names.append("soak")
    results = {name: run(name) for name in names}
    print(f"\n{'=' * 30} summary {'=' * 53}")
    for name, (outcome, seconds) in results.items():
        print(f"{name:<10} {outcome:<50} {seconds / 60:5.1f} min")
    return 0 if all(outcome == "ran" for outcome, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

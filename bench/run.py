"""Run benchmarks: `python -m bench.run [--quick] [AREA ...]` (all areas when none is named)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from bench.harness import ROOT, write_page, write_results


def discover() -> list[str]:
    return sorted(path.stem.removeprefix("bench_") for path in (ROOT / "bench").glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("areas", nargs="*", help=f"areas to run (default: all of {', '.join(discover())})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)

    areas = args.areas or discover()
    unknown = sorted(set(areas) - set(discover()))
    if unknown:
        parser.error(f"unknown area(s): {', '.join(unknown)}")

    for area in areas:
        module = importlib.import_module(f"bench.bench_{area}")
        print(f"== {area}", flush=True)
        results = asyncio.run(module.run(args.quick))
        for result in results:
            ratio = f" ratio {result.ratio:.3g} vs {result.baseline_name}" if result.ratio is not None else ""
            print(f"  {result.name}: {result.value:.4g} {result.unit}{ratio} {result.goal}", flush=True)
        write_results(area, results, quick=args.quick)
    write_page()
    return 0


if __name__ == "__main__":
    sys.exit(main())

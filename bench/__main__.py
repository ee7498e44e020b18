"""``python -m bench``: run every figure family, print the table, write results.json and PERFORMANCE.md."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from bench.core import FULL, TINY, Figure, skipped
from bench.report import machine, text_table, update_doc, write_json

MODULES = ("audit_ingest", "api_load", "analytics", "price_ingest", "audit_reads", "console", "tree", "push")
ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run only these figure families")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (what the test suite runs)")
    parser.add_argument("--no-write", action="store_true", help="print only: no results.json, no PERFORMANCE.md")
    args = parser.parse_args(argv)
    scale = TINY if args.tiny else FULL
    figures: list[Figure] = []
    began = time.perf_counter()
    for name in args.only or MODULES:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            figures += module.run(scale)
        except Exception as exc:  # one broken family must not hide the others
            traceback.print_exc()
            figures.append(skipped(name, f"failed: {type(exc).__name__}: {exc}"[:300]))
        print(f"[bench] {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    info = machine()
    info["seconds"] = round(time.perf_counter() - began, 1)
    info["scale"] = scale.name
    print(text_table(figures))
    print(f"\n{info['cpu']}, {info['cores']} cores, Python {info['python']}, numpy {info['numpy']}, "
          f"TA-Lib {info['talib']}; {info['date']}; {info['seconds']} s")
    if not args.no_write:
        write_json(ROOT / "bench" / "results.json", figures, {**info, "only": args.only} if args.only else info,
                   merge=bool(args.only) and not args.tiny)
        if not args.tiny and not args.only:
            update_doc(ROOT / "docs" / "PERFORMANCE.md", figures, info)
    failed = [f for f in figures if f.note.startswith("skipped: failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Check mraa against a parity case of the official implementation.

Usage: python scripts/check_parity.py CASE_DIR [--device cpu]

CASE_DIR holds config.yaml, checkpoint.pth and io.pt (see shared/reference/parity/caseA/README.md).
Prints a per-key table of max abs differences and exits 1 if any key exceeds its tolerance.
"""

from __future__ import annotations

import argparse
import sys

from mraa.errors import MRAAError
from mraa.parity import compare, compute_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", help="folder with config.yaml, checkpoint.pth and io.pt")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        ref, ours = compute_case(args.case_dir, device=args.device)
    except MRAAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = compare(ref, ours)
    width = max(len(key) for key, *_ in rows)
    print(f"{'key':<{width}}  {'max abs diff':>12}  {'tolerance':>9}  ok")
    for key, diff, tol, ok in rows:
        print(f"{key:<{width}}  {diff:12.3e}  {tol:9.1e}  {'yes' if ok else 'NO'}")
    passed = sum(ok for *_, ok in rows)
    worst = max(rows, key=lambda row: row[1] / row[2])
    print(f"parity: {passed}/{len(rows)} keys within tolerance; worst {worst[0]} {worst[1]:.3e}")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())

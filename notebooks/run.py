"""Execute the chapter 12 notebooks: `python notebooks/run.py [--keep-outputs] [--scale S] [names]`.

Each notebook runs with nbclient in a fresh `python3` kernel on this Python (the project's
venv), in a temporary working directory; its run time is printed and any cell error makes the
exit status 1. With `--keep-outputs` the executed notebooks (outputs kept) are written to
`notebooks/executed/` (git-ignored); without it nothing is written, so the notebooks in git stay
without outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rag_lab.notebooks import NOTEBOOK_TIMEOUTS, run_notebooks

EXECUTED = Path(__file__).resolve().parent / "executed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks by name or prefix (default: all)")
    parser.add_argument("--scale", choices=sorted(NOTEBOOK_TIMEOUTS), default="small")
    parser.add_argument(
        "--keep-outputs", action="store_true", help=f"write executed notebooks to {EXECUTED}"
    )
    parser.add_argument("--timeout", type=int, help="seconds per cell (default by scale)")
    args = parser.parse_args(argv)
    runs = run_notebooks(
        args.names,
        scale=args.scale,
        keep_outputs=EXECUTED if args.keep_outputs else None,
        timeout=args.timeout,
    )
    failed = [run.name for run in runs if not run.ok]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(runs)} notebooks ran ({sum(r.seconds for r in runs):.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

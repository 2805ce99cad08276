"""Rewrite the values in tests/data/golden.csv from a run of the shared test pipeline (`make golden`).

    python tests/update_golden.py                   # a fresh run of workflow_helpers.PIPELINE_CONFIG (1-2 min)
    python tests/update_golden.py --workdir DIR     # the values of a finished run of that config in DIR
    python tests/update_golden.py --check [--threads 2]   # compare a fresh run with the file, write nothing

The rows (table, selector, column), their tolerances and reasons are kept; only `value` is rewritten. To pin a
new number, add a row with an empty value and run this. Review `git diff tests/data/golden.csv`: every
changed value is a changed published number and needs a reason in the commit message.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_helpers import GOLDEN, PIPELINE_CONFIG, read_golden, run_pipeline, write_golden


def main() -> int:
    """Run (or reuse) the pipeline, then write or check the golden values; exit 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="a finished run of PIPELINE_CONFIG to read instead of running")
    parser.add_argument("--check", action="store_true", help="compare with the file instead of rewriting it")
    parser.add_argument("--threads", type=int, help="training.threads for the fresh run (default: the config's)")
    parser.add_argument("--golden", type=Path, default=GOLDEN)
    args = parser.parse_args()
    rows = read_golden(args.golden)
    if args.workdir is None:
        config = copy.deepcopy(PIPELINE_CONFIG)
        if args.threads:
            config["training"]["threads"] = args.threads
        workdir = Path(tempfile.mkdtemp(prefix="golden-")) / "pipeline"
        print(f"running the shared test pipeline in {workdir} ...", flush=True)
        run_pipeline(workdir, config)
    else:
        workdir = args.workdir
    measured = [g.measure(workdir) for g in rows]
    if args.check:
        bad = 0
        for g, m in zip(rows, measured, strict=True):
            if g.matches(m) and not math.isfinite(g.value):
                share = 0.0  # NaN or an infinity, matched exactly
            else:
                share = abs(m - g.value) / g.allowed() if g.allowed() > 0 else (0.0 if g.matches(m) else math.inf)
            bad += not g.matches(m)
            print(f"{'ok ' if g.matches(m) else 'BAD'} {g.key}: {m!r} vs {g.value!r} ({share:.3g} of tolerance)")
        print(f"{bad} of {len(rows)} values outside their tolerance")
        return 1 if bad else 0
    write_golden([replace(g, value=m) for g, m in zip(rows, measured, strict=True)], args.golden)
    print(f"wrote {len(rows)} values to {args.golden}; review `git diff {args.golden}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())

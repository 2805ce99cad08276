"""Estimated cost of a config's experiments (CPU core-hours, GPU hours, disk, peak memory per job).

Rates come from `make bench` output: by default the run recorded in README.md ("Throughput"); pass
one or more fresh outputs (e.g. a CPU run and a `--device cuda` run on a GPU machine) to refresh.
The cost model is in `sgd_privacy.cost`. Usage:
python benchmarks/study_cost.py [--config config/study.yaml] [--bench bench_cpu.txt bench_gpu.txt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from sgd_privacy.config import load_schema, validate_config
from sgd_privacy.cost import cost_table, parse_bench, readme_bench, study_costs
from sgd_privacy.dp.settings import configurations

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Print the cost table of a config."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "study.yaml"))
    parser.add_argument("--bench", nargs="*", default=[], help="files of `make bench` output (default: README.md's)")
    args = parser.parse_args()
    texts = [Path(p).read_text() for p in args.bench] or [readme_bench((ROOT / "README.md").read_text())]
    bench = parse_bench("\n".join(texts))
    cfg = validate_config(
        yaml.safe_load(Path(args.config).read_text()) or {},
        load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml"),
    )
    print(cost_table(study_costs(cfg, bench, configurations(cfg["dp"])), bench.threads))


if __name__ == "__main__":
    main()

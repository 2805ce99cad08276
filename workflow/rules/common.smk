# Shared helpers: config validation, the library on the path, per-rule config slices.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from sgd_privacy.jobs import prepend_pythonpath

prepend_pythonpath(SRC)

from sgd_privacy.config import ConfigError, load_schema, validate_config
from sgd_privacy.data import DATASETS, dataset_options
from sgd_privacy.train.grid import Shard, architecture_slice, plan_shards, shard_spec, training_slice

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
ENV = "../../envs/pipeline.yaml"
_schema = load_schema(SCHEMA)
try:
    validate_config(config, _schema)
except ConfigError as exc:
    raise WorkflowError(f"{exc}\n(see config/README.md for every key and its allowed values)")
validate(config, schema=str(SCHEMA))

DATASET_NAMES = sorted(_schema["$defs"]["dataset_name"]["enum"])


wildcard_constraints:
    dataset="|".join(DATASET_NAMES),
    experiment="[A-Za-z][A-Za-z0-9_]*",
    shard=r"s\d+_r\d+_(variable|fixed)",


def experiment(name):
    """One experiment's validated settings."""
    if name not in config["experiments"]:
        raise WorkflowError(f"no experiment {name!r} in the config; known: {', '.join(config['experiments'])}")
    return config["experiments"][name]


def used_datasets():
    """Datasets that experiments use, plus those listed under `prepare`."""
    return sorted(set(config["prepare"]) | {e["dataset"] for e in config["experiments"].values()})


def dataset_params(wildcards):
    """The data rule's slice: this dataset's options and, for datasets read from raw files, where they are."""
    offline = DATASETS[wildcards.dataset].offline
    return {
        "options": dataset_options(wildcards.dataset, config["datasets"].get(wildcards.dataset)),
        "source": {} if offline else dict(config["data"]),
    }


def dataset_files(name):
    """The prepared arrays and their JSON sidecar."""
    return {"npz": f"results/data/{name}.npz", "meta": f"results/data/{name}.json"}


def shard_files(name):
    """Every shard history table of an experiment."""
    return [f"results/train/{name}/shards/{s.name}.parquet" for s in plan_shards(experiment(name))]


def train_inputs(wildcards):
    """A shard needs its dataset, and the fixed initialisation if it trains fixed-init runs."""
    inputs = dataset_files(experiment(wildcards.experiment)["dataset"])
    if Shard.parse(wildcards.shard).init == "fixed":
        inputs["fixed_init"] = f"results/train/{wildcards.experiment}/fixed_init.npy"
    return inputs


def train_params(wildcards):
    """A shard's slice: the experiment's training settings and this shard's runs (never the grid's size)."""
    exp = experiment(wildcards.experiment)
    return {
        "training": training_slice(exp, config["training"]["dtype"]),
        "shard": shard_spec(exp, Shard.parse(wildcards.shard)),
    }


def all_targets():
    """Everything `rule all` builds."""
    targets = [dataset_files(d)["meta"] for d in used_datasets()]
    targets += [f"results/train/{name}/convergence.parquet" for name in config["experiments"]]
    return targets


def analysed_experiments():
    """Experiments the analyses run on (validated against the experiments at start)."""
    chosen = config["analysis"]["experiments"]
    return list(config["experiments"]) if chosen is None else chosen


def analysis_inputs(wildcards):
    """Shard histories, the experiment's convergence point and its dataset's sidecar."""
    return {
        "shards": shard_files(wildcards.experiment),
        "convergence": f"results/train/{wildcards.experiment}/convergence.parquet",
        "meta": dataset_files(experiment(wildcards.experiment)["dataset"])["meta"],
    }


def bound_params(wildcards):
    """What the bolt-on bound needs (logistic regression only; null otherwise)."""
    exp = experiment(wildcards.experiment)
    if exp["model"] != "logreg":
        return None
    return {"batch_size": exp["batch_size"], "lr": exp["lr"]}


def analysis_mem_mb(wildcards, input):
    """Memory of an analysis job: the weights are held as float32, about the size of the
    (poorly compressible) shard files; Snakemake defers this until the shards exist."""
    return 2048 + 4 * input.size_mb


def analysis_slice(*keys):
    """A params function returning only `keys` of the analysis config."""
    return lambda wildcards: {k: config["analysis"][k] for k in keys}


def analysis_targets():
    """Every analysis output."""
    names = ["distances_over_t", "distances_at_T", "epsilon", "distribution_tests", "umap"]
    return [f"results/analysis/{e}/{n}.parquet" for e in analysed_experiments() for n in names]


# ---- Cluster resources and benchmarks (issues 8 and 13) ----
# Each rule's `benchmark:` is benchmark_file("<rule name>", "<its wildcards>") (Snakemake writes
# wall time, max RSS and CPU time there) and its `resources:` set runtime=..., mem_mb=... sized
# from those measurements; the Slurm profile adds only site settings. Runtime grows with the attempt, so a
# job killed for its time limit gets more on its retry. Rules in a `group:` (one Slurm job per
# connected group) take `group_slot=1` (see workflow/rules/cluster.smk).


def benchmark_file(rule_name, pattern):
    """A rule's benchmark table: logs/benchmarks/<rule>/<wildcards>.tsv (wall time s, max RSS MB, CPU s)."""
    return f"logs/benchmarks/{rule_name}/{pattern}.tsv"


def runtime_min(minutes):
    """A runtime resource (minutes) that grows with the attempt: `minutes` on the first, twice on the second."""
    return lambda wildcards, attempt: minutes * attempt


def training_gpus():
    """GPUs a training job requests: one when training.device is auto or cuda, none for cpu."""
    return 1 if config["training"]["device"] in ("auto", "cuda") else 0

# Shared helpers: config validation, the library on the path, per-rule config slices.
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from sgd_privacy.jobs import prepend_pythonpath

prepend_pythonpath(SRC)

from sgd_privacy.config import ConfigError, load_schema, validate_config
from sgd_privacy.data import DATASETS, custom_files, dataset_options
from sgd_privacy.data.custom import custom_options
from sgd_privacy.train.grid import Shard, architecture_slice, plan_shards, shard_spec, training_slice
from sgd_privacy.train.hostmem import shard_held_mb, training_host_mb

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
ENV = "../../envs/pipeline.yaml"
_schema = load_schema(SCHEMA)
try:
    validate_config(config, _schema)
except ConfigError as exc:
    raise WorkflowError(f"{exc}\n(see config/README.md for every key and its allowed values)")
validate(config, schema=str(SCHEMA))

DATASET_NAMES = sorted(_schema["$defs"]["dataset_name"]["enum"])
DATASET_NAMES += sorted(config["custom_datasets"])  # custom datasets (checked not to clash)


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
    if wildcards.dataset in config["custom_datasets"]:
        return {"custom": custom_options(config["custom_datasets"][wildcards.dataset])}
    offline = DATASETS[wildcards.dataset].offline
    return {
        "options": dataset_options(wildcards.dataset, config["datasets"].get(wildcards.dataset)),
        "source": {} if offline else dict(config["data"]),
    }


def custom_dataset_inputs(wildcards):
    """A custom dataset's data files (so editing one reruns its preparation); none for built-in datasets."""
    spec = config["custom_datasets"].get(wildcards.dataset)
    return custom_files(spec) if spec else []


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


# --- report ---
def report_targets():
    """The final report page (built from every enabled stage's tables; last thing `rule all` builds)."""
    return ["results/report/index.html"]


# Analysis tables the report reads, per analysed experiment (kinds of sgd_privacy.report.sections).
REPORT_ANALYSIS_KINDS = [
    "distances_over_t",
    "distances_at_T",
    "epsilon",
    "sigma_per_dataset",
    "stability",
    "distribution_tests",
    "nonnormal_weights",
    "umap",
    "kmeans_spans",
]


def report_inputs(wildcards):
    """Every table the report reads, by kind; a kind with no files leaves its section out with a note."""
    experiments = list(config["experiments"])
    files = {
        "dataset_meta": [dataset_files(d)["meta"] for d in used_datasets()],
        "runs": [f"results/train/{e}/runs.parquet" for e in experiments],
        "convergence": [f"results/train/{e}/convergence.parquet" for e in experiments],
    }
    for kind in REPORT_ANALYSIS_KINDS:
        files[kind] = [f"results/analysis/{e}/{kind}.parquet" for e in analysed_experiments()]
    # Other stages add their tables here (kind -> files; the columns each kind needs are in the
    # docstrings of sgd_privacy/report/sections.py).
    # -- report: output perturbation (per perturbed experiment) and DP-SGD / SAM (when configured)
    for kind in ("bolt_on", "query_attack"):
        files[kind] = [f"results/perturbation/{e}/{kind}.parquet" for e in perturbed_experiments()]
    if DP_CONFIGURATIONS:
        files |= {f"dp_{n}": [f"results/dp/{n}.parquet"] for n in ("summary", "sweeps", "outliers")}
    files["ledger"] = ledger_targets()
    # -- end report: output perturbation and DP
    # -- report: membership inference (per attacked experiment) and LiRA (when configured)
    attacked = list(config["mia"]["experiments"])
    for kind, name in (("mia_attacks", "attacks"), ("mia_table6", "table6"), ("mia_bounds", "epsilon_bounds")):
        files[kind] = [f"results/mia/{e}/{name}.parquet" for e in attacked]
    lira = config["mia"]["lira"]["experiment"]
    for kind, name in (("lira_summary", "summary"), ("lira_roc", "roc"), ("lira_bounds", "epsilon_bounds")):
        files[kind] = [f"results/lira/{lira}/{name}.parquet"] if lira is not None else []
    # -- end report: membership inference
    files["hz_power"] = ["results/analysis/hz_power.parquet"] if config["hz_power"]["enabled"] else []
    # the shards' metadata only (device, GPU, CUDA and cuDNN) for the provenance block, not a table kind
    files["shards"] = [f for e in experiments for f in shard_files(e)]
    return files


def report_params(wildcards):
    """The config slices the report states beside its figures and tables (membership inference,
    output perturbation and DP add theirs below when enabled)."""
    experiments = list(config["experiments"])
    params = {
        "experiments": {e: config["experiments"][e] for e in experiments},
        "analysis": config["analysis"],
    }
    # -- report: output perturbation and DP-SGD / SAM slices (only of enabled stages)
    if perturbed_experiments():
        params["perturbation"] = {**config["perturbation"], "experiments": perturbed_experiments()}
    if DP_CONFIGURATIONS:
        dp = config["dp"]
        params["dp"] = {
            "delta": dp["delta"],
            "repeats": dp["repeats"],
            "attack": dict(dp["attack"]),
            "configurations": DP_CONFIGURATIONS,
            "sweeps": sweep_membership(dp),
        }
    # -- end report: output perturbation and DP
    # -- report: membership inference slice (only when the stage attacks something)
    if config["mia"]["experiments"] or config["mia"]["lira"]["experiment"] is not None:
        params["mia"] = config["mia"]
    # -- end report: membership inference
    if config["hz_power"]["enabled"]:
        params["hz_power"] = dict(config["hz_power"])
    return params


def hz_power_targets():
    """The HZ power simulation's tables when enabled (`hz_power.enabled`)."""
    return ["results/analysis/hz_power.parquet"] if config["hz_power"]["enabled"] else []


# --- perturbation (docs/methods.md, section 9; workflow/rules/perturbation.smk) ---
def perturbed_experiments():
    """Logistic-regression experiments the output-perturbation stage uses (validated at start)."""
    chosen = config["perturbation"]["experiments"]
    if chosen is None:
        return [name for name, exp in config["experiments"].items() if exp["model"] == "logreg"]
    return chosen


def perturbation_inputs(wildcards):
    """Shard histories, T, the experiment's epsilon table and its prepared dataset."""
    return {
        **analysis_inputs(wildcards),
        "npz": dataset_files(experiment(wildcards.experiment)["dataset"])["npz"],
        "epsilon": f"results/analysis/{wildcards.experiment}/epsilon.parquet",
    }


def perturbation_slice(*keys):
    """A params function returning only `keys` of the perturbation config."""
    return lambda wildcards: {k: config["perturbation"][k] for k in keys}


def perturbation_targets():
    """Every output-perturbation output."""
    names = ["bolt_on", "bolt_on_runs", "query_attack"]
    return [f"results/perturbation/{e}/{n}.parquet" for e in perturbed_experiments() for n in names]


# --- end perturbation ---
# ---- dp: DP-SGD, SAM and regularisers against membership inference (workflow/rules/dp.smk)
from sgd_privacy.dp.settings import configurations as dp_configurations
from sgd_privacy.dp.settings import shadow_models, sweep_membership

try:
    DP_CONFIGURATIONS = dp_configurations(config["dp"])
    DP_SHADOWS = shadow_models(DP_CONFIGURATIONS)
except ConfigError as exc:
    raise WorkflowError(f"{exc}\n(see config/README.md, section dp)")


def dp_configuration(name):
    """One DP configuration's resolved settings (only the keys its algorithm uses)."""
    if name not in DP_CONFIGURATIONS:
        raise WorkflowError(f"no DP configuration {name!r}; known: {', '.join(DP_CONFIGURATIONS)}")
    return DP_CONFIGURATIONS[name]


def dp_run_files(kind):
    """Every (configuration, repeat) job's table: kind 'epochs' or 'examples'."""
    return [
        f"results/dp/runs/{name}/r{r}_{kind}.parquet"
        for name in DP_CONFIGURATIONS
        for r in range(config["dp"]["repeats"])
    ]


def dp_shadow_file(dataset, model):
    """The shadow model's confidence vectors for one (dataset, model)."""
    return f"results/dp/shadow/{dataset}/{model}.parquet"


def dp_weights(arch):
    """The local pretrained-backbone file a model needs (an input, so a missing file is named before any job)."""
    return {"weights": arch["backbone_weights"]} if arch.get("backbone_weights") else {}


def dp_job_inputs(wildcards):
    """A DP job needs its dataset, the shadow features of its (dataset, model) and any backbone weights."""
    conf = dp_configuration(wildcards.configuration)
    files = {**dataset_files(conf["dataset"]), "shadow": dp_shadow_file(conf["dataset"], conf["model"])}
    return {**files, **dp_weights(conf)}


def dp_shadow_inputs(wildcards):
    """The shadow model needs its dataset and any backbone weights."""
    key = (wildcards.dataset, wildcards.model)
    if key not in DP_SHADOWS:
        raise WorkflowError(f"no DP configuration uses dataset {key[0]!r} with model {key[1]!r}")
    return {**dataset_files(wildcards.dataset), **dp_weights(DP_SHADOWS[key])}


def dp_job_params(wildcards):
    """A DP job's slice: its configuration and the study settings it uses (never other configurations)."""
    dp = config["dp"]
    conf = dp_configuration(wildcards.configuration)
    study = {"delta": dp["delta"], "split_seed": dp["split_seed"], "attack": dict(dp["attack"])}
    return {"configuration": conf, "study": {**study, **dp_split(conf["dataset"])}}


def dp_split(dataset):
    """{"split": the dataset's dp.split_sizes} when given, else {} (the stratified halves; params unchanged)."""
    sizes = config["dp"]["split_sizes"].get(dataset)
    return {"split": dict(sizes)} if sizes else {}


def dp_shadow_params(wildcards):
    """The shadow stage's slice: architecture, shadow training settings and the split."""
    key = (wildcards.dataset, wildcards.model)
    if key not in DP_SHADOWS:
        raise WorkflowError(f"no DP configuration uses dataset {key[0]!r} with model {key[1]!r}")
    return {
        "architecture": DP_SHADOWS[key],
        "shadow": dict(config["dp"]["shadow"]),
        "split_seed": config["dp"]["split_seed"],
        **dp_split(key[0]),
    }


def dp_summary_params(wildcards):
    """The summary's slice: repeats, delta and the sweeps' points."""
    return {
        "repeats": config["dp"]["repeats"],
        "delta": config["dp"]["delta"],
        "sweeps": sweep_membership(config["dp"]),
    }


def dp_targets():
    """The DP study's summary tables (none without configurations)."""
    if not DP_CONFIGURATIONS:
        return []
    return [f"results/dp/{n}.parquet" for n in ("summary", "sweeps", "outliers")]


# ---- end dp
# ---- privacy ledger: every DP model the pipeline trains (workflow/rules/ledger.smk)
def ledger_inputs(wildcards):
    """The DP stage's run tables and the output-perturbation query tables (each holds a DP-SGD model)."""
    return {
        "epochs": dp_run_files("epochs") if DP_CONFIGURATIONS else [],
        "query": [f"results/perturbation/{e}/query_attack.parquet" for e in perturbed_experiments()],
    }


def ledger_params(wildcards):
    """The ledger's delta (the DP stage's, None without it) and each query experiment's dataset."""
    return {
        "delta": config["dp"]["delta"] if DP_CONFIGURATIONS else None,
        "datasets": {e: experiment(e)["dataset"] for e in perturbed_experiments()},
    }


def ledger_targets():
    """The privacy ledger, when any stage trains a DP model (the DP stage or the query experiment)."""
    return ["results/dp/ledger.parquet"] if DP_CONFIGURATIONS or perturbed_experiments() else []


# ---- end privacy ledger
# ---- membership inference (workflow/rules/mia.smk) ----
from sgd_privacy.attacks.mia_config import check_mia_config
from sgd_privacy.train.grid import seed_list

try:
    check_mia_config(config)
except ValueError as exc:
    raise WorkflowError(f"{exc}\n(see config/README.md, section mia)")


def mia_inputs(wildcards):
    """A shard's loss job needs the shard, its dataset and, when attacking at T, the convergence table."""
    name = wildcards.experiment
    if name not in config["mia"]["experiments"]:
        raise WorkflowError(f"experiment {name!r} is not under mia.experiments")
    inputs = {
        "shard": f"results/train/{name}/shards/{wildcards.shard}.parquet",
        **dataset_files(experiment(name)["dataset"]),
    }
    if config["mia"]["experiments"][name] is None:
        inputs["convergence"] = f"results/train/{name}/convergence.parquet"
    return inputs


def mia_loss_params(wildcards):
    """The loss job's slice: the attacked steps (null: T) and the member, non-member and threshold counts."""
    m = config["mia"]
    return {
        "steps": m["experiments"][wildcards.experiment],
        **{k: m[k] for k in ("n_members", "n_nonmembers", "n_threshold")},
    }


def mia_loss_files(wildcards):
    """Every loss table of an experiment (one per training shard)."""
    return [
        f"results/mia/{wildcards.experiment}/losses/{s.name}.parquet"
        for s in plan_shards(experiment(wildcards.experiment))
    ]


def mia_bound_params(wildcards):
    """What the epsilon lower bounds need."""
    return {k: config["mia"][k] for k in ("delta", "confidence", "bound_candidates")}


def lira_seeds():
    """Seeds of the LiRA shadow grid."""
    return seed_list(config["mia"]["lira"])


def lira_train_params(wildcards):
    """A LiRA shadow job's slice: the experiment's model and optimiser settings and the subset design."""
    exp = experiment(wildcards.experiment)
    base = training_slice(exp, config["training"]["dtype"])
    lira = config["mia"]["lira"]
    return {
        "training": {k: v for k, v in base.items() if k not in ("epochs", "cadence", "log_weights_at")},
        "lira": {k: lira[k] for k in ("pool_size", "shadows", "subset_seed", "epochs")},
    }


def lira_attack_params(wildcards):
    """The LiRA attack's slice: the Gaussian fits, reported FPRs and bound settings."""
    lira = config["mia"]["lira"]
    return {"fixed_variance": lira["fixed_variance"], "fprs": lira["fprs"], **mia_bound_params(wildcards)}


def mia_targets():
    """Every membership-inference output."""
    targets = [
        f"results/mia/{e}/{n}.parquet"
        for e in config["mia"]["experiments"]
        for n in ("attacks", "table6", "epsilon_bounds")
    ]
    name = config["mia"]["lira"]["experiment"]
    if name is not None:
        targets += [f"results/lira/{name}/{n}.parquet" for n in ("scores", "roc", "summary", "epsilon_bounds")]
    return targets


# ---- Cluster resources and benchmarks ----
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


def training_mem_mb(held):
    """mem_mb of a GPU-capable job (sgd_privacy.train.hostmem): the budget counts on the host only for a
    CPU job; `held(wildcards, input)` is what the job keeps for its output (MB). Snakemake defers it until
    the inputs exist."""

    def mem_mb(wildcards, input):
        data_mb = input.size_mb
        budget = config["training"]["memory_budget_mb"]
        return training_host_mb(budget, training_gpus() == 1, data_mb, held(wildcards, input))

    return mem_mb


def shard_held(wildcards, input):
    """What a train_shard job holds for its history table (MB), from the dataset's metadata."""
    params = train_params(wildcards)
    meta = json.loads(Path(input.meta).read_text())
    return shard_held_mb(params["training"], params["shard"], meta)


def weights_held(wildcards, input):
    """What a job that reads trained weights holds: the weights as float32 and Arrow's copy."""
    return 2 * input.size_mb


def nothing_held(wildcards, input):
    """A job whose output is small next to its data."""
    return 0

# sgd-privacy: how private is stochastic gradient descent?
# Run: snakemake --cores 8            (config/config.yaml: offline, CPU, minutes)
#      snakemake --cores 8 --profile slurm --profile slurm/site.yaml   (README: Slurm)
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml is the default; a --configfile replaces it (schema defaults fill the gaps).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Snakemake's own report: snakemake --report report.zip
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/perturbation.smk"
include: "workflow/rules/dp.smk"
include: "workflow/rules/ledger.smk"
include: "workflow/rules/mia.smk"
include: "workflow/rules/hzpower.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        analysis_targets(),
        report_targets(),
        perturbation_targets(),
        dp_targets(),
        ledger_targets(),
        mia_targets(),
        hz_power_targets(),

# sgd-privacy: how private is stochastic gradient descent?
# Run: snakemake --cores 8            (config/config.yaml: offline, CPU, minutes)
#      snakemake --cores 8 --profile slurm --profile slurm/site.yaml   (README: Slurm)
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml is the default; a --configfile replaces it (schema defaults fill the gaps).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        analysis_targets(),

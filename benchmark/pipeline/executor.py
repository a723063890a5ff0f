"""Run a suite as separate jobs, locally or on SLURM, through submitit (as DINO and VISSL do).

The run is split into idempotent jobs: per (encoder, dataset) an extraction job writes the feature
cache entries the pending cells need, then an evaluation job runs those cells from the cache. A job
whose outputs exist does nothing, so a preempted job is simply requeued (submitit calls
`checkpoint`) and resumes from what the shared cache and results store already hold. The cache
and store must be on a filesystem every job sees; their writers use file locks and atomic renames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.config import Suite
from benchmark.errors import UserError
from benchmark.pipeline.runner import Evaluator, RunOptions, RunReport

EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class ExecutorOptions:
    kind: str = "local"  # "local" (subprocesses on this machine) or "slurm"
    folder: Path = Path("results/jobs")  # submitit's logs and pickles, one folder per job
    timeout_min: int = 60
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    mem_gb: int = 16
    partition: str | None = None
    max_requeues: int = 3  # requeues after a timeout; preemptions are always requeued by submitit


@dataclass(frozen=True)
class SuiteJob:
    """One job: one stage ("extract" or "evaluate") of one encoder on one suite dataset."""

    stage: str
    model: str
    dataset: str
    suite: Suite
    options: RunOptions

    def __call__(self) -> RunReport:
        suite = dataclasses.replace(self.suite, datasets={self.dataset: self.suite.datasets[self.dataset]})
        evaluator = Evaluator(suite, self.options)
        return evaluator.extract(self.model) if self.stage == "extract" else evaluator.run([self.model])

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on preemption or timeout: requeue this same job, which resumes from the
        cache and results store."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def make_executor(options: ExecutorOptions) -> Any:
    if options.kind not in EXECUTORS:
        raise UserError(f"unknown executor {options.kind!r}; choose one of {', '.join(EXECUTORS)}")
    try:
        import submitit
    except ImportError:
        raise UserError("running as jobs needs submitit: pip install submitit") from None
    try:
        executor = submitit.AutoExecutor(folder=options.folder, cluster=options.kind)
    except RuntimeError as err:  # submitit: "Could not detect srun, are you indeed on a slurm cluster?"
        raise UserError(f"--executor {options.kind}: {err}; run on a node of that cluster, or use --executor "
                        f"local (or no --executor) here") from None
    executor.update_parameters(timeout_min=options.timeout_min, cpus_per_task=options.cpus_per_task,
                               gpus_per_node=options.gpus_per_node, mem_gb=options.mem_gb, name="transferbench")
    if options.kind == "slurm":
        executor.update_parameters(slurm_max_num_timeout=options.max_requeues,
                                   **({"slurm_partition": options.partition} if options.partition else {}))
    return executor


def run_as_jobs(model_specs: list[str], suite: Suite, options: RunOptions, executor_options: ExecutorOptions,
                echo: Callable[[str], None] = print) -> RunReport:
    """Submit every extraction job, then each dataset's evaluation job once its extraction finished;
    returns the jobs' reports merged."""
    executor = make_executor(executor_options)
    units = [(model, dataset) for model in model_specs for dataset in suite.datasets]
    extractions = [executor.submit(SuiteJob("extract", model, dataset, suite, options)) for model, dataset in units]
    echo(f"submitted {len(extractions)} extraction job(s) to {executor_options.kind} ({executor_options.folder})")
    reports, evaluations = [], []
    for (model, dataset), job in zip(units, extractions):
        reports.append(job_report(job, f"extract {model} / {dataset}"))
        evaluations.append(executor.submit(SuiteJob("evaluate", model, dataset, suite, options)))
    reports += [job_report(job, f"evaluate {model} / {dataset}") for (model, dataset), job in zip(units, evaluations)]
    return merge_reports(reports)


def job_report(job: Any, what: str) -> RunReport:
    """The job's report; a job that died (not a cell that failed inside it) becomes a failure line."""
    try:
        return job.result()
    except Exception as err:  # submitit raises a FailedJobError carrying the job's stderr
        summary = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        return RunReport(failures=[f"{what}: job {job.job_id} failed ({summary}); log: {job.paths.stderr}"])


def merge_reports(reports: list[RunReport]) -> RunReport:
    merged = RunReport()
    for report in reports:
        merged.rows += report.rows
        merged.failures += report.failures
        merged.skipped += report.skipped
        merged.cache_hits += report.cache_hits
        merged.cache_misses += report.cache_misses
        merged.reused += report.reused
        merged.seconds += report.seconds
        merged.encoders += [label for label in report.encoders if label not in merged.encoders]
    return merged

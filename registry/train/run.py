"""Train (or reuse) the adapter a spec describes:

    train(spec) = plan_training (overrides -> effective spec -> fingerprint)
                  -> artifact cache hit? deliver it at once
                  -> fit under a per-fingerprint lock, resuming from the last checkpoint
                     (registry/train/loop.py; `nproc > 1`: in torchrun ranks, launch.py)
                  -> the adapter lands atomically in the cache (folder "artifacts")
                  -> copied to `out`, its registry.json naming this spec's version

A fingerprint names everything that determines the weights, so a cache hit is the same adapter,
whichever version of the spec asked for it; two trainings of one fingerprint run one after the
other, never together (a file lock), and the second is a cache hit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.artifact import is_complete, read_provenance
from registry.core.cache import cache_dir
from registry.core.fs import file_lock
from registry.spec.schema import Spec
from registry.train import distributed
from registry.train.distributed import Dist
from registry.train.launch import launch
from registry.train.loop import fit
from registry.train.options import TrainOptions
from registry.train.output import copy_adapter
from registry.train.planning import TrainingPlan, plan_training


@dataclass
class TrainResult:
    adapter_dir: Path
    fingerprint: str
    cached: bool  # True: an adapter with this fingerprint existed, nothing was trained
    metrics: dict[str, Any]  # registry.json "training"


def artifact_dir(fp: str) -> Path:
    """Where the adapter of fingerprint `fp` is cached once trained."""
    return cache_dir("artifacts", fp.split(":", 1)[-1])


def train(
    spec: Spec,
    out: Path | None = None,
    options: TrainOptions | None = None,
    **fields: Any,
) -> TrainResult:
    """Train (or reuse) the adapter `spec` describes; returns the folder holding it.

    How to run is `options` (or its fields as keywords: `train(spec, max_steps=5,
    progress=False)`). Without `out` the folder is the shared cache entry. Checkpoints live
    in the cache (folder "work", by fingerprint): a run finding complete ones there continues
    from the last (the fingerprint guarantees it is the same run); `resume=True` insists there
    is one. `nproc > 1` runs data-parallel through torchrun.
    """
    if options is not None and fields:
        raise TypeError("train() takes options or their fields as keywords, not both")
    opts = options or TrainOptions(**fields)
    p = plan_training(spec, **opts.overrides())
    artifact = artifact_dir(p.fingerprint)
    d = distributed.setup()
    if opts.nproc > 1 and not d.enabled:
        cached = is_complete(artifact)
        if not cached:
            launch(spec, opts)
        return _deliver(p, artifact, out, cached, d)
    cached = distributed.broadcast(d, is_complete(artifact))
    if not cached:
        work = cache_dir("work", p.key)
        lock = file_lock(work.with_name(f"{p.key}.lock")) if d.is_main else None
        with lock or contextlib.nullcontext():
            # another process may have finished this fingerprint while we waited for the lock
            cached = distributed.broadcast(d, is_complete(artifact))
            if not cached:
                fit(p, work, artifact, d, resume=opts.resume, progress=opts.progress and d.is_main)
        distributed.barrier(d)
    return _deliver(p, artifact, out, cached, d)


def _deliver(
    p: TrainingPlan, artifact: Path, out: Path | None, cached: bool, d: Dist
) -> TrainResult:
    """The cached adapter, or a copy in `out` whose registry.json names this spec's version.

    A cache hit may come from another version of the spec (same weights-relevant content):
    name, version, spec, git commit and overrides are this call's; training metrics are kept.
    """
    if out is None or not d.is_main:
        return TrainResult(artifact, p.fingerprint, cached, read_provenance(artifact).training)
    now = p.provenance({}).data
    updates = {k: now[k] for k in ("name", "version", "spec", "git_commit", "overrides")}
    info = copy_adapter(artifact, Path(out), updates)
    return TrainResult(Path(out), p.fingerprint, cached, info.training)

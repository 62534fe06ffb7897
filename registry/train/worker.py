"""One rank of a data-parallel training: `torchrun ... -m registry.train.worker --spec-json FILE`.

Started by registry/train/launch.py; parses the spec and the TrainOptions it was given and runs
the same `train()` as a single process would, inside the process group torchrun set up (DDP or
FSDP, as `training.distributed` resolves). Without --spec-json it reads the spec YAML at
--spec-path itself: the multi-node launch, one torchrun per node with a c10d rendezvous
(REGISTRY_CACHE must be a folder every node sees: checkpoints and the adapter land there):

    torchrun --nnodes 2 --node-rank R --nproc-per-node 8 --rdzv-backend c10d \
        --rdzv-endpoint HOST0:29500 --rdzv-id RUN -m registry.train.worker \
        --root REPO --spec-path REPO/adapters/NAME/adapter.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from registry.spec.schema import Spec, load_spec
from registry.train.options import TrainOptions


def main(argv: list[str] | None = None) -> None:
    from registry.train import distributed
    from registry.train.run import train

    parser = argparse.ArgumentParser(prog="registry.train.worker")
    parser.add_argument("--spec-json")
    parser.add_argument("--root", required=True)
    parser.add_argument("--spec-path")
    TrainOptions.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.spec_json is None:
        if not args.spec_path:
            parser.error("--spec-json or --spec-path is required")
        spec = load_spec(Path(args.spec_path), args.root)
    else:
        spec = Spec.model_validate(json.loads(Path(args.spec_json).read_text()))
    spec._root = Path(args.root)
    spec._path = Path(args.spec_path) if args.spec_path else None
    try:
        train(spec, options=TrainOptions.from_values(vars(args)))
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()

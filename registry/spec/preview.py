"""What training sees of one example: `registry validate --show-example N`.

The example is rendered with the base model's own tokenizer and chat template, the trained
tokens marked, so a masking mistake (training on the prompt, or on nothing) is visible before
any training runs.
"""

from __future__ import annotations

from pathlib import Path

from registry.errors import InvalidInput


def preview_examples(
    paths: list[Path] | None, index: int, *, color: bool = False
) -> list[tuple[str, str]]:
    """(heading, rendering) of example `index` of each spec's training data (`paths` as for
    validate: spec files or adapter folders, default every spec). InvalidInput when a dataset
    has no such example."""
    from registry.spec.base_model import load_tokenizer, resolve_base_model
    from registry.spec.data import load_examples, show_example
    from registry.spec.schema import load_spec
    from registry.spec.validate import spec_paths

    shown = []
    for path in spec_paths(paths):
        spec = load_spec(path)
        examples = load_examples(spec.train_path, spec.data.format, spec.data.system_prompt)
        if not 0 <= index < len(examples):
            raise InvalidInput(
                f"--show-example {index}: {spec.data.train} has {len(examples)} examples",
                file=str(path),
            )
        tokenizer = load_tokenizer(resolve_base_model(spec.base_model))
        rendering = show_example(tokenizer, examples[index], spec.training.max_seq_len, color=color)
        shown.append((f"== {spec.name} ({spec.data.train}) ==", rendering))
    return shown

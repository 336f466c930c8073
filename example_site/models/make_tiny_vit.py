"""Writes example_site/models/tiny-vit/model.safetensors: the course's randomly initialised ViT.

Model weights never go into git, so `make setup` runs this once (about a second). The
config and image-processor files beside the weights are committed; the weights come from
seed 0, so every machine with the same torch and transformers gets the same bytes (and a
different version only means the course's image figure is computed again).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "tiny-vit"
WEIGHTS = FOLDER / "model.safetensors"


def main() -> int:
    if WEIGHTS.exists():
        return 0
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    config = transformers.ViTConfig.from_pretrained(FOLDER)
    model = transformers.ViTModel(config)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        shutil.move(str(Path(tmp) / "model.safetensors"), WEIGHTS)
    print(f"wrote {WEIGHTS.relative_to(Path.cwd()) if WEIGHTS.is_relative_to(Path.cwd()) else WEIGHTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

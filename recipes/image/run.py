"""The image recipe end to end: image data set -> CPC v2 patch-grid pretraining -> frozen-feature evaluation
(linear probe, label efficiency against supervised training from scratch, few-shot).

    python recipes/image/run.py --config recipes/image/cpu.yaml [key=value ...]

The config is a seqcpc config plus a `dataset:` section naming a data_prep script (idx_images or
image_folder) and its options. Each step is skipped when its output exists: the preparation is idempotent,
a finished pretraining run is kept (a killed one is resumed), and finished results are printed again.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from recipes.common import recipe_main  # noqa: E402
from seqcpc.image_eval import run_image_probes  # noqa: E402

if __name__ == "__main__":
    sys.exit(recipe_main(__doc__, "dataset", run_image_probes))

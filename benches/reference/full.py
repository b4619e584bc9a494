"""PyTorch reference for `sam3lab bench full`: the full-size SAM3 (Meta's build_sam3_image_model,
random weights unless --checkpoint), a seeded random 1008x1008 image and "a red cat", one whole forward
per repetition, timed per stage (image, text, grounding) exactly as forward.py does.

    python benches/reference/full.py --full --threads 2 --warmup 0 --reps 1

Needs ~5 GiB of RAM and minutes per repetition on a CPU. Protocol: _common.py, docs/benchmarks.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forward  # noqa: E402

if __name__ == "__main__":
    if "--full" not in sys.argv and "--fixture" not in sys.argv:
        sys.argv.append("--full")
    forward.main(__doc__)

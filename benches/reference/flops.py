"""PyTorch's count of a SAM3 forward's arithmetic, per stage, for `sam3lab bench` (issue 21 item 4):
image (backbone.forward_image: trunk + neck), text (backbone.forward_text), grounding
(forward_grounding), counted by `torch.utils.flop_counter.FlopCounterMode` on Meta's modules
(matrix products, convolutions and attention at 2 FLOPs per multiply-add; elementwise work is not
counted). Prints one JSON object: {"image": …, "text": …, "grounding": …, "by_module": {…}}.

    python benches/reference/flops.py --fixture data/fixtures/sam3-tiny
    python benches/reference/flops.py --full

Setup as the other reference scripts (_common.py). The committed data/fixtures/flops-reference.json
is this script's output for the fixture and the full model (regenerate: scripts/flops-reference.sh).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def counted(fn):
    with FlopCounterMode(display=False, depth=3) as m:
        out = fn()
    by_module = {k: int(sum(v.values())) for k, v in m.get_flop_counts().items() if k != "Global"}
    return out, int(m.get_total_flops()), by_module


def main():
    p = C.parser(__doc__)
    args = p.parse_args()
    args.warmup = 0
    C.setup(args)
    model = C.build_model(args)
    pixels = C.image(args, model)
    find = C.find_stage(1)
    with torch.inference_mode():
        image_out, image, m1 = counted(lambda: model.backbone.forward_image(pixels))
        text_out, text, m2 = counted(lambda: model.backbone.forward_text(["a red cat"], device="cpu"))
        backbone_out = dict(image_out)
        backbone_out.update(text_out)
        _, grounding, m3 = counted(lambda: model.forward_grounding(
            backbone_out=backbone_out, find_input=find, find_target=None, geometric_prompt=model._get_dummy_prompt()))
    C.emit({"image": image, "text": text, "grounding": grounding, "by_module": {"image": m1, "text": m2, "grounding": m3}})


if __name__ == "__main__":
    main()

"""PyTorch reference for `sam3lab bench train`: one SAM3 training step on the training fixture's batch
(data/fixtures/sam3-tiny-train: 2 images, 3 find queries), timed per stage --
forward (train-mode forward_image + forward_text + forward_grounding, which runs Meta's
BinaryHungarianMatcherV2 on the o2o outputs), loss (Sam3LossWrapper with the fixture's recorded loss
configuration: Boxes, IABCEMdetr, Masks, the one-to-many matcher), backward (core_loss.backward() +
AdamW step, lr 1e-3, weight decay 0.01, as the fixture's record).

    python benches/reference/train_step.py --fixture data/fixtures/sam3-tiny-train --threads 1 --warmup 3 --reps 10

Needs sam3's training extras (scipy for the matcher, torchmetrics). Protocol and setup: _common.py and
docs/benchmarks.md. The model keeps training from step to step (as ours does); the times do not depend on
the weights' values.
"""

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import torch  # noqa: E402


def _instance(spec):
    """An object from a recorded {"class": "module.Class", ...kwargs} entry (unknown keys dropped)."""
    mod, _, name = spec["class"].rpartition(".")
    cls = getattr(importlib.import_module(mod), name)
    return cls(**C._kwargs(cls, spec))


def main():
    args = C.parser(__doc__).parse_args()
    if not args.fixture:
        sys.exit("train_step.py: only --fixture is supported (the full-size step has no reference script yet)")
    C.setup(args)
    from safetensors.torch import load_file
    from sam3.model.data_misc import BatchedFindTarget, FindStage
    from sam3.model.geometry_encoders import Prompt
    from sam3.train.loss.sam3_loss import Sam3LossWrapper

    cfg = C.fixture_config(args.fixture)
    model = C.build_fixture_model(args.fixture, C.bpe_path(args), train=True)
    x = load_file(os.path.join(args.fixture, "inputs.safetensors"))
    texts = cfg["batch"]["find_text_batch"]
    n = len(texts)
    find = FindStage(img_ids=x["find.img_ids"], text_ids=x["find.text_ids"],
                     input_boxes=torch.zeros(0, n, 4), input_boxes_mask=torch.zeros(n, 0, dtype=torch.bool),
                     input_boxes_label=torch.zeros(0, n, dtype=torch.long), input_points=None, input_points_mask=None)
    target = BatchedFindTarget(
        num_boxes=x["target.num_boxes"], boxes=x["target.boxes"], boxes_padded=x["target.boxes_padded"],
        repeated_boxes=None, segments=x["target.masks"].bool(), semantic_segments=None,
        is_valid_segment=x["target.is_valid_mask"].bool(), is_exhaustive=x["target.is_exhaustive"].bool(),
        object_ids=x["target.object_ids"], object_ids_padded=x["target.object_ids_padded"],
    )
    lc = cfg["loss"]
    loss_fn = Sam3LossWrapper(
        loss_fns_find=[_instance(s) for s in lc["loss_fns_find"]],
        matcher=_instance(lc["matcher"]), o2m_matcher=_instance(lc["o2m_matcher"]),
        **C._kwargs(Sam3LossWrapper, lc["wrapper"]),
    )
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    pixels = x["pixel_values"]

    def once():
        t = C.timer()
        backbone_out = {"img_batch_all_stages": pixels}
        backbone_out.update(model.backbone.forward_image(pixels))
        backbone_out.update(model.backbone.forward_text(texts, device="cpu"))
        prompt = Prompt(box_embeddings=find.input_boxes, box_mask=find.input_boxes_mask,
                        box_labels=find.input_boxes_label)
        out = model.forward_grounding(backbone_out=backbone_out, find_input=find, find_target=target,
                                      geometric_prompt=prompt)
        forward_ms = t()
        t = C.timer()
        losses = loss_fn.compute_loss(out, model.back_convert(target))
        core = losses["core_loss"]
        _ = core.item()
        loss_ms = t()
        t = C.timer()
        optim.zero_grad(set_to_none=True)
        core.backward()
        optim.step()
        return {"forward_ms": forward_ms, "loss_ms": loss_ms, "backward_ms": t()}

    C.serve("train_step.py", args, once)


if __name__ == "__main__":
    main()

"""PyTorch reference for `sam3lab bench train`: one SAM3 training step on the training fixture's batch
(data/fixtures/sam3-tiny-train: 2 images, 3 find queries, text only), timed per stage --
forward (train-mode forward_image + forward_text + forward_grounding, what Sam3Image.forward does; it
runs Meta's BinaryHungarianMatcherV2 on the o2o outputs), loss (Sam3LossWrapper called as Trainer._step
calls it, with the fixture's recorded loss configuration: Boxes, IABCEMdetr, Masks, the one-to-many
matcher, sqrt(#queries) scaling), backward (core_loss.backward() + AdamW step, lr 1e-3, weight decay
0.01, as the fixture's record).

    python benches/reference/train_step.py --fixture data/fixtures/sam3-tiny-train --threads 1 --warmup 3 --reps 10

As in the fixture (and in our step) dropout and drop-path are off. Activation checkpointing is off by
default (--act-ckpt off: the same work as our step); --act-ckpt on is Meta's train mode as built by
model_builder, whose backward also recomputes the encoder/decoder/geometry/segmentation forwards.
On CPU tensors sam3's Triton focal loss is replaced by a torch restatement (cpu_focal_loss). The first
step reproduces the fixture's loss (core_loss 213.5677) and gradients.

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


class _FocalLoss(torch.autograd.Function):
    """sam3's Triton sigmoid focal loss (sam3/train/loss/sigmoid_focal_loss.py) restated in torch for
    CPU tensors: the kernel's forward formula and its analytic backward, elementwise (reduce=False) or
    summed (reduce=True), like SigmoidFocalLoss / SigmoidFocalLossReduced."""

    @staticmethod
    def forward(ctx, inputs, targets, alpha, gamma, reduce):
        x, t = inputs.float(), targets.float()
        bce = x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))
        sig = torch.sigmoid(x)
        p_t = sig * t + (1 - sig) * (1 - t)
        alpha_t = alpha * t + (1 - alpha) * (1 - t)
        loss = alpha_t * torch.pow(1 - p_t, gamma) * bce
        ctx.save_for_backward(inputs, targets)
        ctx.alpha, ctx.gamma, ctx.reduce = alpha, gamma, reduce
        return loss.sum() if reduce else loss

    @staticmethod
    def backward(ctx, grad_out):
        inputs, targets = ctx.saved_tensors
        alpha, gamma = ctx.alpha, ctx.gamma
        x, t = inputs.float(), targets.float()
        bce = x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))
        sig = torch.sigmoid(x)
        p_t = sig * t + (1 - sig) * (1 - t)
        tmp = torch.pow(1 - p_t, gamma - 1)
        alpha_t = alpha * t + (1 - alpha) * (1 - t)
        d_mod = -gamma * (2 * t - 1) * sig * (1 - sig) * tmp
        grad = alpha_t * ((sig - t) * tmp * (1 - p_t) + d_mod * bce)
        return (grad_out * grad).to(inputs.dtype), None, None, None, None


def cpu_focal_loss():
    """sam3's losses call Triton kernels (GPU only) for the sigmoid focal loss (loss_mask and the
    presence loss); on CPU tensors use the torch restatement above (what the training fixture did)."""
    from sam3.train.loss import loss_fns
    gpu, gpu_reduce = loss_fns.triton_sigmoid_focal_loss, loss_fns.triton_sigmoid_focal_loss_reduce
    loss_fns.triton_sigmoid_focal_loss = lambda x, t, alpha=0.25, gamma=2: (
        gpu(x, t, alpha, gamma) if x.is_cuda else _FocalLoss.apply(x, t, alpha, gamma, False))
    loss_fns.triton_sigmoid_focal_loss_reduce = lambda x, t, alpha=0.25, gamma=2: (
        gpu_reduce(x, t, alpha, gamma) if x.is_cuda else _FocalLoss.apply(x, t, alpha, gamma, True))


def zero_dropout(model):
    """Dropout and drop-path off, as in the training fixture (and in our step): train mode otherwise
    unchanged. Returns how many modules were touched."""
    n = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout) and m.p > 0:
            m.p, n = 0.0, n + 1
        elif isinstance(m, torch.nn.MultiheadAttention) and m.dropout > 0:
            m.dropout, n = 0.0, n + 1
        elif type(m).__name__ == "DropPath" and getattr(m, "drop_prob", 0) > 0:
            m.drop_prob, n = 0.0, n + 1
    return n


def no_act_ckpt():
    """Run the modules sam3 wraps in activation_ckpt_wrapper directly, without torch.utils.checkpoint
    (--act-ckpt off). Meta's train mode asserts use_act_checkpoint in the fusion encoder and decoder
    and so always recomputes their forward (and the geometry encoder's and segmentation head's)
    during backward; our step does not recompute, so 'off' is the like-for-like comparison."""
    import importlib

    def wrapper(module):
        def call(*a, act_ckpt_enable=True, use_reentrant=False, **k):
            return module(*a, **k)
        return call

    for name in ("decoder", "encoder", "geometry_encoders", "sam3_image", "vl_combiner"):
        importlib.import_module(f"sam3.model.{name}").activation_ckpt_wrapper = wrapper


def train_forward(model, pixels, texts, find, target):
    """What Sam3Image.forward(batch) does in train mode (no interactive steps): forward_image +
    forward_text + forward_grounding with the find targets (the model runs its o2o matching), the
    geometric prompt taken from the find stage's boxes."""
    from sam3.model.geometry_encoders import Prompt
    backbone_out = {"img_batch_all_stages": pixels}
    backbone_out.update(model.backbone.forward_image(pixels))
    backbone_out.update(model.backbone.forward_text(texts, device="cpu"))
    prompt = Prompt(box_embeddings=find.input_boxes, box_mask=find.input_boxes_mask,
                    box_labels=find.input_boxes_label)
    return model.forward_grounding(backbone_out=backbone_out, find_input=find, find_target=target,
                                   geometric_prompt=prompt.clone())


def build_step(args):
    """The model, batch, loss and optimizer of the training fixture; returns once(), which runs one
    timed step and returns its stage times, and `last`, where once() leaves the step's loss dict."""
    C.setup(args)
    from safetensors.torch import load_file
    from sam3.model.data_misc import BatchedFindTarget, FindStage
    from sam3.model.model_misc import SAM3Output
    from sam3.train.loss.sam3_loss import Sam3LossWrapper

    cfg = C.fixture_config(args.fixture)
    cpu_focal_loss()
    if args.act_ckpt == "off":
        no_act_ckpt()
    C.log(f"train_step.py: activation checkpointing {args.act_ckpt}")
    model = C.build_fixture_model(args.fixture, C.bpe_path(args), train=True)
    C.log(f"train_step.py: dropout/drop-path zeroed in {zero_dropout(model)} module(s)")
    x = load_file(os.path.join(args.fixture, "inputs.safetensors"))
    texts = cfg["batch"]["find_text_batch"]
    n = len(texts)
    # What collate_fn_api gives for text-only queries (config.json: batch.geometric_prompt).
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
    last = {}

    def once():
        # forward: what Sam3Image.forward(batch) does in train mode (no interactive steps)
        t = C.timer()
        out = train_forward(model, pixels, texts, find, target)
        stages = SAM3Output(iter_mode=SAM3Output.IterMode.LAST_STEP_PER_STAGE)
        stages.append([out])
        forward_ms = t()
        # loss: what Trainer._step does (back_convert + Sam3LossWrapper.forward, which adds the
        # sqrt(find batch size) scaling on top of compute_loss)
        t = C.timer()
        losses = loss_fn(stages, [model.back_convert(target)])
        core = losses["core_loss"]
        _ = core.item()
        loss_ms = t()
        last["losses"] = losses
        t = C.timer()
        optim.zero_grad(set_to_none=True)
        core.backward()
        optim.step()
        return {"forward_ms": forward_ms, "loss_ms": loss_ms, "backward_ms": t()}

    return once, last


def main():
    p = C.parser(__doc__)
    p.add_argument("--act-ckpt", choices=["on", "off"], default="off",
                   help="off (default, what `bench train` measures): no recomputation, the same work as our "
                        "step; on: Meta's train mode as model_builder builds it (its encoder and decoder assert "
                        "activation checkpointing), so backward also recomputes those forwards (~+30%% here)")
    args = p.parse_args()
    if not args.fixture:
        sys.exit("train_step.py: only --fixture is supported (the full-size step has no reference script yet)")
    once, _ = build_step(args)
    C.serve("train_step.py", args, once)


if __name__ == "__main__":
    main()

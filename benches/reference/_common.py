"""Shared plumbing of the PyTorch reference scripts behind `sam3lab bench ... --reference-python`.

The protocol (docs/benchmarks.md): the bench starts `python SCRIPT ARGS...` once. The script builds
its model, runs `--warmup` untimed repetitions, then for every line it reads on stdin runs one timed
repetition and prints ONE JSON object on ONE stdout line, e.g.
`{"image_ms": 3.1, "text_ms": 0.1, "grounding_ms": 2.0}`; it exits 0 when stdin closes (or after
`--reps` repetitions). Everything else (library chatter, progress) goes to stderr: stdout carries only
result lines.

Models: `--full` builds Meta's full-size SAM3 with `sam3.model_builder.build_sam3_image_model`
(random weights unless `--checkpoint`); `--fixture DIR` builds the same classes at the fixture's sizes
(DIR/config.json, "model") and loads DIR/weights.safetensors (the checkpoint's own tensor names).
"""

import argparse
import inspect
import json
import os
import sys
import time

# Result lines go to the real stdout; anything a library prints goes to stderr -- also what native
# code writes to file descriptor 1 (fd 1 is pointed at stderr, results use a duplicate of the original).
sys.stdout.flush()
_RESULTS = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

import torch  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def emit(line):
    """Print one result line, e.g. {"image_ms": 3.1, "text_ms": 0.1, "grounding_ms": 2.0}."""
    _RESULTS.write(json.dumps(line) + "\n")
    _RESULTS.flush()


def serve(name, args, once):
    """--warmup untimed calls of once(), then one result line (once()'s dict) per 'run' line on stdin."""
    for _ in range(args.warmup):
        once()
    log(f"{name}: model built, {args.warmup} warm-up repetition(s) done; answering 'run' lines")
    for _ in repetitions(args):
        emit(once())


def parser(description):
    p = argparse.ArgumentParser(description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fixture", help="fixture directory (config.json, weights.safetensors, inputs.safetensors)")
    src.add_argument("--full", action="store_true", help="full-size SAM3 (build_sam3_image_model)")
    p.add_argument("--checkpoint", help="with --full: a sam3.pt to load (default: random weights)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed repetitions before answering (default: 1 on a fixture, 0 with --full: "
                        "`bench full` does not pass --warmup and times its own first forward)")
    p.add_argument("--reps", type=int, default=5, help="at most this many repetitions (stdin EOF ends sooner)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bpe", help="CLIP BPE vocabulary (default: sam3's asset, else open_clip's, else this repo's "
                                 "data/clip-bpe/bpe_simple_vocab_16e6.txt.gz)")
    return p


def bpe_path(args):
    """The CLIP BPE file: --bpe, sam3's packaged asset, open_clip's identical copy, or the vendored one."""
    if getattr(args, "bpe", None):
        return args.bpe
    candidates = []
    try:
        import pkg_resources
        candidates.append(pkg_resources.resource_filename("sam3", "assets/bpe_simple_vocab_16e6.txt.gz"))
    except Exception:
        pass
    try:
        import open_clip
        candidates.append(os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz"))
    except Exception:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "..", "data", "clip-bpe", "bpe_simple_vocab_16e6.txt.gz"))
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(f"no CLIP BPE vocabulary found (tried {candidates}); pass --bpe")


def setup(args):
    if args.warmup is None:
        args.warmup = 0 if args.full else 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cpu_only_shims()


def cpu_only_shims():
    """Make Meta's sam3 constructible and runnable on a machine without CUDA (a no-op where CUDA is
    available). Three spots in sam3 assume a GPU: `PositionEmbeddingSine(precompute_resolution=...)`
    fills its cache from `torch.zeros(..., device="cuda")`; `TransformerDecoder(resolution=, stride=)`
    precomputes its boxRPB coordinates with `_get_coords(..., device="cuda")`; and the geometry
    encoder's box pooling calls `Tensor.pin_memory()` (needs an accelerator). The shims compute the
    same tables on the CPU and make `pin_memory()` a no-op; the values are unchanged."""
    if torch.cuda.is_available():
        return
    from sam3.model.decoder import TransformerDecoder
    from sam3.model.position_encoding import PositionEmbeddingSine

    if getattr(PositionEmbeddingSine, "_sam3lab_cpu", False):
        return
    init = PositionEmbeddingSine.__init__

    def pe_init(self, *a, precompute_resolution=None, **k):
        init(self, *a, precompute_resolution=None, **k)
        if precompute_resolution is not None:  # sam3's own precompute loop, on the CPU
            for div in (4, 8, 16, 32):
                size = (precompute_resolution // div, precompute_resolution // div)
                self.forward(torch.zeros((1, 1) + size))
                self.cache[size] = self.cache[size].clone().detach()

    PositionEmbeddingSine.__init__ = pe_init
    PositionEmbeddingSine._sam3lab_cpu = True
    get_coords = TransformerDecoder._get_coords

    def cpu_coords(H, W, device):
        return get_coords(H, W, "cpu" if str(device).startswith("cuda") else device)

    TransformerDecoder._get_coords = staticmethod(cpu_coords)
    torch.Tensor.pin_memory = lambda self, *a, **k: self


def repetitions(args):
    """Yield once per requested repetition: one line on stdin each, at most args.reps."""
    for _ in range(args.reps):
        line = sys.stdin.readline()
        if not line:
            return
        yield


def timer():
    t = time.perf_counter()
    return lambda: (time.perf_counter() - t) * 1e3


def _kwargs(cls, d):
    """The entries of d that cls's constructor takes (notes and class names dropped)."""
    names = set(inspect.signature(cls.__init__).parameters)
    return {k: v for k, v in d.items() if k in names}


def fixture_config(fixture):
    with open(os.path.join(fixture, "config.json")) as f:
        return json.load(f)


def build_fixture_model(fixture, bpe, train=False):
    """SAM3's image model at the fixture's sizes, built from sam3's own classes, with its weights."""
    cfg = fixture_config(fixture)
    model = build_model_from_config(cfg, bpe, train=train)
    from safetensors.torch import load_file
    sd = load_file(os.path.join(fixture, "weights.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    excluded = cfg.get("weights_excluded_keys") or []
    excluded = set(excluded.get("keys", []) if isinstance(excluded, dict) else excluded)
    # The complex64 RoPE tables (`*.attn.freqs_cis`, buffers the ViT computes itself) are left out of
    # every fixture's weights; sam3-tiny lists them under weights_excluded_keys, sam3-tiny-train does not.
    missing = [k for k in missing if k not in excluded and not k.endswith(".attn.freqs_cis")]
    if missing or unexpected:
        log(f"warning: {fixture}/weights.safetensors: {len(missing)} missing, {len(unexpected)} unexpected keys; "
            f"first: {(missing + unexpected)[:5]}")
    return model.train() if train else model.eval()


def build_model_from_config(cfg, bpe, train=False):
    """SAM3's image model built from sam3's own classes at the sizes of a fixture config (its "model"
    block; with `train`, the loss block's matcher attached), with the classes' own initialisation."""
    from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
    from sam3.model.encoder import TransformerEncoderFusion, TransformerEncoderLayer
    from sam3.model.geometry_encoders import SequenceGeometryEncoder
    from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
    from sam3.model.model_misc import MLP, DotProductScoring, TransformerWrapper
    from sam3.model.model_misc import MultiheadAttentionWrapper as MHA
    from sam3.model.necks import Sam3DualViTDetNeck
    from sam3.model.position_encoding import PositionEmbeddingSine
    from sam3.model.sam3_image import Sam3Image
    from sam3.model.text_encoder_ve import VETextEncoder
    from sam3.model.tokenizer_ve import SimpleTokenizer
    from sam3.model.vitdet import ViT
    from sam3.model.vl_combiner import SAM3VLBackbone

    m = cfg["model"]
    d = m["d_model"]
    v, t, pe = m["vit"], m["text"], m["position_encoding"]

    def sine(res=None):
        return PositionEmbeddingSine(num_pos_feats=pe["num_pos_feats"], normalize=pe["normalize"], scale=None,
                                     temperature=pe["temperature"], precompute_resolution=res)

    trunk = ViT(
        img_size=v["img_size"], pretrain_img_size=v["pretrain_img_size"], patch_size=v["patch_size"],
        embed_dim=v["embed_dim"], depth=v["depth"], num_heads=v["num_heads"], mlp_ratio=v["mlp_ratio"],
        norm_layer="LayerNorm", drop_path_rate=0.0, qkv_bias=v["qkv_bias"], use_abs_pos=v["use_abs_pos"],
        tile_abs_pos=v["tile_abs_pos"], global_att_blocks=tuple(v["global_att_blocks"]), rel_pos_blocks=(),
        use_rope=v["use_rope"], use_interp_rope=v["use_interp_rope"], window_size=v["window_size"],
        pretrain_use_cls_token=v["pretrain_use_cls_token"], retain_cls_token=v["retain_cls_token"],
        ln_pre=v["ln_pre"], ln_post=v["ln_post"], return_interm_layers=False, bias_patch_embed=v["bias_patch_embed"],
    )
    neck = Sam3DualViTDetNeck(position_encoding=sine(m["image_size"]), d_model=d,
                              scale_factors=m["neck"]["scale_factors"], trunk=trunk, add_sam2_neck=False)
    text = VETextEncoder(tokenizer=SimpleTokenizer(bpe_path=bpe), d_model=d, width=t["width"], heads=t["heads"],
                         layers=t["layers"], context_length=t["context_length"], vocab_size=t["vocab_size"],
                         use_ln_post=t["use_ln_post"])
    backbone = SAM3VLBackbone(visual=neck, text=text, scalp=m["neck"]["scalp"])

    def enc_layer(heads, ff, batch_first, pos_at_attn, pos_keys):
        return TransformerEncoderLayer(
            activation="relu", d_model=d, dim_feedforward=ff, dropout=0.1, pos_enc_at_attn=pos_at_attn,
            pos_enc_at_cross_attn_keys=pos_keys, pos_enc_at_cross_attn_queries=False, pre_norm=True,
            self_attention=MHA(num_heads=heads, dropout=0.1, embed_dim=d, batch_first=batch_first),
            cross_attention=MHA(num_heads=heads, dropout=0.1, embed_dim=d, batch_first=batch_first),
        )

    # Activation-checkpointing flags as sam3.model_builder sets them: inert in eval mode; in train mode
    # Meta's encoder and decoder assert them (train_step.py --act-ckpt off bypasses the recomputation).
    fu, de, ge, sc, sh = m["fusion"], m["decoder"], m["geometry"], m["scoring"], m["seg_head"]
    encoder = TransformerEncoderFusion(
        layer=enc_layer(fu["num_heads"], fu["dim_feedforward"], True, True, False), num_layers=fu["num_layers"],
        d_model=d, num_feature_levels=1, frozen=False, use_act_checkpoint=True,
        add_pooled_text_to_img_feat=False, pool_text_with_mask=True,
    )
    dec_layer = TransformerDecoderLayer(
        activation="relu", d_model=d, dim_feedforward=de["dim_feedforward"], dropout=0.1,
        cross_attention=MHA(num_heads=de["num_heads"], dropout=0.1, embed_dim=d), n_heads=de["num_heads"],
        use_text_cross_attention=True,
    )
    decoder = TransformerDecoder(
        layer=dec_layer, num_layers=de["num_layers"], num_queries=de["num_queries"], return_intermediate=True,
        box_refine=True, num_o2m_queries=0, dac=True, boxRPB=de["boxRPB"], d_model=d, frozen=False,
        interaction_layer=None, dac_use_selfatt_ln=True, resolution=de["resolution"], stride=de["stride"],
        use_act_checkpoint=True, presence_token=de["presence_token"],
    )
    scoring = DotProductScoring(
        d_model=d, d_proj=d, clamp_max_val=sc["clamp_max_val"],
        prompt_mlp=MLP(input_dim=d, hidden_dim=sc["prompt_mlp_hidden"], output_dim=d, num_layers=2, dropout=0.1,
                       residual=True, out_norm=torch.nn.LayerNorm(d)),
    )
    seg = UniversalSegmentationHead(
        hidden_dim=d, upsampling_stages=sh["num_upsampling_stages"], aux_masks=False, presence_head=False,
        dot_product_scorer=None, act_ckpt=True,
        cross_attend_prompt=MHA(num_heads=sh["cross_attend_prompt_heads"], dropout=0, embed_dim=d),
        pixel_decoder=PixelDecoder(num_upsampling_stages=sh["num_upsampling_stages"],
                                   interpolation_mode=sh["interpolation_mode"], hidden_dim=d),
    )
    geometry = SequenceGeometryEncoder(
        pos_enc=sine(), encode_boxes_as_points=False, points_direct_project=True, points_pool=True,
        points_pos_enc=True, boxes_direct_project=True, boxes_pool=True, boxes_pos_enc=True, d_model=d,
        num_layers=ge["num_layers"], layer=enc_layer(ge["num_heads"], ge["dim_feedforward"], False, False, True),
        roi_size=ge["roi_size"], use_act_ckpt=True, add_cls=True, add_post_encode_proj=True,
    )
    matcher = None
    if train:
        from sam3.train.matcher import BinaryHungarianMatcherV2
        mc = cfg["loss"]["matcher"]
        matcher = BinaryHungarianMatcherV2(**_kwargs(BinaryHungarianMatcherV2, mc))
    model = Sam3Image(
        backbone=backbone, transformer=TransformerWrapper(encoder=encoder, decoder=decoder, d_model=d),
        input_geometry_encoder=geometry, segmentation_head=seg, num_feature_levels=1, o2m_mask_predict=True,
        dot_prod_scoring=scoring, use_instance_query=False, multimask_output=True,
        inst_interactive_predictor=None, matcher=matcher,
    )
    return model.train() if train else model.eval()


def build_model(args):
    if args.full:
        from sam3.model_builder import build_sam3_image_model
        model = build_sam3_image_model(bpe_path=bpe_path(args), device="cpu", eval_mode=True,
                                       checkpoint_path=args.checkpoint, load_from_HF=False)
        return model.eval()
    return build_fixture_model(args.fixture, bpe_path(args))


def image(args, model):
    """The fixture's pixel_values, or a seeded random image at the model's size (--full)."""
    if args.fixture:
        from safetensors.torch import load_file
        return load_file(os.path.join(args.fixture, "inputs.safetensors"))["pixel_values"][:1].contiguous()
    s = 1008
    g = torch.Generator().manual_seed(args.seed)
    return torch.rand(1, 3, s, s, generator=g) * 2 - 1


def find_stage(n=1):
    """Image 0 against text 0..n-1, no geometric prompt (what Sam3Processor passes)."""
    from sam3.model.data_misc import FindStage
    return FindStage(img_ids=torch.zeros(n, dtype=torch.long), text_ids=torch.arange(n, dtype=torch.long),
                     input_boxes=None, input_boxes_mask=None, input_boxes_label=None,
                     input_points=None, input_points_mask=None)


def encode_image(model, pixels):
    """backbone.forward_image: (its output dict, ms)."""
    t = timer()
    out = model.backbone.forward_image(pixels)
    return out, t()


def text_and_ground(model, image_out, phrase, find):
    """backbone.forward_text([phrase]) then forward_grounding against image_out (text-only prompt, as
    Sam3Processor does): (text ms, grounding ms). Call under torch.inference_mode()."""
    t = timer()
    backbone_out = dict(image_out)
    backbone_out.update(model.backbone.forward_text([phrase], device="cpu"))
    text_ms = t()
    t = timer()
    out = model.forward_grounding(backbone_out=backbone_out, find_input=find, find_target=None,
                                  geometric_prompt=model._get_dummy_prompt())
    _ = out["pred_masks"].sum().item()
    return text_ms, t()

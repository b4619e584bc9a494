"""PyTorch reference for `sam3lab bench forward` / `bench full`: one whole SAM3 forward per repetition,
timed per stage -- image (backbone.forward_image: trunk + neck), text (backbone.forward_text),
grounding (forward_grounding: geometry, fusion encoder, decoder, scoring, segmentation head).

    python benches/reference/forward.py --fixture data/fixtures/sam3-tiny --threads 1 --warmup 5 --reps 10
    python benches/reference/forward.py --full --threads 2 --warmup 0 --reps 1

Protocol and setup: _common.py and docs/benchmarks.md. With --fixture the prompt is the fixture's own
(config.json, "a red cat" for fixture A); --full uses "a red cat" like ours.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import torch  # noqa: E402


def fixture_prompt(fixture):
    """The phrase the fixture was exported with: config.json's tokenizer.prompt ("a red cat" for fixture
    A), else the first string under a "prompt" key."""
    cfg = C.fixture_config(fixture)
    p = (cfg.get("tokenizer") or {}).get("prompt")
    if isinstance(p, str):
        return p

    def find(x):
        if isinstance(x, dict):
            p = x.get("prompt")
            if isinstance(p, str) and not p.startswith("prompt ="):
                return p
            for v in x.values():
                r = find(v)
                if r:
                    return r
        return None
    return find(cfg) or "a red cat"


def main(description=__doc__):
    args = C.parser(description).parse_args()
    C.setup(args)
    model = C.build_model(args)
    pixels = C.image(args, model)
    prompt = fixture_prompt(args.fixture) if args.fixture else "a red cat"
    find = C.find_stage(1)

    def once():
        with torch.inference_mode():
            image_out, image_ms = C.encode_image(model, pixels)
            text_ms, grounding_ms = C.text_and_ground(model, image_out, prompt, find)
        return {"image_ms": image_ms, "text_ms": text_ms, "grounding_ms": grounding_ms}

    C.serve("forward.py", args, once)


if __name__ == "__main__":
    main()

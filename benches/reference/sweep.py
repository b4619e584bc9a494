"""PyTorch reference for `sam3lab bench sweep`: the shape of every probe of the post -- one image
encoded once (backbone.forward_image), then for every prompt backbone.forward_text + forward_grounding.
One result line per repetition: image_ms (the single encode), text_ms and grounding_ms (summed over
all prompts), plus per-prompt detail in "prompt_ms" (a list; the bench ignores extra keys).

    python benches/reference/sweep.py --fixture data/fixtures/sam3-tiny --prompts-json '["a cat", "a dog"]' --reps 5
    python benches/reference/sweep.py --full --threads 2 --warmup 0 --reps 1 --prompts-json '["a cat", "a dog"]'

Protocol and setup: _common.py and docs/benchmarks.md.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import torch  # noqa: E402


def main():
    p = C.parser(__doc__)
    p.add_argument("--prompts-json", required=True, help="JSON list of the noun phrases, in order")
    args = p.parse_args()
    prompts = json.loads(args.prompts_json)
    assert isinstance(prompts, list) and prompts and all(isinstance(x, str) for x in prompts), "--prompts-json"
    C.setup(args)
    model = C.build_model(args)
    pixels = C.image(args, model)
    find = C.find_stage(1)

    def once():
        with torch.inference_mode():
            image_out, image_ms = C.encode_image(model, pixels)
            per = [C.text_and_ground(model, image_out, phrase, find) for phrase in prompts]
        return {"image_ms": image_ms, "text_ms": sum(t for t, _ in per), "grounding_ms": sum(g for _, g in per),
                "prompt_ms": [t + g for t, g in per]}

    C.serve("sweep.py", args, once)


if __name__ == "__main__":
    main()

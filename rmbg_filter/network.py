"""The RMBG-1.4 network: an IS-Net style nested U-Net, written for this project.

Parameter names and shapes match BRIA's published checkpoint exactly, so its
``model.safetensors``, ``pytorch_model.bin`` and ``model.pth`` load with
``strict=True``. The forward pass returns what the published remote-code class
returns, so code written for that class keeps working.

``RMBGNetwork`` is the plain torch module the engine runs: loading it
(``loading.load_network``) imports no transformers, which costs about 2.5 s of
every start. ``hub_network.BriaRMBG`` is the same network as a transformers
``PreTrainedModel`` (``from_pretrained``, ``save_pretrained``); both share
``RMBGLayers``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RMBGLayers", "RMBGNetwork", "meta_network"]


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``x`` (N,C,h,w) to the spatial size of ``like``."""
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class ConvBnRelu(nn.Module):
    """3x3 convolution (dilated by ``dilation``), batch norm, ReLU; keeps the size."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class ResidualUBlock(nn.Module):
    """An RSU-L block: a small U-Net of ``depth`` levels with a residual connection.

    Levels 1..depth-1 are separated by 2x max-pooling (ceil mode); the innermost
    level is a dilation-2 convolution. Decoder levels upsample bilinearly and
    concatenate the encoder level of the same size. Output: (N, out_ch, H, W).
    """

    def __init__(self, depth: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depth = depth
        self.rebnconvin = ConvBnRelu(in_ch, out_ch)
        self.rebnconv1 = ConvBnRelu(out_ch, mid_ch)
        for level in range(2, depth):
            setattr(self, f"rebnconv{level}", ConvBnRelu(mid_ch, mid_ch))
        setattr(self, f"rebnconv{depth}", ConvBnRelu(mid_ch, mid_ch, dilation=2))
        for level in range(depth - 1, 1, -1):
            setattr(self, f"rebnconv{level}d", ConvBnRelu(2 * mid_ch, mid_ch))
        self.rebnconv1d = ConvBnRelu(2 * mid_ch, out_ch)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        encoded = [self.rebnconv1(hxin)]
        for level in range(2, self.depth):
            encoded.append(getattr(self, f"rebnconv{level}")(self.pool(encoded[-1])))
        hx = getattr(self, f"rebnconv{self.depth}")(encoded[-1])
        for level in range(self.depth - 1, 0, -1):
            skip = encoded[level - 1]
            if level < self.depth - 1:
                hx = _upsample_to(hx, skip)
            hx = getattr(self, f"rebnconv{level}d")(torch.cat((hx, skip), 1))
        return hx + hxin


class DilatedResidualBlock(nn.Module):
    """An RSU-4F block: like RSU-4 but with dilations 1, 2, 4, 8 and no pooling.

    Used at the lowest resolutions. Output: (N, out_ch, H, W).
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.rebnconvin = ConvBnRelu(in_ch, out_ch)
        self.rebnconv1 = ConvBnRelu(out_ch, mid_ch)
        self.rebnconv2 = ConvBnRelu(mid_ch, mid_ch, dilation=2)
        self.rebnconv3 = ConvBnRelu(mid_ch, mid_ch, dilation=4)
        self.rebnconv4 = ConvBnRelu(mid_ch, mid_ch, dilation=8)
        self.rebnconv3d = ConvBnRelu(2 * mid_ch, mid_ch, dilation=4)
        self.rebnconv2d = ConvBnRelu(2 * mid_ch, mid_ch, dilation=2)
        self.rebnconv1d = ConvBnRelu(2 * mid_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


class RMBGLayers:
    """RMBG-1.4's layers and forward pass, for an ``nn.Module`` subclass that calls ``_build`` in its ``__init__``.

    Call the network on a normalised float tensor (N, in_ch, H, W) (the seed feeds
    ``pixels / 255 - 0.5``). It returns ``(sides, features)``: ``sides`` is a list
    of six sigmoid maps (N, out_ch, H, W) in [0, 1], side 1 being the alpha;
    ``features`` the six decoder feature maps they came from.
    """

    def _build(self, in_ch: int, out_ch: int) -> None:
        """Make the layers, named as in the published checkpoint."""
        self.conv_in = nn.Conv2d(in_ch, 64, 3, stride=2, padding=1)
        self.stage1 = ResidualUBlock(7, 64, 32, 64)
        self.stage2 = ResidualUBlock(6, 64, 32, 128)
        self.stage3 = ResidualUBlock(5, 128, 64, 256)
        self.stage4 = ResidualUBlock(4, 256, 128, 512)
        self.stage5 = DilatedResidualBlock(512, 256, 512)
        self.stage6 = DilatedResidualBlock(512, 256, 512)
        self.stage5d = DilatedResidualBlock(1024, 256, 512)
        self.stage4d = ResidualUBlock(4, 1024, 128, 256)
        self.stage3d = ResidualUBlock(5, 512, 64, 128)
        self.stage2d = ResidualUBlock(6, 256, 32, 64)
        self.stage1d = ResidualUBlock(7, 128, 16, 64)
        for index, channels in enumerate((64, 64, 128, 256, 512, 512), start=1):
            setattr(self, f"side{index}", nn.Conv2d(channels, out_ch, 3, padding=1))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def _decode(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The six decoder feature maps, finest first (hx1d ... hx5d, hx6)."""
        hxin = self.conv_in(pixel_values)
        encoders = (self.stage1, self.stage2, self.stage3, self.stage4, self.stage5, self.stage6)
        encoded = [encoders[0](hxin)]
        for stage in encoders[1:]:
            encoded.append(stage(self.pool(encoded[-1])))
        decoders = (self.stage5d, self.stage4d, self.stage3d, self.stage2d, self.stage1d)
        features = [encoded[5]]
        hx = encoded[5]
        for stage, skip in zip(decoders, reversed(encoded[:5]), strict=True):
            hx = stage(torch.cat((_upsample_to(hx, skip), skip), 1))
            features.insert(0, hx)
        return features

    def forward(
        self, pixel_values: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features = self._decode(pixel_values)
        sides = [
            torch.sigmoid(_upsample_to(getattr(self, f"side{i}")(feature), pixel_values))
            for i, feature in enumerate(features, start=1)
        ]
        return sides, features

    def matte(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Side 1 alone, (N, out_ch, H, W) in [0, 1]: the alpha, without the other five sides."""
        hx1d = self._decode(pixel_values)[0]
        return torch.sigmoid(_upsample_to(self.side1(hx1d), pixel_values))


class RMBGNetwork(RMBGLayers, nn.Module):
    """RMBG-1.4 as a plain torch module (see ``RMBGLayers``): 3 channels in, 1 out, as published."""

    def __init__(self) -> None:
        super().__init__()
        self._build(3, 1)


def meta_network() -> RMBGNetwork:
    """A new RMBG-1.4 network on the meta device, in eval mode: every module, tensor name and shape, with no
    memory and no initialisation (for checking weights against it, and for tracing its convolutions' order)."""
    with torch.device("meta"):
        return RMBGNetwork().eval()

"""Moving frames to the model's device and alphas back, overlapped with compute on CUDA.

On CUDA, uploads of uint8 frames (from pinned memory) run on an upload stream
and downloads of uint8 alphas (into pinned memory) on a download stream, each
ordered against the compute stream by events, so that copies of one batch
overlap the network running on another. Elsewhere every step is a plain move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DeviceTransfers", "Download", "Upload"]


@dataclass(frozen=True)
class Upload:
    """Frames (N,H,W,C) uint8 on the device; ``ready`` marks the end of their copy (CUDA only)."""

    pixels: torch.Tensor
    ready: torch.cuda.Event | None = None


@dataclass(frozen=True)
class Download:
    """Alphas (N,H,W) uint8 on their way to host memory; ``ready`` marks the end of the copy (CUDA only)."""

    alphas: torch.Tensor
    ready: torch.cuda.Event | None = None

    def numpy(self) -> np.ndarray:
        """Wait for the copy and return the alphas (N,H,W) uint8."""
        if self.ready is not None:
            self.ready.synchronize()
        return self.alphas.numpy()


class DeviceTransfers:
    """Uploads and downloads for one device; on CUDA on their own streams."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.upload_stream = torch.cuda.Stream(device)
            self.download_stream = torch.cuda.Stream(device)

    def upload(self, batch: torch.Tensor) -> Upload:
        """Start moving frames (N,H,W,C) uint8 from the host to the device. Any thread may call it.

        Frames already on a device (a caller's CUDA tensor) are moved, if at all, directly.
        """
        if not self.cuda or batch.device.type != "cpu":
            return Upload(batch.to(self.device))
        pinned = batch if batch.is_pinned() else batch.pin_memory()
        with torch.cuda.stream(self.upload_stream):
            pixels = pinned.to(self.device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(self.upload_stream)
        return Upload(pixels, ready)

    def arrived(self, upload: Upload) -> torch.Tensor:
        """The uploaded frames, usable by work queued after this call on the current stream."""
        if upload.ready is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(upload.ready)
            upload.pixels.record_stream(compute)  # allocated on the upload stream, used on this one
        return upload.pixels

    def download(self, alphas: torch.Tensor) -> Download:
        """Start moving alphas (N,H,W) uint8 computed on the current stream to host memory."""
        if not self.cuda:
            return Download(alphas.cpu())
        computed = torch.cuda.Event()
        computed.record(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.download_stream):
            self.download_stream.wait_event(computed)
            host = torch.empty(alphas.shape, dtype=alphas.dtype, pin_memory=True)
            host.copy_(alphas, non_blocking=True)
            alphas.record_stream(self.download_stream)
            ready = torch.cuda.Event()
            ready.record(self.download_stream)
        return Download(host, ready)

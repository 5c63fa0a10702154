"""Each quality option on the real network (IS-Net small), on clips with a known alpha: each test fails
when its option is ignored.

Clips and measures are ``make quality``'s own (scripts/quality_clips.py, scripts/quality.py); the model
size is 512 here to keep the tests fast, 1024 in the README's table. Bounds are the issue's targets
where the measure is the same, with what was measured here beside them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import quality_clips as clips
from quality import band_radius, colour_error, dtssd, flicker, mae

from rmbg_filter import load
from rmbg_filter.options import REUSE_SPAN, QualityOptions


@pytest.fixture(scope="module")
def small(isnet_small: Path):
    """IS-Net small in float32 torch at model size 512."""
    return load(isnet_small, device="cpu", dtype="float32", runtime="torch", model_size=512)


def test_a_temporal_radius_steadies_a_still_noisy_shot(small) -> None:
    """Measured: flicker 1.5 levels off, 0.3 with radius 2 (the issue asks for 2x lower). The network runs
    once a frame: the window reuses each output for its neighbours."""
    clip = clips.still(small, frames=6)
    band = clips.edge_band(clip.truths[0], band_radius(clip.truths[0]))
    off = small(np.stack(clip.frames))
    small.network_runs = 0
    steady = small(np.stack(clip.frames), QualityOptions(temporal_radius=2))
    assert small.network_runs == len(clip.frames)
    assert flicker(steady, band) * 2 <= flicker(off, band)
    assert mae(steady, clip.truths) <= mae(off, clip.truths) * 1.05


def test_a_temporal_radius_follows_a_moving_subject(small) -> None:
    """A weighted mean that ignored motion ghosts the subject into its neighbours' places (MAE 0.24 -> 0.66
    levels, dtSSD 5.5 -> 10.2 at model size 1024); the issue asks for MAE within 5% and dtSSD no higher."""
    clip = clips.moving(small, frames=6)
    off = small(np.stack(clip.frames))
    steady = small(np.stack(clip.frames), QualityOptions(temporal_radius=2))
    assert not np.array_equal(off, steady)
    assert mae(steady, clip.truths) <= mae(off, clip.truths) * 1.05
    assert dtssd(steady, clip.truths) <= dtssd(off, clip.truths) + 0.05


def test_a_scene_cut_splits_the_window(small) -> None:
    """The first frame after a cut takes nothing from the shot before: its alpha is what a window starting
    at the cut gives, and its MAE is within 10% of the settled frames'."""
    clip = clips.cut(small, frames=4)
    steady = small(np.stack(clip.frames), QualityOptions(temporal_radius=2))
    after = small(np.stack(clip.frames[4:]), QualityOptions(temporal_radius=2))
    np.testing.assert_array_equal(steady[4:], after)
    assert mae(steady[4:5], clip.truths[4:5]) <= mae(steady[6:], clip.truths[6:]) * 1.1


def test_normalize_none_leaves_an_empty_frame_empty(small) -> None:
    """Min-max stretches the faint response to an empty frame up to 255; none keeps the network's own
    output. Measured mean alpha here: about 1 level with minmax, under 0.1 with none."""
    clip = clips.empty()
    stretched = small(np.stack(clip.frames))
    kept = small(np.stack(clip.frames), QualityOptions(normalize="none"))
    assert stretched.max() == 255
    assert kept.mean() * 4 <= stretched.mean()
    assert kept.max() < 255


def test_guided_refinement_sharpens_the_edges_of_a_large_frame(small) -> None:
    """The issue asks for 25% lower edge-band MAE at 2160p from model size 1024; at 1080p from model size
    512 the frame is 3.75 times the model size, as 2160p is from 1024. Measured here: 36.6 -> 21.4 levels
    (42% lower), 0.3 levels of change off the edge."""
    clip = clips.sharp(small, (1920, 1080))
    truth = clip.truths[0]
    band = clips.edge_band(truth, band_radius(truth))
    bilinear = small(clip.frames[0]).astype(float)
    guided = small(clip.frames[0], QualityOptions(refine="guided")).astype(float)
    assert np.abs(guided - truth)[band].mean() <= np.abs(bilinear - truth)[band].mean() * 0.75
    assert np.abs(guided - bilinear)[~band].mean() <= 0.5
    wider = small(clip.frames[0], QualityOptions(refine="guided", refine_radius=3, refine_eps=1e-2)).astype(float)
    assert np.abs(wider - guided).mean() > 0.1  # the radius and eps are used


def test_decontamination_takes_the_green_out_of_the_edge(small) -> None:
    """The issue asks for 30% lower colour error near the edge of the cut-out laid on a new background."""
    clip = clips.green(small)
    alpha = small(clip.frames[0])
    assert colour_error(clip, alpha, decontaminate=True) <= colour_error(clip, alpha, decontaminate=False) * 0.7


def test_reuse_runs_the_network_on_changed_frames_and_every_span(small) -> None:
    """Ten copies of a frame, then a different one: the network runs on frames 0, REUSE_SPAN and the
    changed one; every copy gets frame 0's alpha (frame REUSE_SPAN's own run gives the same)."""
    frame = clips.still(small, frames=1).frames[0]
    other = clips.empty().frames[0]
    frames = np.stack([frame] * 10 + [other])
    small.network_runs = 0
    alphas = small(frames, QualityOptions(reuse_threshold=40.0))
    assert small.network_runs == 3
    assert REUSE_SPAN < 10
    np.testing.assert_array_equal(alphas[:10], np.stack([small(frame)] * 10))
    np.testing.assert_array_equal(alphas[10], small(other))

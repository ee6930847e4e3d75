"""Optical flow, warping and reliability against a virtual camera whose true flow is known."""

from __future__ import annotations

import numpy as np
import pytest

from styled.video.camera import CameraMove
from styled.video.flow import DIS_PRESETS, frame_pair, grey, long_term_weights, optical_flow, reliability, warp
from video_support import camera_clip

#: Mean end-point error DIS must stay under on the test clip (pixels; measured 0.07-0.15).
MAX_ENDPOINT_ERROR = 0.5


def endpoint_error(flow: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(flow - truth, axis=-1).mean())


@pytest.mark.parametrize("preset", sorted(DIS_PRESETS))
def test_dis_flow_matches_the_cameras_true_flow(preset):
    clip = camera_clip(4, (72, 96))
    for current in (1, 2, 3):
        flow = optical_flow(grey(clip.frames[current]), grey(clip.frames[current - 1]), preset)
        truth = clip.true_flow(current, current - 1)
        assert endpoint_error(flow, truth) < MAX_ENDPOINT_ERROR
        assert endpoint_error(flow, truth) < 0.3 * endpoint_error(np.zeros_like(truth), truth)


def test_warping_the_previous_frame_by_the_true_flow_gives_this_frame():
    clip = camera_clip(3, (72, 96))
    truth = clip.true_flow(2, 1)
    inside = reliability(truth, clip.true_flow(1, 2)) > 0
    warped = warp(clip.frames[1], truth)
    assert np.abs(warped - clip.frames[2])[inside].mean() < 0.03
    assert np.abs(clip.frames[1] - clip.frames[2])[inside].mean() > 2 * np.abs(warped - clip.frames[2])[inside].mean()


def test_true_flow_there_and_back_is_consistent_so_only_what_was_outside_is_unreliable():
    clip = camera_clip(2, (48, 64), CameraMove(pan=(6.0, 0.0), zoom=1.0, turn=0.0))
    backward, forward = clip.true_flow(1, 0), clip.true_flow(0, 1)
    weights = reliability(backward, forward)
    landed = backward[..., 0] + np.arange(64)[None, :]
    np.testing.assert_array_equal(weights > 0, (landed >= 0) & (landed <= 63))
    assert 0 < weights.mean() < 1  # the camera pans right: a strip on the right is new


def test_a_forward_backward_mismatch_is_marked_unreliable():
    backward = np.zeros((32, 32, 2), np.float32)
    forward = np.zeros_like(backward)
    forward[8:16, 8:16] = 3.0  # disagrees with the backward flow there
    weights = reliability(backward, forward)
    assert weights[10:14, 10:14].max() == 0
    assert weights[24:, 24:].min() == 1


def test_motion_boundaries_are_marked_unreliable():
    backward = np.zeros((32, 32, 2), np.float32)
    backward[:, 16:, 0] = 4.0  # the right half moves, the left does not
    weights = reliability(backward, -backward)
    assert weights[:, 15:17].max() == 0
    assert weights[:, 2:12].min() == 1


def test_frame_pair_of_a_static_scene_is_reliable_everywhere():
    frame = grey(camera_clip(1, (48, 64)).frames[0])
    pair = frame_pair(frame, frame, "medium")
    assert np.abs(pair.backward).max() < 0.05
    assert pair.weights.min() == 1


def test_long_term_weights_count_each_pixel_once_nearest_frame_first():
    near = np.array([[1.0, 0.0, 0.0]], np.float32)
    middle = np.array([[1.0, 1.0, 0.0]], np.float32)
    far = np.array([[1.0, 1.0, 1.0]], np.float32)
    weights = long_term_weights([near, middle, far])
    np.testing.assert_array_equal(weights[0], near)
    np.testing.assert_array_equal(weights[1], [[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(weights[2], [[0.0, 0.0, 1.0]])

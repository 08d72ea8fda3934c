"""Planar geometry of the shield: swept poses, footprints, distances, arm kinematics, grouping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safevla_node.safety.geometry import (
    Footprint,
    SweptBody,
    arm_segments,
    box_outline_points,
    link_groups,
    point_box_distance,
    points_in_boxes,
    segment_distance,
    unicycle_poses,
    wrap_angle,
)


def test_wrap_angle_maps_into_minus_pi_to_pi() -> None:
    angles = np.array([0.0, math.pi / 2, 3 * math.pi / 2, -3 * math.pi / 2, 5 * math.pi])
    np.testing.assert_allclose(wrap_angle(angles), [0.0, math.pi / 2, -math.pi / 2, math.pi / 2, -math.pi])


def test_unicycle_straight_line_follows_the_heading() -> None:
    poses = unicycle_poses((1.0, 2.0, math.pi / 2), 0.5, 0.0, np.array([0.0, 2.0]))
    np.testing.assert_allclose(poses[-1], [1.0, 3.0, math.pi / 2], atol=1e-12)


def test_unicycle_quarter_turn_lands_on_the_circle() -> None:
    poses = unicycle_poses((0.0, 0.0, 0.0), 1.0, 1.0, np.linspace(0, math.pi / 2, 9))
    np.testing.assert_allclose(poses[-1], [1.0, 1.0, math.pi / 2], atol=1e-12)
    # every sample lies on the unit circle centred at (0, 1)
    np.testing.assert_allclose(np.hypot(poses[:, 0], poses[:, 1] - 1.0), 1.0, atol=1e-12)


def test_unicycle_pure_rotation_stays_in_place() -> None:
    poses = unicycle_poses((0.3, -0.2, 0.0), 0.0, -0.6, np.array([0.0, 1.0]))
    np.testing.assert_allclose(poses[-1], [0.3, -0.2, -0.6], atol=1e-12)


def test_circle_footprint_clearance_is_distance_minus_radius() -> None:
    poses = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    points = np.array([[0.5, 0.0], [0.1, 0.0]])
    clear = Footprint(0.2).clearance(poses, points)
    np.testing.assert_allclose(clear, [[0.3, -0.1], [0.3, 0.7]])


def test_rectangle_footprint_clearance_is_signed_and_follows_the_pose() -> None:
    fp = Footprint(0.2, length=0.4, width=0.2, offset_x=0.1)  # spans x in [-0.1, 0.3], y in [-0.1, 0.1]
    pose = np.array([[0.0, 0.0, 0.0]])
    points = np.array([[0.5, 0.0], [0.4, 0.2], [0.1, 0.0], [-0.2, 0.0]])
    np.testing.assert_allclose(fp.clearance(pose, points)[0], [0.2, math.hypot(0.1, 0.1), -0.1, 0.1])
    turned = np.array([[0.0, 0.0, math.pi / 2]])  # now spans y in [-0.1, 0.3], x in [-0.1, 0.1]
    np.testing.assert_allclose(fp.clearance(turned, np.array([[0.0, 0.5]]))[0], [0.2])
    assert fp.extent == pytest.approx(math.hypot(0.3, 0.1))


def test_segment_distance_covers_interior_endpoints_and_degenerate_segments() -> None:
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 1.0]])  # the second is a point
    points = np.array([[0.5, 0.3], [2.0, 0.0], [1.0, 2.0]])
    expected = [[0.3, 1.0, math.hypot(0, 2)], [math.hypot(0.5, 0.7), math.hypot(1, 1), 1.0]]
    np.testing.assert_allclose(segment_distance(a, b, points), expected)


def test_arm_points_sideways_and_the_wrist_yaw_turns_the_gripper() -> None:
    pose = np.array([[0.0, 0.0, 0.0]])
    mast, wrist, tip = arm_segments(pose, (-0.1, 0.1), 0.5, 0.0, 0.2)
    np.testing.assert_allclose(mast[0], [-0.1, 0.1])
    np.testing.assert_allclose(wrist[0], [-0.1, -0.4], atol=1e-12)
    np.testing.assert_allclose(tip[0], [-0.1, -0.6], atol=1e-12)
    _, _, tip_turned = arm_segments(pose, (-0.1, 0.1), 0.5, math.pi / 2, 0.2)  # counter-clockwise: toward +x
    np.testing.assert_allclose(tip_turned[0], [0.1, -0.4], atol=1e-12)
    facing_left = np.array([[1.0, 1.0, math.pi / 2]])  # the arm then points along -x of odom
    _, wrist_left, _ = arm_segments(facing_left, (0.0, 0.0), 0.5, 0.0, 0.2)
    np.testing.assert_allclose(wrist_left[0], [1.5, 1.0], atol=1e-12)


def test_arm_segments_take_one_joint_value_per_pose() -> None:
    poses = np.zeros((3, 3))
    _, wrist, _ = arm_segments(poses, (0.0, 0.0), np.array([0.1, 0.2, 0.3]), np.zeros(3), 0.1)
    np.testing.assert_allclose(wrist[:, 1], [-0.1, -0.2, -0.3])


def test_box_outline_points_are_on_the_outline_and_dense_enough() -> None:
    centers = np.array([[1.0, 2.0], [0.0, 0.0]])
    sizes = np.array([[0.5, 0.3], [0.02, 0.02]])
    pts, owner = box_outline_points(centers, sizes, 0.05)
    assert set(owner.tolist()) == {0, 1}
    big = pts[owner == 0]
    on_edge = np.isclose(np.abs(big[:, 0] - 1.0), 0.25) | np.isclose(np.abs(big[:, 1] - 2.0), 0.15)
    centre = np.all(np.isclose(big, [1.0, 2.0]), axis=1)
    assert np.all(on_edge | centre) and centre.sum() == 1
    # any point of the outline is within spacing / 2 of a sample
    probe = np.stack([np.linspace(0.75, 1.25, 101), np.full(101, 2.15)], axis=1)
    gaps = np.min(np.hypot(*(probe[:, None, :] - big[None, :, :]).transpose(2, 0, 1)), axis=1)
    assert gaps.max() <= 0.025 + 1e-9


def test_box_outline_points_of_no_boxes_is_empty() -> None:
    pts, owner = box_outline_points(np.zeros((0, 2)), np.zeros((0, 2)), 0.05)
    assert pts.shape == (0, 2) and owner.shape == (0,)


def test_points_in_boxes_uses_the_floor_projection_and_padding() -> None:
    centers = np.array([[0.0, 0.0, 0.4], [2.0, 0.0, 0.4]])
    sizes = np.array([[1.0, 0.5, 0.8], [0.2, 0.2, 0.2]])
    pts = np.array([[0.45, 0.2], [0.55, 0.0], [2.0, 0.0]])
    np.testing.assert_array_equal(points_in_boxes(pts, centers, sizes), [[True, False], [False, False],
                                                                         [False, True]])
    assert points_in_boxes(pts, centers, sizes, pad=0.1)[1, 0]


def test_point_box_distance_is_zero_inside_and_euclidean_outside() -> None:
    centers = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    sizes = np.array([[1.0, 1.0, 1.0], [0.2, 0.2, 0.2]])
    np.testing.assert_allclose(point_box_distance(np.array([0.1, 0.1, 0.1]), centers, sizes), [0.0, 0.8])
    np.testing.assert_allclose(point_box_distance(np.array([1.4, 0.4, 0.0]), centers, sizes),
                               [math.hypot(0.9, 0.0), math.hypot(0.3, 0.3)])
    # any leading shape of points: a (2, 2) batch gives (2, 2, M), each row as a single point would
    batch = np.array([[[0.1, 0.1, 0.1], [1.4, 0.4, 0.0]], [[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])
    got = point_box_distance(batch, centers, sizes)
    assert got.shape == (2, 2, 2)
    for i, j in np.ndindex(2, 2):
        np.testing.assert_allclose(got[i, j], point_box_distance(batch[i, j], centers, sizes))


def test_link_groups_chains_neighbours_transitively() -> None:
    # a row 0.25 m apart: ends 0.75 m apart, still one group; a far pair; a singleton
    pts = np.array([[0.0, 0, 0], [0.25, 0, 0], [0.5, 0, 0], [0.75, 0, 0], [5, 0, 0], [5.2, 0, 0], [9, 9, 0]])
    groups = link_groups(pts, 0.3)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3], [4, 5], [6]]


def test_link_groups_needs_strictly_closer_than_the_link_distance() -> None:
    assert [g.tolist() for g in link_groups(np.array([[0.0, 0.0], [0.3, 0.0]]), 0.3)] == [[0], [1]]
    assert link_groups(np.zeros((0, 3)), 0.3) == []


def test_swept_body_measures_each_part_only_where_asked_and_takes_the_nearest() -> None:
    poses = unicycle_poses((0.0, 0.0, 0.0), 1.0, 0.0, np.array([0.0, 0.5]))
    body = SweptBody(poses, Footprint(0.2), (0.0, 0.0), 0.5, 0.0, 0.2, 0.05, 0.05)  # arm along -y to y=-0.7
    pts = np.array([[0.6, 0.1], [0.0, -0.6], [5.0, 5.0]])  # by the base's path / on the gripper / far away
    in_fp, in_arm = body.near(pts, 0.1, 0.0)
    np.testing.assert_array_equal(in_fp, [True, False, False])
    np.testing.assert_array_equal(in_arm, [False, True, False])
    fp, whole = body.clearance(pts, in_fp, in_arm)
    np.testing.assert_allclose(fp[:, 0], [math.hypot(0.6, 0.1) - 0.2, math.hypot(0.1, 0.1) - 0.2])
    np.testing.assert_array_equal(whole[:, 0], fp[:, 0])
    assert np.isinf(fp[:, 1:]).all() and np.isinf(whole[:, 2]).all()
    np.testing.assert_allclose(whole[0, 1], -0.05)  # on the gripper's axis: inside its 0.05 m radius
    no_base = SweptBody(poses, None, (0.0, 0.0), 0.5, 0.0, 0.2, 0.05, 0.05)
    assert not no_base.near(pts, 0.1, 0.1)[0].any()


def test_swept_body_adds_the_arms_vertical_gap_in_quadrature_and_only_for_the_arm() -> None:
    poses = unicycle_poses((0.0, 0.0, 0.0), 1.0, 0.0, np.array([0.0, 0.5]))
    body = SweptBody(poses, Footprint(0.2), (0.0, 0.0), 0.5, 0.0, 0.2, 0.05, 0.05)  # arm along -y to y=-0.7
    pts = np.array([[0.6, 0.1], [0.15, -0.6], [0.0, -0.6]])  # by the base / 0.1 m off the gripper / on it
    in_fp, in_arm = np.array([True, False, False]), np.array([False, True, True])
    gap = np.array([[0.3, 0.0, 0.2], [0.3, 0.24, 0.2]])  # (P, N) metres between the arm's band and each object
    fp, whole = body.clearance(pts, in_fp, in_arm, gap)
    np.testing.assert_array_equal(whole[:, 0], fp[:, 0])  # the base stands on the floor: no gap for it
    # the second pose stands 0.5 m further along x
    np.testing.assert_allclose(whole[:, 1], [0.1, math.hypot(0.3, 0.24)])
    # overlapping in the plane (first pose), the gap alone separates them
    np.testing.assert_allclose(whole[:, 2], [0.2, math.hypot(0.45, 0.2)])

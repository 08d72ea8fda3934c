"""MJCF of our Stretch-class robot, written from the real robot's dimensions (no downloaded assets).

The base is a planar x/y/yaw joint set driven by velocity actuators from the commanded twist: kinematic
enough to follow odometry exactly in free space, yet stopped (and pushing things) through contacts. The
lift, telescoping arm (towards -y, as Stretch's), wrist yaw, gripper fingers and head pan/tilt are
position-controlled. Robot geoms sit in their own collision class: no self-collision, no floor contact.
"""

from __future__ import annotations

import math

from sim_bridge.mujoco import stretch_constants as C

__all__ = ["robot_actuators_xml", "robot_body_xml"]

_ROBOT_GEOM = (
    f'contype="{C.ROBOT_BIT}" conaffinity="{C.WORLD_BIT | C.ITEM_BIT}" group="{C.ROBOT_GROUP}" condim="3"'
)
_DARK = 'rgba="0.15 0.15 0.15 1"'
_GREY = 'rgba="0.6 0.6 0.62 1"'


def _limits(name: str) -> str:
    lo, hi = C.JOINT_LIMITS[name]
    return f'range="{lo:.6f} {hi:.6f}"'


def robot_body_xml() -> str:
    """The robot's kinematic tree, rooted at base_link on the world's floor."""
    bx, by, bz = C.BASE_HALF
    mx, my = C.MAST_XY
    half_mast = C.MAST_HEIGHT / 2
    arm_half = C.ARM_LENGTH_RETRACTED / 4
    finger_hi = C.JOINT_LIMITS["gripper_aperture"][1] / 2
    tilt = math.radians(65.0)  # down-outwards: sees under the fingers and the floor beside the robot
    return f"""
    <body name="{C.BASE_BODY}" pos="0 0 0" sleep="never">
      <joint name="{C.BASE_X_JOINT}" type="slide" axis="1 0 0"/>
      <joint name="{C.BASE_Y_JOINT}" type="slide" axis="0 1 0"/>
      <joint name="{C.BASE_YAW_JOINT}" type="hinge" axis="0 0 1"/>
      <geom name="base" type="box" size="{bx} {by} {bz}" pos="0 0 {C.BASE_TOP - bz}" mass="20"
            {_DARK} {_ROBOT_GEOM}/>
      <site name="{C.LIDAR_SITE}" pos="0 0 {C.LIDAR_HEIGHT}" size="0.03"/>
      <geom name="mast" type="box" size="0.03 0.03 {half_mast}" pos="{mx} {my} {C.BASE_TOP + half_mast}"
            mass="2" {_GREY} {_ROBOT_GEOM}/>
      <body name="head" pos="{mx} {my} {C.HEAD_Z}">
        <joint name="joint_head_pan" axis="0 0 1" {_limits("joint_head_pan")} armature="0.05"/>
        <geom type="box" size="0.03 0.06 0.03" mass="0.3" {_DARK} {_ROBOT_GEOM}/>
        <body name="head_tilt" pos="0.04 0 0">
          <joint name="joint_head_tilt" axis="0 -1 0" {_limits("joint_head_tilt")} armature="0.05"/>
          <geom type="box" size="0.015 0.05 0.015" mass="0.2" {_DARK} {_ROBOT_GEOM}/>
          <camera name="{C.NAV_CAMERA}" pos="0.02 0 0" xyaxes="0 -1 0 0 0 1" fovy="{C.CAMERA_FOVY_DEG}"/>
        </body>
      </body>
      <body name="{C.LIFT_BODY}" pos="{mx} {my} {C.LIFT_ZERO_Z}" gravcomp="1">
        <joint name="joint_lift" type="slide" axis="0 0 1" {_limits("joint_lift")} armature="1"/>
        <geom type="box" size="0.05 0.05 0.04" mass="0.8" {_GREY} {_ROBOT_GEOM}/>
        <geom type="box" size="0.03 {arm_half} 0.02" pos="0 {-arm_half} 0" mass="0.3" {_DARK} {_ROBOT_GEOM}/>
        <body name="{C.ARM_BODY}" pos="0 {-2 * arm_half} 0" gravcomp="1">
          <joint name="wrist_extension" type="slide" axis="0 -1 0" {_limits("wrist_extension")}
                 armature="0.5"/>
          <geom type="box" size="0.025 {arm_half} 0.018" pos="0 {-arm_half} 0" mass="0.3"
                {_GREY} {_ROBOT_GEOM}/>
          <body name="{C.WRIST_BODY}" pos="0 {-2 * arm_half} 0" gravcomp="1">
            <joint name="joint_wrist_yaw" axis="0 0 1" {_limits("joint_wrist_yaw")} armature="0.01"/>
            <geom type="cylinder" size="0.02 0.02" mass="0.05" {_DARK} {_ROBOT_GEOM}/>
            <body name="{C.GRIPPER_BODY}" pos="0 {-C.GRASP_OFFSET} -0.02" gravcomp="1">
              <geom type="box" size="0.03 0.02 0.04" pos="0 0 -0.04" mass="0.1" {_DARK} {_ROBOT_GEOM}/>
              <camera name="{C.MANIP_CAMERA}" pos="0 0.03 0" fovy="{C.CAMERA_FOVY_DEG}"
                      xyaxes="-1 0 0 0 {-math.sin(tilt):.6f} {math.cos(tilt):.6f}"/>
              <site name="{C.GRASP_SITE}" pos="0 0 {-(C.GRASP_DROP - 0.02):.3f}" size="0.01"/>
              <body name="finger_left" pos="0 0 -0.08" gravcomp="1">
                <joint name="{C.LEFT_FINGER_JOINT}" type="slide" axis="1 0 0" range="0 {finger_hi}"
                       armature="0.5"/>
                <geom type="box" size="0.006 0.012 0.045" pos="0.006 0 -0.045" mass="0.02"
                      {_GREY} {_ROBOT_GEOM}/>
              </body>
              <body name="finger_right" pos="0 0 -0.08" gravcomp="1">
                <joint name="{C.RIGHT_FINGER_JOINT}" type="slide" axis="-1 0 0" range="0 {finger_hi}"
                       armature="0.5"/>
                <geom type="box" size="0.006 0.012 0.045" pos="-0.006 0 -0.045" mass="0.02"
                      {_GREY} {_ROBOT_GEOM}/>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>"""


def robot_actuators_xml() -> str:
    """Velocity actuators for the planar base, position actuators (with damping) for every other joint."""
    lines = [
        f'<velocity name="{C.BASE_X_ACT}" joint="{C.BASE_X_JOINT}" kv="3000" forcerange="-300 300"/>',
        f'<velocity name="{C.BASE_Y_ACT}" joint="{C.BASE_Y_JOINT}" kv="3000" forcerange="-300 300"/>',
        f'<velocity name="{C.BASE_YAW_ACT}" joint="{C.BASE_YAW_JOINT}" kv="60" forcerange="-60 60"/>',
    ]
    gains = {
        "joint_lift": (2000, 150, 150),
        "wrist_extension": (1000, 80, 80),
        "joint_wrist_yaw": (2, 0.3, 5),
        "joint_head_pan": (5, 1, 5),
        "joint_head_tilt": (5, 1, 5),
        C.LEFT_FINGER_JOINT: (200, 20, 20),
        C.RIGHT_FINGER_JOINT: (200, 20, 20),
    }
    for joint, (kp, kv, fmax) in gains.items():
        lines.append(
            f'<position name="{joint}" joint="{joint}" kp="{kp}" kv="{kv}" forcerange="{-fmax} {fmax}"/>'
        )
    return "\n    ".join(lines)

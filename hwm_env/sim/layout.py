"""The 25-d state/action layout of HWM-Sim-v0, in the order of the 1X state vector.

Indices 0-20 are joint positions (radians), 21-22 hand closures (0 open, 1 closed),
23-24 base forward velocity (m/s) and yaw rate (rad/s). The action vector uses the same
order, each entry scaled to [-1, 1]. Pure Python so that the CLI can read it without
importing MuJoCo.
"""
from __future__ import annotations

JOINT_NAMES = (
    "HIP_YAW",
    "HIP_ROLL",
    "HIP_PITCH",
    "KNEE_PITCH",
    "ANKLE_ROLL",
    "ANKLE_PITCH",
    "LEFT_SHOULDER_PITCH",
    "LEFT_SHOULDER_ROLL",
    "LEFT_SHOULDER_YAW",
    "LEFT_ELBOW_PITCH",
    "LEFT_ELBOW_YAW",
    "LEFT_WRIST_PITCH",
    "LEFT_WRIST_ROLL",
    "RIGHT_SHOULDER_PITCH",
    "RIGHT_SHOULDER_ROLL",
    "RIGHT_SHOULDER_YAW",
    "RIGHT_ELBOW_PITCH",
    "RIGHT_ELBOW_YAW",
    "RIGHT_WRIST_PITCH",
    "RIGHT_WRIST_ROLL",
    "NECK_PITCH",
)
HAND_NAMES = ("LEFT_HAND_CLOSURE", "RIGHT_HAND_CLOSURE")
BASE_NAMES = ("LINEAR_VELOCITY", "ANGULAR_VELOCITY")
STATE_NAMES = JOINT_NAMES + HAND_NAMES + BASE_NAMES
ACTION_NAMES = STATE_NAMES
STATE_DIM = ACTION_DIM = len(STATE_NAMES)  # 25

NUM_JOINTS = len(JOINT_NAMES)  # 21
HAND_SLICE = slice(NUM_JOINTS, NUM_JOINTS + 2)  # 21:23
BASE_SLICE = slice(NUM_JOINTS + 2, NUM_JOINTS + 4)  # 23:25
LEG_INDICES = tuple(range(0, 6))
LEFT_ARM_INDICES = tuple(range(6, 13))
RIGHT_ARM_INDICES = tuple(range(13, 20))
NECK_INDEX = 20
LEFT_HAND_INDEX, RIGHT_HAND_INDEX = 21, 22
LINEAR_VELOCITY_INDEX, ANGULAR_VELOCITY_INDEX = 23, 24
# Hand closure is a 0/1 quantity: world models should not z-score it (hwm-v1 `binary_action_dims`).
BINARY_DIMS = (LEFT_HAND_INDEX, RIGHT_HAND_INDEX)

MAX_LINEAR_SPEED = 0.5  # m/s at action +-1
MAX_ANGULAR_SPEED = 1.0  # rad/s at action +-1
FINGER_TRAVEL = 0.03  # m each finger moves from open (closure 0) to closed (closure 1)

# Joint-space "ready" pose: arms forward with the hands above the table, head looking down at it.
READY_POSE = {
    "LEFT_SHOULDER_PITCH": -0.5,
    "RIGHT_SHOULDER_PITCH": -0.5,
    "LEFT_ELBOW_PITCH": -0.8,
    "RIGHT_ELBOW_PITCH": -0.8,
    "NECK_PITCH": 0.3,
}

"""Import MuJoCo and open its offscreen renderer, or fail once with what to install.

MuJoCo picks its OpenGL backend from `MUJOCO_GL` at import time (`hwm_env` sets `egl`
when unset). A machine without the EGL/OSMesa libraries fails deep inside PyOpenGL with
messages like "'NoneType' object has no attribute 'glGetError'"; this module turns
every such failure into one `RenderingUnavailableError` that says what to install.
"""
from __future__ import annotations

import os
import sys


class RenderingUnavailableError(RuntimeError):
    """MuJoCo cannot render offscreen with the current `MUJOCO_GL` backend."""


# Mesa's EGL cannot make a context in a process forked from one that had initialised EGL:
# the child blocks on a futex for ever (closing the parent's renderer does not help). A child
# that would hang raises instead. `HWMSimEnv` makes its renderer lazily, so Gymnasium's
# AsyncVectorEnv (which builds a throwaway env in the parent, then forks) is not affected.
_forked_after_egl = False


def _note_fork_after_egl() -> None:
    global _forked_after_egl
    egl = sys.modules.get("mujoco.egl")
    _forked_after_egl = _forked_after_egl or getattr(egl, "EGL_DISPLAY", None) is not None


os.register_at_fork(after_in_child=_note_fork_after_egl)

FORKED_AFTER_EGL_HELP = (
    "this process was forked from one that had already rendered with EGL, and EGL cannot render in "
    "such a child (it would hang). Create vector envs before rendering anything in the parent, or "
    "start the workers with spawn: gymnasium.vector.AsyncVectorEnv(env_fns, context='spawn') or "
    "gym.make_vec(..., vectorization_mode='async', vector_kwargs={'context': 'spawn'})."
)


def _help(error: BaseException) -> str:
    backend = os.environ.get("MUJOCO_GL", "<unset>")
    return (
        f"MuJoCo cannot render offscreen with MUJOCO_GL={backend!r} "
        f"({type(error).__name__}: {error}). HWM-Sim-v0 renders headless through EGL: "
        "install the EGL runtime (Debian/Ubuntu: `apt-get install libegl1 libgl1`; NVIDIA "
        "drivers ship their own) and use MUJOCO_GL=egl (the default), or install OSMesa "
        "(`apt-get install libosmesa6`) and set MUJOCO_GL=osmesa and PYOPENGL_PLATFORM=osmesa "
        "(slower); on a desktop with a display, MUJOCO_GL=glfw also works."
    )


def import_mujoco():
    """`import mujoco`, turning a broken GL backend into RenderingUnavailableError."""
    try:
        import mujoco
    except ModuleNotFoundError as error:
        if error.name == "mujoco":
            raise ModuleNotFoundError("HWM-Sim-v0 needs MuJoCo: pip install 'mujoco>=3.1'", name="mujoco") from error
        raise RenderingUnavailableError(_help(error)) from error
    except (ImportError, RuntimeError, AttributeError, OSError) as error:
        raise RenderingUnavailableError(_help(error)) from error
    return mujoco


def make_renderer(model, height: int, width: int):
    """A `mujoco.Renderer` with shadows and reflections off (they cost most of a CPU frame)."""
    if _forked_after_egl:
        raise RenderingUnavailableError(FORKED_AFTER_EGL_HELP)
    mujoco = import_mujoco()
    # The offscreen buffer defaults to 640x480; a buffer of the frame's size keeps llvmpipe fast.
    model.vis.global_.offwidth = width
    model.vis.global_.offheight = height
    try:
        renderer = mujoco.Renderer(model, height=height, width=width)
    except (mujoco.FatalError, ImportError, RuntimeError, AttributeError, OSError) as error:
        raise RenderingUnavailableError(_help(error)) from error
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
    return renderer

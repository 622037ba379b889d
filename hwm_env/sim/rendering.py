"""Import MuJoCo and open its offscreen renderer, or fail once with what to install.

MuJoCo picks its OpenGL backend from `MUJOCO_GL` at import time (`hwm_env` sets `egl`
when unset). A machine without the EGL/OSMesa libraries fails deep inside PyOpenGL with
messages like "'NoneType' object has no attribute 'glGetError'"; this module turns
every such failure into one `RenderingUnavailableError` that says what to install.
"""
from __future__ import annotations

import os


class RenderingUnavailableError(RuntimeError):
    """MuJoCo cannot render offscreen with the current `MUJOCO_GL` backend."""


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

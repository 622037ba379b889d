"""`hwm demo` with tiny checkpoints: writes the side-by-side GIF and prints PSNR per step and steps/s."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from env_fixtures import build_flow_checkpoint, build_masked_checkpoint
from hwm_env.cli import main


@pytest.mark.parametrize("family", ["flow", "masked"])
def test_demo_writes_side_by_side_gif(tmp_path, capsys, family):
    build = build_flow_checkpoint if family == "flow" else build_masked_checkpoint
    checkpoint = build(tmp_path / f"{family}-tiny")
    out = tmp_path / "demo" / "demo.gif"
    code = main(["demo", "--model", family, "--checkpoint", str(checkpoint), "--steps", "3", "--out", str(out),
                 "--seed", "1", "--scale", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("PSNR") >= 3 and "steps/s" in printed and str(out) in printed
    with Image.open(out) as gif:
        assert gif.n_frames == 4  # the context frame + 3 steps
        assert gif.size == (2 * 64 * 2 + 4, 64 * 2 + 14)  # model | simulator, upscaled, caption bar
    assert not list(out.parent.glob(".*tmp*"))  # written atomically


def test_demo_starts_model_and_simulator_from_the_same_frame(tmp_path):
    checkpoint = build_flow_checkpoint(tmp_path / "flow-tiny")
    out = tmp_path / "demo.gif"
    assert main(["demo", "--checkpoint", str(checkpoint), "--steps", "1", "--out", str(out), "--scale", "1"]) == 0
    with Image.open(out) as gif:
        first = np.asarray(gif.convert("RGB"))
    model_panel, sim_panel = first[14:, :64], first[14:, 68:]
    np.testing.assert_array_equal(model_panel, sim_panel)


def test_demo_bad_arguments_exit_with_clear_error(tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "x.gif")]) == 2
    assert "hwm: error:" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "x.mp4")]) == 2
    assert ".gif" in capsys.readouterr().err
    assert main(["demo", "--steps", "0"]) == 2


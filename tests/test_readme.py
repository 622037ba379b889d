"""The README is the manual: its Python snippets run as written, and its results files exist.

Each ```python block runs in a fresh interpreter in an empty folder (the shipped checkpoints,
no network). `benchmarks/results/` holds exactly the files behind the README's tables.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_snippets_and_the_two_setup_commands():
    assert len(SNIPPETS) >= 4
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        assert re.search(re.escape(marker) + r"\n```bash\n.+\n```", README), marker


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_python_snippet_runs_as_written(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=tmp_path, capture_output=True, text=True,
                            timeout=280)
    assert result.returncode == 0, f"README snippet {index} failed:\n{SNIPPETS[index]}\n{result.stderr[-3000:]}"


def test_results_folder_holds_exactly_the_files_the_readme_names():
    named = set()
    for path in re.findall(r"benchmarks/results/([\w.-]+)", README):
        if "_T." in path:  # a pattern: planning_T.json names one file per task
            named |= {p.name for p in (REPO / "benchmarks/results").glob(path.replace("_T.", "_*."))}
        else:
            named.add(path)
    # a named table's JSON travels with it, and the other way round
    named |= {name.rsplit(".", 1)[0] + ext for name in named for ext in (".json", ".md")}
    present = {p.name for p in (REPO / "benchmarks/results").iterdir()}
    assert present <= named, f"results no README table uses: {sorted(present - named)}"
    missing = {name for name in named if name.endswith(".json")} - present
    assert not missing, f"README names results that do not exist: {sorted(missing)}"

"""An invalid routing rules file stops start-up with a message naming the rule and field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = """\
version: 1
rules:
  - name: forward-ct
    match:
      headers:
        BodyPartExamined: {regex: "(unclosed"}
    actions:
      - forward: {dicom_ae: SOMEWHERE}
"""


@pytest.mark.parametrize("command", ["up", "dispatcher"])
def test_invalid_rules_stop_start_up(tmp_path: Path, command: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(BROKEN)
    env = {**os.environ, "PACSFLOW_HOME": str(tmp_path / "home"), "PACSFLOW_ROUTING": str(rules)}
    done = subprocess.run(
        [sys.executable, "-m", "pacsflow", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"routing rules {rules}" in done.stderr
    assert 'rule "forward-ct"' in done.stderr
    assert "match.headers.BodyPartExamined.regex" in done.stderr
    assert not (tmp_path / "home" / "airflow").exists(), "nothing should have started"

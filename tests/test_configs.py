"""Every shipped config in configs/ validates, and names a real dataset, model and method."""

from __future__ import annotations

from pathlib import Path

import pytest

from earlyreadout.config import build_config, read_yaml
from earlyreadout.errors import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert len(CONFIGS) >= 7


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path):
    raw = read_yaml(path)
    cfg = build_config(raw)  # data.root is checked when the data is loaded, not here
    assert cfg.data.name not in ("colored-digits", "dominoes", "spurious-text")
    header = path.read_text().splitlines()[:12]
    assert any(f"earlyreadout train -c configs/{path.name}" in line for line in header), "launch command missing"


def test_a_broken_config_is_caught(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: {name: dedier, alpha: -1}\ndata: {name: waterbirds, image_sise: 224}\n")
    with pytest.raises(ConfigError, match=r"alpha.*image_sise.*did you mean 'image_size'"):
        build_config(read_yaml(bad))

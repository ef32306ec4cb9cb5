"""Engine test fixtures: a tiny synthetic experiment config written to disk."""
import pytest
import yaml
from engine_config import tiny_config


@pytest.fixture()
def write_config(tmp_path):
    def write(name="exp.yaml", **sections):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_config(**sections)))
        return str(path)
    return write

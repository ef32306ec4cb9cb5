"""Deploy test fixtures: a finished run directory per model (tests/finished_run.py)."""
import pytest
from finished_run import write_finished_run


@pytest.fixture()
def finished_run(tmp_path):
    def make(model_name="deeplabv3_tiny", class_names=("road", "car", "sky"), normalize="imagenet_rgb", options=None):
        return write_finished_run(tmp_path / model_name, model_name, list(class_names), normalize, options)
    return make

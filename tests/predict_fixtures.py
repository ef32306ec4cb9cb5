"""hmkd predict's fixtures, shared by tests/predict/ and tests/cli/test_predict.py (a conftest reaches only its own
folder): import them by name into the test module or conftest that uses them."""
import predict_files
import pytest


@pytest.fixture()
def run_dir(tmp_path):
    """make(name="deeplabv3_tiny", class_names=CLASSES) -> (RunDir, model): a finished run, classifier sharpened."""
    def make(name="deeplabv3_tiny", class_names=predict_files.CLASSES):
        return predict_files.finished_student(tmp_path / ("run_%s_%d" % (name, len(class_names))), name, class_names)
    return make


@pytest.fixture()
def image_folder(tmp_path):
    return predict_files.image_folder(tmp_path / "images")


@pytest.fixture()
def video_file(tmp_path):
    return predict_files.video_file(tmp_path / "clip.mp4")

"""hmkd predict fixtures: a finished run, a folder of PNG and JPEG images of mixed sizes (colour and greyscale) and
an mp4, written with OpenCV under tmp_path (tests/predict_files.py; tests/cli/test_predict.py has the same)."""
import pytest
import predict_files


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

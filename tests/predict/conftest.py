"""hmkd predict fixtures: a finished run, a folder of PNG and JPEG images of mixed sizes (colour and greyscale) and
an mp4, written with OpenCV under tmp_path (tests/predict_fixtures.py, shared with tests/cli/test_predict.py)."""
from predict_fixtures import image_folder, run_dir, video_file  # noqa: F401 (fixtures)

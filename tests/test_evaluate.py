"""python -m tfsr.evaluate: published bicubic baselines, data layouts, output, errors."""

import json
import os
import shutil

import numpy as np
import pytest

from tests.cli import run_python
from tfsr import evaluation, metrics
from tfsr.data import imresize, io, modcrop, scale_name, to_uint8
from tfsr.inference import BicubicUpscaler, Upscaler

# Published bicubic PSNR / SSIM (Y, border = scale) of the SR literature (SRCNN, VDSR tables).
_PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}


# Ours, as the README's bicubic table gives them (PSNR to 3 decimals).
_README = {
    ("Set5", 2): 33.667,
    ("Set5", 3): 30.397,
    ("Set5", 4): 28.426,
    ("Set14", 2): 30.221,
    ("Set14", 3): 27.531,
    ("Set14", 4): 25.991,
}


@pytest.mark.parametrize("dataset, scale", sorted(_PUBLISHED))
def test_reproduces_published_bicubic_baselines(shared_data, dataset, scale):
    result = evaluation.evaluate(
        BicubicUpscaler(scale), os.path.join(shared_data, "val", dataset), scale
    )
    psnr, ssim = _PUBLISHED[(dataset, scale)]
    assert result["lr_source"] == "files"
    assert result["images"] == (5 if dataset == "Set5" else 14)
    assert result["psnr"] == pytest.approx(psnr, abs=0.03)
    assert result["ssim"] == pytest.approx(ssim, abs=0.001)
    assert result["psnr"] == pytest.approx(_README[(dataset, scale)], abs=0.0005)


@pytest.fixture()
def hr_only(shared_data, tmp_path):
    """A plain folder with two Set5 HR images (no LR files)."""
    for name in ("bird", "butterfly"):
        shutil.copy(os.path.join(shared_data, "val", "Set5", "HR", f"{name}.png"), tmp_path)
    return str(tmp_path)


def test_hr_only_folder_makes_lr_like_the_files(shared_data, hr_only):
    made = evaluation.evaluate(BicubicUpscaler(3), hr_only, 3)
    given = evaluation.evaluate(BicubicUpscaler(3), os.path.join(shared_data, "val", "Set5"), 3)
    assert made["lr_source"] == "bicubic" and made["images"] == 2
    by_name = {r["name"]: r for r in given["per_image"]}
    for r in made["per_image"]:  # the LR files are bit-exact MATLAB bicubic: same numbers
        assert r["psnr"] == by_name[r["name"]]["psnr"]
        assert r["ssim"] == by_name[r["name"]]["ssim"]
    # An HR/ folder given directly is named after its parent.
    set5_hr = os.path.join(shared_data, "val", "Set5", "HR")
    assert evaluation.evaluate(BicubicUpscaler(2), set5_hr, 2)["dataset"] == "Set5"


class _RgbBicubic(Upscaler):
    """An 'RGB model': bicubic on all three channels."""

    channels = 3

    def _predict(self, image):
        return imresize(image, self.scale_pair)


def test_rgb_models_are_measured_on_y_of_their_rgb_output(shared_data, hr_only):
    result = evaluation.evaluate(_RgbBicubic(2, "rgb"), hr_only, 2, crop_border=5)
    assert result["crop_border"] == 5
    hr = modcrop(io.read_image(os.path.join(hr_only, "bird.png")), 2)
    lr = imresize(hr, 1 / 2)
    sr = to_uint8(np.clip(imresize(lr / 255.0, 2), 0, 1) * 255.0)
    assert result["per_image"][0]["name"] == "bird"
    assert result["per_image"][0]["psnr"] == pytest.approx(metrics.psnr(sr, hr, 5), abs=1e-9)
    assert result["per_image"][0]["ssim"] == pytest.approx(metrics.ssim(sr, hr, 5), abs=1e-9)


def test_rgb_models_are_measured_on_grey_images_like_y_models(shared_data, tmp_path):
    shutil.copy(os.path.join(shared_data, "val", "Set14", "HR", "bridge.png"), tmp_path)
    rgb = evaluation.evaluate(_RgbBicubic(2, "rgb"), str(tmp_path), 2)
    y = evaluation.evaluate(BicubicUpscaler(2), str(tmp_path), 2)
    # The same bicubic values either way: the same figures, not 1.3 dB apart.
    assert rgb["psnr"] == pytest.approx(y["psnr"], abs=1e-9)
    assert rgb["ssim"] == pytest.approx(y["ssim"], abs=1e-9)


def test_grey_files_stay_single_channel(shared_data):
    grey = evaluation.read_eval_image(os.path.join(shared_data, "val", "Set14", "HR", "bridge.png"))
    colour = evaluation.read_eval_image(os.path.join(shared_data, "val", "Set14", "HR", "man.png"))
    assert grey.shape == (512, 512) and grey.dtype == np.uint8
    assert colour.shape == (512, 512, 3)  # stored as RGB (with R = G = B): measured as colour


def test_errors(shared_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="data folder '.*nowhere' does not exist"):
        evaluation.evaluate(BicubicUpscaler(2), str(tmp_path / "nowhere"), 2)
    with pytest.raises(ValueError, match="no image files"):
        evaluation.evaluate(BicubicUpscaler(2), str(tmp_path), 2)
    data = tmp_path / "Set"
    (data / "LR_bicubic" / "X2").mkdir(parents=True)
    shutil.copytree(os.path.join(shared_data, "val", "Set5", "HR"), data / "HR")
    with pytest.raises(FileNotFoundError, match=r"LR file '.*X2/babyx2.png' for '.*baby.png'"):
        evaluation.evaluate(BicubicUpscaler(2), str(data), 2)
    with pytest.raises(ValueError, match="SR output is .* but HR .* is"):
        evaluation.evaluate(BicubicUpscaler(3), os.path.join(shared_data, "val", "Set5"), 2)
    mixed = tmp_path / "Mixed"
    (mixed / "HR").mkdir(parents=True)
    (mixed / "LR_bicubic" / "X2").mkdir(parents=True)
    shutil.copy(os.path.join(shared_data, "val", "Set5", "HR", "bird.png"), mixed / "HR")
    lr = io.read_image(os.path.join(shared_data, "val", "Set5", "LR_bicubic", "X2", "birdx2.png"))
    io.write_image(str(mixed / "LR_bicubic" / "X2" / "birdx2.png"), lr[..., 0])  # grey LR
    with pytest.raises(ValueError, match=r"bird: the LR file .*birdx2.png' is grey but the HR"):
        evaluation.evaluate(BicubicUpscaler(2), str(mixed), 2)


def _run_cli(*args):
    """Runs ``python -m tfsr.evaluate ARGS`` as a user would."""
    return run_python("-m", "tfsr.evaluate", *args)


def test_main_prints_table_and_json(hr_only, shared_data):
    set5 = os.path.join(shared_data, "val", "Set5")
    proc = _run_cli("--model=bicubic", f"--data={hr_only},{set5}", "--scale=4", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(f"{os.path.basename(hr_only)} x4 (bicubic, LR: bicubic, crop 4)")
    assert any(line.split()[0] == "butterfly" for line in lines)
    results = json.loads(lines[-1])
    assert [r["dataset"] for r in results] == [os.path.basename(hr_only), "Set5"]
    assert {"model", "dataset", "scale", "psnr", "ssim", "images"} <= set(results[1])
    assert results[1]["images"] == 5 and results[1]["scale"] == 4.0
    assert results[1]["psnr"] == pytest.approx(28.42, abs=0.03)
    mean_line = [line for line in lines if line.strip().startswith("mean")][-1]
    assert float(mean_line.split()[1]) == pytest.approx(results[1]["psnr"], abs=5e-4)


def test_main_single_dataset_json_is_one_object(hr_only):
    proc = _run_cli(f"--data={hr_only}", "--scale=2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict) and result["images"] == 2
    expected = evaluation.evaluate(BicubicUpscaler(2), hr_only, 2)
    assert result["psnr"] == pytest.approx(expected["psnr"], abs=1e-9)
    assert result["ssim"] == pytest.approx(expected["ssim"], abs=1e-9)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--data=/no/such/folder", "--scale=2"],
            "tfsr.evaluate: data folder '/no/such/folder' does not exist",
        ),
        (["--model=nope", "--data=."], "tfsr.evaluate: unknown model 'nope'"),
        (["--data=."], "tfsr.evaluate: the scale of model bicubic is not known: give the scale"),
        ([], "tfsr.evaluate: --data is required"),
    ],
)
def test_main_user_errors_exit_with_one_line(args, message):
    proc = _run_cli(*args)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message)


def test_command_line_error_has_no_traceback(tmp_path):
    # One real process: what a user sees (sys.exit with a message: status 1, one stderr line).
    proc = run_python(
        "-m", "tfsr.evaluate", f"--data={tmp_path / 'missing'}", "--scale=2", timeout=120
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"tfsr.evaluate: data folder '{tmp_path / 'missing'}' does not exist"
    )


def test_anisotropic_scale_matches_a_hand_computation(shared_data, hr_only):
    scale = (2, 3)
    result = evaluation.evaluate(BicubicUpscaler(scale), hr_only, scale)
    assert result["scale"] == [2.0, 3.0] and result["crop_border"] == 3
    assert result["lr_source"] == "bicubic"
    for r in result["per_image"]:
        hr = modcrop(io.read_image(os.path.join(hr_only, f"{r['name']}.png")), scale)
        lr = imresize(hr, (1 / 2, 1 / 3))
        assert lr.shape[:2] == (hr.shape[0] // 2, hr.shape[1] // 3)
        y = metrics.y_channel(lr) / 255.0
        up = np.clip(imresize(y.astype(np.float32), scale), 0.0, 1.0).astype(np.float32)
        sr = to_uint8(up * 255.0)  # what the evaluator does: float32 model I/O, clip, round
        assert r["psnr"] == pytest.approx(metrics.psnr(sr, hr, 3), abs=1e-9)
    assert scale_name((2, 3)) == "2x3" and scale_name((2.5, 2.5)) == "2.5"
    # Benchmark LR files exist for equal scales only: an unequal pair makes LR from HR.
    set5 = evaluation.evaluate(
        BicubicUpscaler(scale), os.path.join(shared_data, "val", "Set5"), scale
    )
    assert set5["lr_source"] == "bicubic" and set5["images"] == 5

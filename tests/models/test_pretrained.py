"""Shipped pretrained models: every name loads, and each reproduces its README figures on Set5
and Set14."""

import os

import pytest

from tfsr import evaluation
from tfsr.inference import load_upscaler
from tfsr.models import pretrained, pretrained_entry, pretrained_names

# README "Shipped models" and Meta-SR tables, Set5 PSNR (dB) at the model's own scale (meta_sesr:
# at 2.5, LR made from HR as in benchmarks/meta_scales.py, and at x3 from the benchmark's files).
META_SET5 = {2.5: 34.877, 3: 33.109}
SET5_PSNR = {
    "sesr_m5_x2": 37.230,
    "sesr_xl_x2": 37.589,
    "sesr_xl_x4": 31.189,
    "sesr_m5_x4": 30.786,
    "sesr_m5_relu_x2": 37.178,
    "sesr_dysample_x2": 37.120,
    "sesr_dysample_x4": 30.883,
    "rclut_x4": 30.023,
}
# README "Shipped models" and LUT tables, Set14 PSNR (dB).
SET14_PSNR = {
    "sesr_m5_x2": 32.723,
    "sesr_xl_x2": 33.003,
    "sesr_xl_x4": 27.900,
    "sesr_m5_x4": 27.696,
    "sesr_m5_relu_x2": 32.720,
    "sesr_dysample_x2": 32.648,
    "sesr_dysample_x4": 27.728,
    "rclut_x4": 27.089,
}


def test_shipped_names_include_the_readme_table():
    names = pretrained_names()
    assert set(SET5_PSNR) <= set(names)
    assert "meta_sesr" in names


def test_meta_sesr_outside_its_training_scales_warns():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_upscaler("meta_sesr", (1.1, 4.0))  # the range's ends: no warning
    for scale in (5, 1.05, (2, 4.5)):
        with pytest.warns(UserWarning, match="trained on scales 1.1 to 4; at .* expect lower"):
            load_upscaler("meta_sesr", scale)


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="shipped names: .*sesr_dysample_x2"):
        pretrained_entry("sesr_m4_x2")


@pytest.mark.parametrize("name", sorted(SET5_PSNR))
def test_shipped_model_reproduces_readme_psnr(shared_data, name):
    model = pretrained(name)
    assert not any("CollapsibleLinearBlock" in type(layer).__name__ for layer in model.layers)
    scale = pretrained_entry(name).scale
    upscaler = load_upscaler(name)
    for dataset, table in (("Set5", SET5_PSNR), ("Set14", SET14_PSNR)):
        result = evaluation.evaluate(upscaler, os.path.join(shared_data, "val", dataset), scale)
        assert result["psnr"] == pytest.approx(table[name], abs=0.002), dataset


@pytest.mark.parametrize("scale", sorted(META_SET5))
def test_shipped_meta_sesr_reproduces_readme_psnr(shared_data, scale):
    set5 = os.path.join(shared_data, "val", "Set5")
    data = (
        set5
        if scale == int(scale)
        else sorted(os.path.join(set5, "HR", f) for f in os.listdir(os.path.join(set5, "HR")))
    )
    result = evaluation.evaluate(load_upscaler("meta_sesr", scale), data, scale)
    assert result["psnr"] == pytest.approx(META_SET5[scale], abs=0.002)

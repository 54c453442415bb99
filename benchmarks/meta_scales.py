"""PSNR of an arbitrary-scale model against bicubic at every scale from 1.1 to 4.0 (step 0.1).

    python -m benchmarks.meta_scales [--model=meta_sesr] [--data=../shared/data/val/Set5]

Prints the table, writes ``benchmarks/results/meta_scales.json`` and draws the curve as
``docs/meta_sesr_scales.svg`` (plain SVG, no plotting library). The LR images are made from HR by
MATLAB-exact bicubic downscaling at each scale (the benchmark folders hold x2, x3, x4 only).
"""

from __future__ import annotations

import argparse
import os

from benchmarks.common import line_chart_svg, machine_info, print_table, write_results

SCALES = tuple(round(1.0 + 0.1 * i, 1) for i in range(1, 31))
SVG_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "meta_sesr_scales.svg")


def sweep(model: str, data: str, scales=SCALES) -> list[dict]:
    """``[{scale, model_psnr, bicubic_psnr, gain_db}]`` on ``data`` (HR images, LR made per scale)."""
    from tfsr.data.sources import source_from_spec
    from tfsr.evaluation import evaluate
    from tfsr.inference import BicubicUpscaler, load_upscaler

    hr_dir = os.path.join(data, "HR") if os.path.isdir(os.path.join(data, "HR")) else data
    files = list(source_from_spec(hr_dir).paths)
    rows = []
    for scale in scales:
        ours = evaluate(load_upscaler(model, scale), files, scale)["psnr"]
        bicubic = evaluate(BicubicUpscaler(scale), files, scale)["psnr"]
        rows.append(
            {
                "scale": scale,
                "model_psnr": round(ours, 3),
                "bicubic_psnr": round(bicubic, 3),
                "gain_db": round(ours - bicubic, 3),
            }
        )
        print(f"x{scale}: {ours:.3f} dB vs bicubic {bicubic:.3f}", flush=True)
    return rows


def svg(rows: list[dict], title: str) -> str:
    """A line chart of PSNR vs scale (model and bicubic) as an SVG document."""
    ys = [r["model_psnr"] for r in rows] + [r["bicubic_psnr"] for r in rows]
    y_lo, y_hi = int(min(ys)) - 1, int(max(ys)) + 1
    series = {
        name: [(r["scale"], r[key]) for r in rows]
        for name, key in (("model", "model_psnr"), ("bicubic", "bicubic_psnr"))
    }
    return line_chart_svg(
        series,
        title,
        y_range=(y_lo, y_hi),
        y_ticks=[(y, str(y)) for y in range(y_lo, y_hi + 1, 2)],
        x_ticks=[(x, f"x{x:g}") for x in (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)],
        y_label="PSNR (dB, Y)",
        legend="right",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="meta_sesr", help="shipped name or .keras path")
    parser.add_argument("--data", default="../shared/data/val/Set5", help="benchmark folder")
    args = parser.parse_args()
    rows = sweep(args.model, args.data)
    print_table(rows, ["scale", "model_psnr", "bicubic_psnr", "gain_db"])
    dataset = os.path.basename(os.path.normpath(args.data))
    summary = {
        "model": args.model,
        "dataset": dataset,
        "min_gain_db": min(r["gain_db"] for r in rows),
        "above_bicubic_everywhere": all(r["gain_db"] > 0 for r in rows),
        "machine": machine_info(),
    }
    write_results("meta_scales", summary, rows)
    with open(SVG_PATH, "w") as f:
        f.write(svg(rows, f"{args.model} on {dataset}: PSNR vs scale"))
    print(f"wrote {SVG_PATH}")


if __name__ == "__main__":
    main()

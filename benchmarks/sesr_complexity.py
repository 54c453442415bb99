"""MACs and parameters of every SESR variant, expanded vs collapsed, next to the paper's figures.

Question: what does each SESR variant cost at 360p -> 720p (x2, 640x360 input), in its expanded
(training) form and its collapsed (inference) form, and do our counts agree with the paper? The
expanded form is the paper's (p = 64 for M11 and XL; tfsr trains every variant at p = 256).

The paper counts convolution kernel weights only (no biases, no PReLU slopes), and MACs as kernel
weights times LR pixels; the columns ``kernel_params`` and ``G_MACs_conv`` follow that convention,
``params`` and ``G_MACs`` count everything (see ``tfsr.models.complexity``). The paper's MAC figures
were not available to us, so only its parameter counts are shown.

A second table gives the forward cost of one training batch (M5, 32 x 64 x 64) in the expanded
form and in the collapsed-training form, next to the authors' figures (41.77 G vs 1.84 G). Their
1.84 G includes collapsing the blocks by running each expanded block on ``C_in k^2`` delta images
(``C_in k^2 (k^2 C_in p + p C_out)`` MACs per block, 71.1 M for M5 x2); ours counts the
convolutions only (collapsing by a kernel product costs about 3.5 M MACs).

Run: ``python -m benchmarks.sesr_complexity`` (a few seconds; no timing involved).
"""

from __future__ import annotations

import tf_keras as keras

from benchmarks.common import print_table, write_results
from tfsr.models.complexity import count_macs_and_params
from tfsr.models.sesr import SESR_CONFIGS, collapse_model, sesr_model

INPUT_SHAPE = (1, 360, 640, 1)  # 360p LR -> 720p HR at x2
TRAIN_SHAPE = (32, 64, 64, 1)
# Collapsed x2 parameter counts from the paper (kernel weights only), from REFERENCE.md.
PAPER_PARAMS = {"m3": 8_900, "m5": 13_500, "m7": 18_100, "m11": 27_300, "xl": 105_000}
# Authors' README: forward MACs of SESR-M5 on one batch of 32 x 64 x 64.
PAPER_TRAIN_GMACS = {"expanded": 41.77, "collapsed_training": 1.84}


def _kernel_params(model: keras.Model) -> int:
    return sum(
        int(layer.kernel.shape.num_elements())
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    )


def variant_rows() -> list[dict]:
    rows = []
    for variant in SESR_CONFIGS:
        paper_p = SESR_CONFIGS[variant]["expanded_filters"]  # the paper's expanded form
        expanded_model = sesr_model(
            variant, scale=2, expanded_filters=paper_p, collapsed_training=False
        )
        collapsed_model = collapse_model(expanded_model)
        expanded = count_macs_and_params(expanded_model, INPUT_SHAPE)
        collapsed = count_macs_and_params(collapsed_model, INPUT_SHAPE)
        rows.append(
            {
                "variant": variant,
                "params_expanded": expanded.params,
                "params": collapsed.params,
                "kernel_params": _kernel_params(collapsed_model),
                "paper_params": PAPER_PARAMS[variant],
                "G_MACs_expanded": expanded.macs / 1e9,
                "G_MACs": collapsed.macs / 1e9,
                "G_MACs_conv": collapsed.macs_of("Conv2D") / 1e9,
                "paper_G_MACs": None,
                "expanded_over_collapsed": expanded.macs / collapsed.macs,
            }
        )
    return rows


def training_rows() -> list[dict]:
    rows = []
    for form, collapsed_training in (("expanded", False), ("collapsed_training", True)):
        model = sesr_model("m5", scale=2, collapsed_training=collapsed_training)
        c = count_macs_and_params(model, TRAIN_SHAPE)
        rows.append(
            {
                "form": form,
                "G_MACs": c.macs / 1e9,
                "G_MACs_blocks": c.macs_of("CollapsibleLinearBlock") / 1e9,
                "paper_G_MACs": PAPER_TRAIN_GMACS[form],
            }
        )
    return rows


def main() -> None:
    rows = variant_rows()
    print(f"SESR x2, input {INPUT_SHAPE[2]}x{INPUT_SHAPE[1]} (360p -> 720p)")
    print_table(
        rows,
        [
            "variant",
            "params_expanded",
            "params",
            "kernel_params",
            "paper_params",
            "G_MACs_expanded",
            "G_MACs",
            "G_MACs_conv",
            "paper_G_MACs",
            "expanded_over_collapsed",
        ],
    )
    train = training_rows()
    print(f"\nSESR-M5 x2, forward pass of one training batch {TRAIN_SHAPE}")
    print_table(train, ["form", "G_MACs", "G_MACs_blocks", "paper_G_MACs"])
    m5 = next(r for r in rows if r["variant"] == "m5")
    write_results(
        "sesr_complexity",
        {
            "input_shape": list(INPUT_SHAPE),
            "m5_collapsed_params": m5["params"],
            "m5_collapsed_gmacs": m5["G_MACs"],
            "training_batch_shape": list(TRAIN_SHAPE),
            "training_forward": train,
            "paper_macs_note": (
                "360p MAC figures of the paper not found in our sources (parameters only there); "
                "the training-batch figures are from the authors' README"
            ),
        },
        rows,
    )


if __name__ == "__main__":
    main()

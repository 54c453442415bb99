"""Models: builders for the SR networks and the shipped pretrained models."""

from tfsr.models.complexity import count_macs_and_params  # noqa: F401
from tfsr.models.meta_sesr import meta_sesr  # noqa: F401
from tfsr.models.pretrained import (  # noqa: F401
    pretrained,
    pretrained_entry,
    pretrained_names,
    pretrained_path,
    register_pretrained,
)
from tfsr.models.sesr import SESR_CONFIGS, collapse_model, init_from, sesr_model  # noqa: F401
from tfsr.models.sesr_dysample import sesr_dysample  # noqa: F401

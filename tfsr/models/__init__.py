"""Models: builders for the SR networks and the shipped pretrained models."""

from tfsr.models.pretrained import (  # noqa: F401
    pretrained,
    pretrained_entry,
    pretrained_names,
    register_pretrained,
)

"""LUT super-resolution: SR-LUT, MuLUT and RC-LUT style networks, transfer, LUT files, inference.

Workflow: ``train.py --model=rclut_x4`` trains a :class:`LutNet`; ``python -m tfsr.lut.transfer
--run=RUN --out=model.npz [--finetune_steps=N]`` samples it into tables (and fine-tunes them);
``python -m tfsr.evaluate --model=model.npz`` / ``tfsr.upscale`` run the :class:`LutModel`.
Importing this package registers the ``srlut_x4``, ``mulut_x4``, ``rclut_x4`` model names;
:mod:`tfsr.inference` opens LUT ``.npz`` files through :func:`load_lut_upscaler`.
"""

from tfsr.lut.conversion import finetune, transfer, transfer_run
from tfsr.lut.lut_file import LutFileError, LutTables, load_lut_file, save_lut_file
from tfsr.lut.lut_model import LutModel
from tfsr.lut.lut_unit import LutUnit
from tfsr.lut.networks import MODEL_STAGES, LutNet, lut_net
from tfsr.lut.patterns import PATTERNS, RC_WINDOWS
from tfsr.lut.rc_module import RcModule
from tfsr.lut.upscaler import LutUpscaler, load_lut_upscaler

__all__ = [
    "MODEL_STAGES",
    "PATTERNS",
    "RC_WINDOWS",
    "LutFileError",
    "LutModel",
    "LutNet",
    "LutTables",
    "LutUnit",
    "LutUpscaler",
    "RcModule",
    "finetune",
    "load_lut_file",
    "load_lut_upscaler",
    "lut_net",
    "save_lut_file",
    "transfer",
    "transfer_run",
]

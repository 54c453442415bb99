"""Image I/O, MATLAB-compatible resizing, colour conversion and training pipelines."""

from tfsr.data.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb  # noqa: F401
from tfsr.data.imresize import imresize, modcrop, to_uint8  # noqa: F401

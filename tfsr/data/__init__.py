"""Image I/O, MATLAB-compatible resizing, colour conversion and training pipelines."""

from tfsr.data.color import (  # noqa: F401
    grey_to_rgb,
    rgb_to_grey,
    rgb_to_y,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from tfsr.data.imresize import imresize, modcrop, scale_name, scale_pair, to_uint8  # noqa: F401
from tfsr.data.io import ImageReadError, list_images, read_image, write_image  # noqa: F401
from tfsr.data.pipeline import (  # noqa: F401
    count_training_images,
    multiscale_sr_patches,
    sr_patches,
)
from tfsr.data.sources import (  # noqa: F401
    ImageSource,
    SourceUnavailableError,
    div2k,
    embedded_photos,
    image_folder,
    source_from_spec,
)

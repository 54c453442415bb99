"""Where training images come from: a folder, the photographs bundled with scikit-image, DIV2K.

Every source is an :class:`ImageSource`: a name and an ordered tuple of image files, decoded on
demand with :func:`tfsr.data.io.read_image` into ``uint8`` (H, W, 3) arrays. A training script
picks one from a flag with :func:`source_from_spec`::

    from tfsr.data import sources
    source = sources.source_from_spec("embedded")     # or "div2k", or a folder path
    print(source.name, len(source))                   # embedded 6
    for image in source:                              # uint8 (H, W, 3)
        ...
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.resources
import os
import socket
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import numpy as np

from tfsr.data.io import ImageReadError, list_images, read_image, read_image_size

EMBEDDED_PHOTOS = (
    "astronaut.png",  # 512 x 512, portrait in front of a flag
    "chelsea.png",  # 451 x 300, cat
    "coffee.png",  # 600 x 400, cup of coffee
    "motorcycle_left.png",  # 741 x 500, motorcycle in a workshop (left view of a stereo pair)
    "motorcycle_right.png",  # 741 x 500, the right view
    "rocket.jpg",  # 640 x 427, rocket on its launch pad
)
"""The natural colour photographs of ``skimage/data`` used by :func:`embedded_photos`.

Left out: grey images, synthetic test patterns, microscopy, retina and astronomy images, and
images with transparency.
"""

DIV2K_SPLITS = {"train": "DIV2K_train_HR", "validation": "DIV2K_valid_HR"}
_DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/{}.zip"


class SourceUnavailableError(RuntimeError):
    """A source that needs a download could not be fetched (offline, server down, bad checksum)."""


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """A named, ordered collection of image files.

    Attributes:
        name: short name for logs ("embedded", "div2k-train", or the folder path).
        paths: the image files, in a fixed order.
        skip_bad: when decoding fails (corrupt or unreadable file), warn and leave the image out
            instead of raising :class:`tfsr.data.io.ImageReadError`.
    """

    name: str
    paths: tuple[str, ...]
    skip_bad: bool = False

    def __post_init__(self):
        object.__setattr__(self, "paths", tuple(os.fspath(p) for p in self.paths))

    def __len__(self) -> int:
        """Number of files (bad files included: they are only found out when decoded)."""
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """Decodes image ``index`` into a ``uint8`` (H, W, 3) array (bad files always raise)."""
        return read_image(self.paths[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields the decoded images in order (bad files: see :meth:`decode`)."""
        for _, image in self.decode():
            yield image

    def _bad(self, errors: list[Exception], what: str) -> None:
        """Raises the first error, or with skip_bad warns once naming every bad file."""
        if not errors:
            return
        if not self.skip_bad:
            raise errors[0]
        warnings.warn(
            f"{self.name}: skipping {len(errors)} {what} file(s): "
            + "; ".join(str(e) for e in errors),
            stacklevel=3,
        )

    def sizes(self) -> dict[int, tuple[int, int]]:
        """``{index: (height, width)}`` read from the file headers, without decoding pixels.

        A file whose header cannot be read raises, or with ``skip_bad`` is left out of the dict
        (one warning names them all).
        """
        sizes, errors = {}, []
        for index, path in enumerate(self.paths):
            try:
                sizes[index] = read_image_size(path)
            except (ImageReadError, OSError) as error:
                errors.append(error)
        self._bad(errors, "unreadable")
        return sizes

    def decode(
        self, indices: Iterable[int] | None = None, *, num_threads: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yields ``(index, uint8 (H, W, 3) image)`` in order, decoding in background threads.

        Pillow releases the GIL while decoding, so threads overlap; at most two images per
        thread wait decoded, so memory stays bounded however many images there are.

        Args:
            indices: which images (default all).
            num_threads: decoding threads; default ``min(8, os.cpu_count())``.

        Raises:
            ImageReadError, OSError: a file cannot be decoded, unless ``skip_bad``: then it is
                left out and, once all are done, one warning names every bad file.
        """
        remaining = iter(range(len(self)) if indices is None else indices)
        workers = num_threads or min(8, os.cpu_count() or 1)
        errors = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = collections.deque()

            def submit_next():
                index = next(remaining, None)
                if index is not None:
                    pending.append((index, pool.submit(read_image, self.paths[index])))

            for _ in range(2 * workers):
                submit_next()
            while pending:
                index, future = pending.popleft()
                submit_next()
                try:
                    image = future.result()
                except (ImageReadError, OSError) as error:
                    if not self.skip_bad:
                        for _, waiting in pending:
                            waiting.cancel()
                        raise
                    errors.append(error)
                    continue
                yield index, image
        self._bad(errors, "undecodable")


def image_folder(path: str | os.PathLike, *, skip_bad: bool = False) -> ImageSource:
    """All images in a folder and its sub-folders (see :func:`tfsr.data.io.list_images`).

    Args:
        path: the folder, e.g. ``../shared/data/train`` (T91 + BSD200, the "291" set).
        skip_bad: warn about and leave out files that cannot be decoded, instead of raising.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: missing folder, or no images in it.
    """
    path = os.fspath(path)
    return ImageSource(name=path, paths=tuple(list_images(path)), skip_bad=skip_bad)


def embedded_photos() -> ImageSource:
    """Six colour photographs shipped inside scikit-image's wheel: training data with no download.

    See :data:`EMBEDDED_PHOTOS` (1.65 megapixels in all). Enough for smoke tests and short
    demo runs; use a real training set (291 images, DIV2K) for published numbers.

    Raises:
        FileNotFoundError: scikit-image is not installed, or its wheel lacks the files.
    """
    try:
        folder = importlib.resources.files("skimage") / "data"
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "the embedded photos come from scikit-image, which is not installed "
            "(pip install scikit-image)"
        ) from None
    paths = tuple(os.fspath(folder / name) for name in EMBEDDED_PHOTOS)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"scikit-image's data folder lacks {', '.join(missing)}; reinstall scikit-image "
            "or train on a folder of images instead"
        )
    return ImageSource(name="embedded", paths=paths)


def _cached_div2k_folder(extract_dir: str, folder_name: str) -> str | None:
    """A complete earlier extraction of ``folder_name`` under tfds' extract folder, if any."""
    if not os.path.isdir(extract_dir):
        return None
    for entry in sorted(os.listdir(extract_dir)):
        candidate = os.path.join(extract_dir, entry, folder_name)
        if ".tmp" not in entry and os.path.isdir(candidate):
            return candidate
    return None


def _check_host_reachable(url: str) -> None:
    """Fails fast when the host has no address: tfds would otherwise retry for minutes."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # the proxy resolves names, not us
    host = urlparse(url).hostname
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        raise SourceUnavailableError(
            f"cannot download DIV2K from {url}: the host {host!r} cannot be resolved ({error}); "
            "this machine looks offline. Download and unzip the file by hand and pass its folder "
            "instead of 'div2k'"
        ) from error


def div2k(split: str = "train", *, data_dir: str | os.PathLike | None = None) -> ImageSource:
    """The DIV2K high-resolution images (800 train / 100 validation 2K photographs).

    The zip file is fetched with TensorFlow Datasets' download manager, checked against the
    checksum registered by its ``div2k`` builder and unzipped under ``data_dir/downloads``; later
    calls reuse it without network. Only the HR zip is downloaded (3.5 GB for train, 0.45 GB for
    validation): tfsr makes LR images itself, so the builder's LR zips and its TFRecord copy are
    not needed.

    Args:
        split: "train" or "validation".
        data_dir: tfds data folder; default tfds' own (``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``).

    Raises:
        ValueError: unknown split.
        SourceUnavailableError: the download failed (offline, server error, checksum mismatch);
            the message says how to use a hand-downloaded copy instead.
    """
    if split not in DIV2K_SPLITS:
        raise ValueError(f"unknown DIV2K split {split!r}; expected one of {sorted(DIV2K_SPLITS)}")
    import tensorflow_datasets as tfds  # lazily: about 2 s to import, and rarely needed

    folder_name = DIV2K_SPLITS[split]
    url = _DIV2K_URL.format(folder_name)
    data_dir = os.path.expanduser(os.fspath(data_dir or tfds.core.constants.DATA_DIR))
    download_dir = os.path.join(data_dir, "downloads")
    extract_dir = os.path.join(download_dir, "extracted")
    folder = _cached_div2k_folder(extract_dir, folder_name)
    if folder is None:
        _check_host_reachable(url)
        url_infos = tfds.builder("div2k/bicubic_x2", data_dir=data_dir).url_infos
        manager = tfds.download.DownloadManager(
            download_dir=download_dir,
            extract_dir=extract_dir,
            url_infos={url: url_infos[url]},
            dataset_name="div2k",
        )
        try:
            extracted = manager.download_and_extract(url)
        except Exception as error:  # requests, checksum and zip errors have no common base
            raise SourceUnavailableError(
                f"cannot download DIV2K ({split}) from {url}: {error}. Download and unzip the "
                "file by hand and pass its folder instead of 'div2k'"
            ) from error
        folder = os.path.join(os.fspath(extracted), folder_name)
    return ImageSource(name=f"div2k-{split}", paths=tuple(list_images(folder)))


def source_from_spec(spec: str, *, skip_bad: bool = False) -> ImageSource:
    """Maps a flag value to a source.

    Args:
        spec: ``"embedded"`` (the scikit-image photographs), ``"div2k"`` (DIV2K train),
            ``"div2k:validation"``, or the path of a folder of images.
        skip_bad: leave out undecodable files with a warning instead of raising.

    Raises:
        ValueError: ``spec`` is none of the above (the message lists the choices).
    """
    spec = os.path.expanduser(spec)  # "--train_data=~/photos": the shell leaves that "~"
    if spec == "embedded":
        source = embedded_photos()
    elif spec == "div2k" or spec.startswith("div2k:"):
        source = div2k(spec.partition(":")[2] or "train")
    elif os.path.isdir(spec):
        source = image_folder(spec)
    else:
        raise ValueError(
            f"unknown image source {spec!r}: expected 'embedded', 'div2k', 'div2k:validation' "
            "or an existing folder of images"
        )
    return dataclasses.replace(source, skip_bad=skip_bad)

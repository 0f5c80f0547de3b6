"""What every wanjax TFDS builder shares: array_record files, tensor features that need no TensorFlow."""

import inspect

import numpy as np
import tensorflow_datasets as tfds
from etils import epath


def tensor(shape: tuple, dtype: np.dtype, zlib: bool = False) -> tfds.features.Tensor:
    """A Tensor feature stored as one (optionally zlib-compressed) blob; None in `shape` = any size.

    Encoding.NONE would write elements one by one into protos (~20x slower to build, NOTES.md), and the Video /
    Image features import TensorFlow."""
    encoding = tfds.features.Encoding.ZLIB if zlib else tfds.features.Encoding.BYTES
    return tfds.features.Tensor(shape=shape, dtype=dtype, encoding=encoding)


class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A generator-based builder writing array_record (random access, what Grain reads); subclasses give
    `_features()`, `_split_generators` and `_generate_examples`."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, **kwargs):
        super().__init__(file_format="array_record", **kwargs)

    def _features(self) -> dict:
        """Feature name -> tfds feature."""
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo(builder=self): `dataset_info_from_configs` needs the builder's package metadata (NOTES.md).
        features = tfds.features.FeaturesDict(self._features())
        return tfds.core.DatasetInfo(builder=self, description=self.__doc__, features=features)

    # TFDS locates a builder's source inside a package through the `importlib_resources` backport, which
    # tensorflow-datasets does not depend on: without it every build fails (ModuleNotFoundError). Point it at the file.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))

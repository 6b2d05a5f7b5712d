"""Exception types of the package."""


class FormatError(ValueError):
    """A compressed stream or file is malformed, truncated, corrupt or
    was written by an incompatible model or format version."""


class ModelError(ValueError):
    """A model name, folder or checkpoint cannot be loaded or does not match its config."""


class ImageError(ValueError):
    """An input image cannot be coded losslessly (unsupported mode, depth or size)."""

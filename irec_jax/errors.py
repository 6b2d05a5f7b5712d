"""Exception types of the package."""


class FormatError(ValueError):
    """A compressed stream or file is malformed, truncated, corrupt or
    was written by an incompatible model or format version."""

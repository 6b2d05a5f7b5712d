"""Input pipelines: random-access image sources and deterministic, resumable batches.

``sources``  -- ``ImageSource`` protocol; ``PngFolder`` (a local folder of PNGs);
               ``tfds_source`` (``tfds.data_source``, array_record, no TensorFlow).
``pipeline`` -- ``train_batch`` / ``eval_batches``: the batch of global step ``s``
               is a pure function of (seed, s, host), so the position to resume
               from is just the number of batches consumed.

Knows nothing of models, configs or training. tensorflow-datasets is imported
only when ``tfds_source`` is called.
"""

from irec_jax.data.pipeline import BatchSpec, eval_batches, num_eval_batches, train_batch
from irec_jax.data.sources import ImageSource, PngFolder, RecordImages, tfds_source

__all__ = ["BatchSpec", "train_batch", "eval_batches", "num_eval_batches",
           "ImageSource", "PngFolder", "RecordImages", "tfds_source"]

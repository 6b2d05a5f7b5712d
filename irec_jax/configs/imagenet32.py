"""The paper's lossless RVAE recipe on ImageNet32 (tfds ``downsampled_imagenet/32x32``).

Model and optimizer: ``paper`` (24 layers, 160/32 channels; Adamax 1e-3,
x0.3 at 50k/100k/150k/200k, batch 8, 500k steps, free bits 0.1, EMA 0.999).
The tfds ``validation`` split (50,000 images) is the test set, as in the
original code; periodic evaluation uses its first ``train.eval_examples``.

Data: prepare once on a machine with network (array_record format)::

    tfds build downsampled_imagenet/32x32 --file_format=array_record --data_dir=$TFDS

Run (one or more GPUs, or a TPU slice; data parallel over all devices)::

    python train.py --config=irec_jax/configs/imagenet32.py --workdir=$WORKDIR \\
        --config.data.tfds_data_dir=$TFDS

Expected (paper): 4.18 bits/dim negative ELBO on the ImageNet32 validation
set (iREC single-image coding of the same model: 4.91).
"""

import ml_collections

from irec_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
    """The published ImageNet32 recipe."""
    config = paper.get_config()
    config.data.name = "imagenet32"
    config.data.random_flip = False
    config.train.eval_examples = 10_000
    return config

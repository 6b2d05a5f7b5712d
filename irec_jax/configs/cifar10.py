"""The paper's lossless RVAE recipe on CIFAR-10 (tfds ``cifar10`` through ``tfds.data_source``).

Model and optimizer: ``paper`` (24 layers, 160/32 channels; Adamax 1e-3,
x0.3 at 50k/100k/150k/200k, batch 8, 500k steps, free bits 0.1, EMA 0.999).
Evaluation on the 10,000 test images in bits/dim, with per-layer KL.

Data: prepare once on a machine with network (array_record format)::

    tfds build cifar10 --file_format=array_record --data_dir=$TFDS

Run (one GPU, or a TPU slice: the batch is sharded over all devices; the
paper trained on one GPU)::

    python train.py --config=irec_jax/configs/cifar10.py --workdir=$WORKDIR \\
        --config.data.tfds_data_dir=$TFDS

Multi-host (TPU pod): add ``--config.distributed=True`` and a batch size
divisible by the device count.

Expected (paper): 3.55 bits/dim negative ELBO on the CIFAR-10 test set
(iREC single-image coding of the same model: 4.18).
"""

import ml_collections

from irec_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
    """The published CIFAR-10 recipe."""
    config = paper.get_config()
    config.data.name = "cifar10"
    config.data.random_flip = True
    return config

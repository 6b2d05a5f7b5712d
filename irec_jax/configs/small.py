"""A small CPU variant of the paper RVAE: 4 layers, 32 deterministic / 8 stochastic channels.

For tests and the bundled CPU model. Overrides of ``paper``: 4 layers,
32/8 channels, a per-subpixel predicted logistic scale, Adam lr 2e-3 at
batch 16 of 32x32 crops (short CPU runs), no EMA. 219,942 parameters.

Hardware: CPU. One forward/backward at batch 32 of 32x32x3 took 0.37 s
(median of 20; first call with compilation 8.6 s) on a shared 2-core CPU
(``python bench/model_bench.py --config small``).

Train on a local folder of PNGs (random 32x32 crops and flips)::

    python train.py --config=irec_jax/configs/small.py --workdir=/tmp/small \
        --config.data.train_dir=TRAIN_PNGS --config.data.eval_dir=HELD_OUT_PNGS

``train.py`` speed here (random crops of three skimage photos, batch 16, no
evaluation; median of 50-step intervals): 5.7-5.9 steps/s on 1 CPU device,
9.1-9.6 steps/s with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(``flock /tmp/irec-bench.lock python bench/train_bench.py``).

Run the 10-minute CPU measurement on scikit-image's lossless-origin photos::

    flock /tmp/irec-bench.lock python bench/train_small.py --minutes 10

Expected: about 4.5-4.8 bits/dim negative ELBO on held-in 32x32 crops after
10 minutes (2,700-2,900 steps at batch 16) on a shared 2-core CPU; the number
depends on the machine's load.
"""

import ml_collections

from irec_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
    """The paper config with the small-model overrides."""
    config = paper.get_config()
    config.model.num_layers = 4
    config.model.det_channels = 32
    config.model.stoch_channels = 8
    config.model.predict_scale = True

    config.train.optimizer = "adam"
    config.train.learning_rate = 2e-3
    config.train.lr_decay_steps = ()
    config.train.batch_size = 16
    config.train.crop_size = 32
    config.train.num_steps = 5_000
    config.train.ema_decay = 0.0
    config.train.log_every = 50
    config.train.eval_every = 1_000
    config.train.eval_examples = 512
    config.train.checkpoint_every = 500

    config.data.name = "folder"  # set --config.data.train_dir (and eval_dir)
    return config

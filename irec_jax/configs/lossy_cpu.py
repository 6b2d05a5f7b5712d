"""A CPU variant of ``lossy_paper``: 64 transform / 64 latent / 48 hyper channels.

Overrides of ``lossy_paper``: 64 channels in the transforms and the level-1
latents, 48 in the hyper transforms and the level-2 latents (1,123,235
parameters); Adam lr 5e-4, cut by 0.3 at step 1,200 of 1,500 (a ~25-minute
budget per beta point); EMA 0.99; no periodic evaluation. Random 256x256
crops and flips of a folder of PNGs (images with a side below 256 are left
out, with a note on stderr). beta defaults to 0.01 (MSE); set another point
of the grid with ``--config.train.beta=0.003``:

* MSE: 0.001, 0.003, 0.01, 0.03, 0.05;
* MS-SSIM (``--config.train.distortion=ms-ssim``): 0.003, 0.01, 0.03, 0.08.

Train one beta point on the default model's folder (``scripts/default_model_data.py``
writes it; 13 of its 40 images are at least 256x256)::

    python train.py --config irec_jax/configs/lossy_cpu.py --workdir /tmp/lossy_cpu_mse_0.01 \
        --config.data.train_dir=/tmp/default_train_v3 --config.train.beta=0.01

Hardware: 2-core CPU. One jitted train step at batch 8 of 256x256 crops took
0.74 s, at batch 4 0.33 s (median of 8 after a 7 s compilation, machine
otherwise idle). Through ``train.py`` with other jobs on the machine: 0.87-0.90
steps/s (200 steps in 232 s including start-up), so 1,500 steps take 20-30
minutes depending on the load.

Why lr 5e-4 (200 steps at beta 0.01 on the folder above, loss over steps
160-200): 7.10 at 5e-4, 7.06 at 1e-3, 10.99 at the paper's 1e-4.
"""

import ml_collections

from irec_jax.configs import lossy_paper


def get_config() -> ml_collections.ConfigDict:
    """The lossy paper config with CPU-sized channels and a short schedule."""
    config = lossy_paper.get_config()
    config.model.transform_channels = 64
    config.model.latent_channels = 64
    config.model.hyper_channels = 48
    config.model.hyper_latent_channels = 48

    config.train.learning_rate = 5e-4
    config.train.lr_decay_steps = (1_200,)
    config.train.lr_decay_factor = 0.3
    config.train.num_steps = 1_500
    config.train.ema_decay = 0.99
    config.train.log_every = 10
    config.train.eval_every = 0
    config.train.checkpoint_every = 100
    return config

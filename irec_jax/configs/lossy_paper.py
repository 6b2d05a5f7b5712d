"""The lossy two-level Gaussian VAE of the iREC paper, at the original code's sizes.

Model (:mod:`irec_jax.models.gvae`, ``kind = "gvae"``): Ballé et al. 2018's
hyperprior architecture with Gaussian posteriors at both levels, no
quantization (rate = KL). 196 channels in the analysis/synthesis transforms
and the level-1 latents (H/16), 128 in the hyper transforms and the level-2
latents (H/64): the original code's ``level_1_filters = 196``,
``level_2_filters = 128`` (``examples/lossy/train_lossy_model.py``). To give
the level-1 latents 128 channels instead: ``--config.model.latent_channels=128``.
9,711,979 parameters.

Objective: ``beta * D + (KL_1 + KL_2) / (H W ln 2)`` with D the MSE on the
0..255 scale (``distortion = "mse"``) or ``255 (1 - MS-SSIM)``
(``--config.train.distortion=ms-ssim``; crops must exceed 160 px). Set beta
with ``--config.train.beta=0.003``. The original's beta grid:

* MSE: 0.001, 0.003, 0.01, 0.03, 0.05;
* MS-SSIM: 0.003, 0.01, 0.03, 0.08.

Training as published: Adam lr 1e-4, batch 8, random 256x256 crops (CLIC
in the paper), no learning-rate decay. Differences from the original code:
EMA 0.999 of the weights (used for evaluation and export), global-norm
gradient clipping at 100, zero "SAME" padding (the original reflects), and
the level-1 posterior comes from the analysis heads alone (the original mixes
in the level-1 prior's statistics with 1x1 convs). The original script's
loop bound was 3,000,000 steps and the paper does not state the steps used;
1,000,000 here.

Hardware: an accelerator is needed. On a 2-core CPU one jitted train step
at batch 8 of 256x256 crops took 7.2 s (median of 3 after a 10.5 s
compilation, machine otherwise idle).

Expected (paper, Kodak, MSE model, rate = KL): about 33.4 dB PSNR at
0.5 bpp, against 33.06 dB for Ballé et al. 2018.

Run (one beta point; ``CLIC_TRAIN`` and ``CLIC_VALID`` are folders of PNGs)::

    python train.py --config irec_jax/configs/lossy_paper.py --workdir /tmp/lossy_b0.01 \\
        --config.data.train_dir=CLIC_TRAIN --config.data.eval_dir=CLIC_VALID \\
        --config.train.beta=0.01
"""

import ml_collections

from irec_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
    """The paper's training set-up with the lossy model."""
    config = paper.get_config()
    config.model = ml_collections.ConfigDict()
    config.model.kind = "gvae"
    config.model.transform_channels = 196
    config.model.latent_channels = 196
    config.model.hyper_channels = 128
    config.model.hyper_latent_channels = 128
    config.model.latent_min_scale = 1e-3
    config.model.image_channels = 3

    del config.train.free_bits  # the lossy objective has none
    config.train.beta = 0.01  # weight of the distortion (see the grid in the docstring)
    config.train.distortion = "mse"  # "mse" or "ms-ssim"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-4
    config.train.lr_decay_steps = ()
    config.train.batch_size = 8
    config.train.crop_size = 256
    config.train.num_steps = 1_000_000
    config.train.eval_every = 10_000
    config.train.eval_examples = 0  # the whole evaluation folder

    config.data.name = "folder"  # set --config.data.train_dir (and eval_dir)
    return config

"""The lossless RVAE of the iREC paper (Kingma et al. 2016 / HiLLoC), as published.

24 bidirectional residual stochastic layers at H/2 x W/2 with 160
deterministic and 32 stochastic channels, residual scale 0.1, learned top
prior, 5x5 stride-2 stem and transposed-conv head, discretized logistic
likelihood with a learned per-channel scale. 29,904,134 parameters.

Training as published: Adamax lr 1e-3 (x0.3 at 50k/100k/150k/200k), batch 8,
500k steps, free bits 0.1 nats per channel per layer, EMA 0.999, 32x32 images.

Hardware: an accelerator is needed: one fused forward/backward at batch 8 of
32x32x3 took 6.2 s (first call with compilation 32 s) on a shared 2-core CPU
(``python bench/model_bench.py --config paper``).
Expected negative ELBO (paper): 3.55 bits/dim on CIFAR-10, 4.18 on
ImageNet32, 3.00 on Kodak.

Run (CIFAR-10 through ``tfds.data_source``; see ``cifar10.py`` and
``imagenet32.py``): ``python train.py --config=irec_jax/configs/paper.py
--workdir=...``. Model only::

    from irec_jax.configs import paper
    from irec_jax.models import RVAE, RVAEConfig
    model = RVAE(RVAEConfig.from_config(paper.get_config().model))
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """The published configuration."""
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.num_layers = 24
    config.model.det_channels = 160
    config.model.stoch_channels = 32
    config.model.residual_scale = 0.1
    config.model.latent_min_scale = 1e-3
    config.model.image_channels = 3
    config.model.likelihood = "logistic"
    config.model.num_mixtures = 5
    config.model.predict_scale = False
    config.model.likelihood_min_scale = 0.05
    config.model.likelihood_init_scale = 8.0

    config.train = ml_collections.ConfigDict()
    config.train.optimizer = "adamax"
    config.train.learning_rate = 1e-3
    config.train.lr_decay_steps = (50_000, 100_000, 150_000, 200_000)
    config.train.lr_decay_factor = 0.3
    config.train.batch_size = 8
    config.train.crop_size = 32
    config.train.num_steps = 500_000
    config.train.free_bits = 0.1  # nats per channel per layer
    config.train.ema_decay = 0.999
    config.train.seed = 0
    config.train.grad_clip = 100.0  # global-norm clip (not in the paper); 0 turns it off
    config.train.log_every = 100
    config.train.eval_every = 10_000  # 0: no periodic evaluation
    config.train.eval_examples = 10_000  # 0: the whole held-out split
    config.train.eval_batch_size = 0  # 0: batch_size
    config.train.checkpoint_every = 5_000
    config.train.keep_checkpoints = 3
    config.train.async_checkpoint = True
    config.train.progress_bar = True

    config.data = ml_collections.ConfigDict()
    config.data.name = "cifar10"  # "cifar10", "imagenet32" (tfds data_source) or "folder"
    config.data.tfds_data_dir = ""  # "": tfds' default (~/tensorflow_datasets)
    config.data.train_dir = ""  # "folder": PNGs to train on
    config.data.eval_dir = ""  # "folder": held-out PNGs ("": evaluate on train_dir)
    config.data.random_flip = True
    config.data.seed = 0  # shuffling and crop/flip seed
    config.data.prefetch = 2  # training batches built ahead in a thread

    config.distributed = False  # True: jax.distributed.initialize() (multi-host TPU/GPU)
    return config

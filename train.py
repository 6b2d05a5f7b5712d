"""Train an iREC model: ``python train.py --config irec_jax/configs/small.py --workdir DIR``.

Override any config field with ``--config.train.num_steps=100`` and the like.
Resumes from the latest checkpoint in DIR. SIGTERM/SIGINT save and exit with
128 + the signal number.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (irec_jax/configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.jsonl.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save step at INFO
    from irec_jax.train import TrainingInterrupted, train_and_evaluate
    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        sys.exit(128 + e.signum)


if __name__ == "__main__":
    app.run(main)

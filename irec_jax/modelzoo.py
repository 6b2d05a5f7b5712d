"""Codec models: the bundled default, exported model folders and train.py workdirs.

A *model folder* holds ``model.json`` (name, config -- an RVAE, or with
``"kind": "gvae"`` the lossy two-level Gaussian VAE -- coder defaults and a
model card) and ``params.npz`` (one array per parameter, keyed by its path in
the parameter tree, ``a/b/c``). Version 2 folders hold the model's integer
form (``irec_jax.models.integer``: int8 weights and integer tables for the
decoder path, float32 for the encoder-only bottom-up half); version 1
folders (float parameters) and ``train.py`` workdirs are converted to it when
loaded (a deterministic conversion). The bundled default lives in
``irec_jax/assets/models/default``; bundled lossy models in
``irec_jax/assets/models/lossy-q<Q>`` (``lossy_qualities``). ``load_model`` also reads a ``train.py``
workdir directly (its latest checkpoint, EMA parameters if it kept any);
``export_model`` turns a workdir into a model folder.

The model a file was written with is named in its header by position in the
bundled models' append-only list (``header_models``: a position always means
the same weights) or by name plus a hash of its parameters, so decoding with
different weights fails cleanly instead of producing garbage.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from typing import Any

import numpy as np

from irec_jax.entropy import CoderSettings, ModelRef, param_hash
from irec_jax.errors import ModelError

MODEL_FORMAT = "irec-model"
MODEL_FORMAT_VERSION = 2  # 2: integer decoder path; 1: float parameters (converted on load)
DEFAULT_NAME = "default"
LOSSY_PREFIX = "lossy-q"  # bundled lossy models: assets/models/lossy-q<quality>
LOSSY_DEFAULTS = CoderSettings(omega=4.0, epsilon=0.0, seed=0)  # lossy coder defaults (files store differences)


@dataclasses.dataclass(frozen=True, eq=False)
class CodecModel:
    """A VAE the codec can drive, with the name and defaults written to files.

    name: the model's name (written in the header when it is not a known model).
    config: an ``RVAEConfig`` (lossless) or a ``GVAEConfig`` (lossy). params:
    the integer-form parameter pytree (``irec_jax.models.integer.quantize``
    or ``gvae_integer.quantize``), numpy arrays.
    defaults: the coder settings a file omits when it uses them.
    card: free-form facts about the model (training data, command, bits/dim).
    """

    name: str
    config: Any
    params: Any
    defaults: CoderSettings = CoderSettings()
    card: dict = dataclasses.field(default_factory=dict)

    @property
    def lossy(self) -> bool:
        """Whether this is a lossy model (a two-level Gaussian VAE)."""
        return _is_gvae(self.config)

    @property
    def rate_distortion(self) -> tuple[float, str] | None:
        """(beta, distortion) a lossy model was trained with, from its card (``"beta"``,
        ``"distortion"``, default ``"mse"``); None where the card does not say."""
        beta, distortion = self.card.get("beta"), self.card.get("distortion") or "mse"
        if not self.lossy or beta is None:
            return None
        try:
            beta = float(beta)
        except (TypeError, ValueError):
            raise ModelError(f"model {self.name!r}: its card's beta {beta!r} is not a number") from None
        from irec_jax.metrics import DISTORTIONS

        if not beta > 0 or not math.isfinite(beta) or distortion not in DISTORTIONS:
            raise ModelError(f"model {self.name!r}: its card's beta {beta!r} / distortion {distortion!r} "
                             "is not a trade-off the encoder can use")
        return beta, str(distortion)

    @functools.cached_property
    def model(self):
        """The ``IntegerRVAE`` or ``IntegerGVAE`` for ``config`` (exact decoder path)."""
        if self.lossy:
            from irec_jax.models.gvae_integer import IntegerGVAE
            return IntegerGVAE(self.config)
        from irec_jax.models.integer import IntegerRVAE
        return IntegerRVAE(self.config)

    @functools.cached_property
    def ref(self) -> ModelRef:
        """Name, 4-byte parameter hash and defaults, as the container writes them."""
        return ModelRef(self.name, param_hash(_leaves(self.params)), self.defaults)

    @property
    def image_channels(self) -> int:
        return int(self.config.image_channels)


def _leaves(params: Any) -> list[np.ndarray]:
    return [np.asarray(v) for _, v in sorted(_flatten(params).items())]


def _flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    if isinstance(tree, dict) or hasattr(tree, "items"):
        out: dict[str, np.ndarray] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}/"))
        return out
    return {prefix[:-1]: tree if hasattr(tree, "shape") and hasattr(tree, "dtype") else np.asarray(tree)}


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def _is_gvae(config) -> bool:
    from irec_jax.models.gvae_config import GVAEConfig
    return isinstance(config, GVAEConfig)


def _config_from_dict(d: dict):
    """An RVAEConfig, or a GVAEConfig when ``d["kind"] == "gvae"``; ModelError otherwise."""
    from irec_jax.models import RVAEConfig
    from irec_jax.models.gvae_config import GVAEConfig
    d = dict(d)
    kind = d.pop("kind", "rvae")
    if kind not in ("rvae", "gvae"):
        raise ModelError(f"model config has unknown kind {kind!r} (expected 'rvae' or 'gvae')")
    cls = GVAEConfig if kind == "gvae" else RVAEConfig
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - fields
    if unknown:
        raise ModelError(f"model config has unknown fields {sorted(unknown)}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
    except (TypeError, ValueError) as e:
        raise ModelError(f"invalid model config: {e}") from None


def _config_to_dict(config) -> dict:
    d = dataclasses.asdict(config)
    return {"kind": "gvae", **d} if _is_gvae(config) else d


def _float_model(config):
    from irec_jax.models import GVAE, RVAE
    return GVAE(config) if _is_gvae(config) else RVAE(config)


def _integer_module(config):
    from irec_jax.models import gvae_integer, integer
    return gvae_integer if _is_gvae(config) else integer


def _check_params(config, params: Any, where: str) -> None:
    """Raises ModelError unless ``params`` has exactly the shapes ``config`` initializes."""
    import jax
    side = 64 if _is_gvae(config) else 32
    expected = _flatten(jax.eval_shape(
        lambda: _float_model(config).init(jax.random.key(0), (1, side, side, config.image_channels))))
    got = _flatten(params)
    if set(expected) != set(got):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        raise ModelError(f"{where}: parameters do not match the config "
                         f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for k, e in expected.items():
        g = np.asarray(got[k])
        if tuple(e.shape) != g.shape or g.dtype != np.float32:
            raise ModelError(f"{where}: parameter {k} is {g.dtype}{g.shape}, "
                             f"expected float32{tuple(e.shape)}")


def _to_integer(config, params: Any, where: str) -> Any:
    """Float parameters -> the integer form; ModelError if it cannot run exactly."""
    _check_params(config, params, where)
    try:
        return _integer_module(config).quantize(config, params)
    except ValueError as e:
        raise ModelError(f"{where}: {e}") from None


def _check_integer_params(config, params: Any, where: str) -> None:
    try:
        _integer_module(config).check_params(config, params)
    except ValueError as e:
        raise ModelError(f"{where}: {e}") from None


def bundled_model_dir() -> str:
    """Folder of the bundled default model."""
    from irec_jax.assets import asset_path
    return asset_path("models", DEFAULT_NAME)


def _load_folder(path: str) -> CodecModel:
    meta_path = os.path.join(path, "model.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read {meta_path}: {e}") from None
    version = meta.get("version")
    if meta.get("format") != MODEL_FORMAT or version not in (1, MODEL_FORMAT_VERSION):
        raise ModelError(f"{meta_path} is not an irec model this version reads (format "
                         f"{meta.get('format')!r}, version {version!r}; reads versions 1 and "
                         f"{MODEL_FORMAT_VERSION})")
    config = _config_from_dict(dict(meta.get("config", {})))
    try:
        with np.load(os.path.join(path, "params.npz"), allow_pickle=False) as npz:
            params = _unflatten({k: npz[k] for k in npz.files})
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {os.path.join(path, 'params.npz')}: {e}") from None
    if version == 1:
        params = _to_integer(config, params, path)
    else:
        _check_integer_params(config, params, path)
    defaults = CoderSettings(**meta.get("defaults", {}))
    return CodecModel(str(meta["name"]), config, params, defaults, dict(meta.get("card", {})))


def _load_workdir(workdir: str) -> CodecModel:
    from irec_jax import workdir as layout

    steps = layout.checkpoint_steps(workdir)
    if not steps:
        raise ModelError(f"{workdir}: no checkpoints")
    try:
        stored = layout.load_meta(workdir, steps[-1]).get("config", {})
        cfg = stored.get("model")
    except (OSError, ValueError) as e:
        raise ModelError(f"{workdir}: cannot read checkpoint {steps[-1]}'s metadata: {e}") from None
    if cfg is None:
        raise ModelError(f"{workdir}: checkpoint {steps[-1]} has no stored model config")
    config = _config_from_dict(dict(cfg))
    try:
        params = layout.load_params(workdir, steps[-1], ema=True)
    except Exception as e:  # orbax raises many kinds
        raise ModelError(f"{workdir}: cannot restore checkpoint {steps[-1]}: {e}") from None
    import jax
    params = _to_integer(config, jax.tree.map(lambda a: np.asarray(a, np.float32), params), workdir)
    name = f"{os.path.basename(os.path.abspath(workdir))}@{steps[-1]}"
    defaults = LOSSY_DEFAULTS if _is_gvae(config) else CoderSettings()
    card = {"workdir": os.path.abspath(workdir), "step": steps[-1]}
    if _is_gvae(config):  # the trade-off the encoder's posterior refinement needs
        train = stored.get("train", {})
        card.update({k: train[k] for k in ("beta", "distortion") if k in train})
    return CodecModel(name, config, params, defaults, card)


@functools.lru_cache(maxsize=16)  # every file read checks the 5 bundled models: more than 4, or they evict each other
def _load_cached(path: str, mtime: float) -> CodecModel:
    if os.path.isfile(os.path.join(path, "model.json")):
        return _load_folder(path)
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return _load_workdir(path)
    raise ModelError(f"{path} is neither an irec model folder (model.json) nor a train.py "
                     "workdir (checkpoints/)")


def load_model(spec: "str | os.PathLike | CodecModel" = DEFAULT_NAME) -> CodecModel:
    """A ``CodecModel`` from ``"default"`` (bundled), a model folder or a train.py workdir.

    Raises ModelError (a ValueError) with a readable message for anything else.
    """
    if isinstance(spec, CodecModel):
        return spec
    path = bundled_model_dir() if str(spec) == DEFAULT_NAME else os.path.abspath(os.fspath(spec))
    if not os.path.isdir(path):
        raise ModelError(f"model {str(spec)!r} not found (expected 'default', a model folder "
                         "or a train.py workdir)")
    stamp = max((os.path.getmtime(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs),
                default=0.0)
    return _load_cached(path, stamp)


def lossy_qualities() -> list[int]:
    """The qualities of the bundled lossy models, ascending (folders ``lossy-q<Q>``)."""
    from irec_jax.assets import asset_path
    names = os.listdir(asset_path("models"))
    return sorted(int(n[len(LOSSY_PREFIX):]) for n in names
                  if n.startswith(LOSSY_PREFIX) and n[len(LOSSY_PREFIX):].isdigit())


def lossy_model(quality: int | None = None, model: "str | os.PathLike | CodecModel | None" = None) -> CodecModel:
    """The bundled lossy model of ``quality`` (None: the middle one), or ``model`` if given.
    ModelError for a quality that is not bundled (the message lists those that are)."""
    if model is not None:
        if quality is not None:
            raise ModelError("give a quality or a model, not both")
        return load_model(model)
    qualities = lossy_qualities()
    if not qualities:
        raise ModelError("this installation has no bundled lossy model; pass a lossy model folder")
    if quality is None:
        quality = qualities[(len(qualities) - 1) // 2]
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or quality not in qualities:
        raise ModelError(f"quality must be one of {qualities}, got {quality!r}")
    from irec_jax.assets import asset_path
    return load_model(asset_path("models", f"{LOSSY_PREFIX}{int(quality)}"))


HEADER_MODELS = "header_models.json"  # assets/models/: the header's model ids, append-only


@functools.lru_cache(maxsize=1)  # every file read and write lists the bundled models
def header_models() -> tuple[dict, ...]:
    """The entries of ``assets/models/header_models.json`` in header order: ``{"folder", "name",
    "hash"}`` of the bundled model folder a file's model id names. Append-only (docs/format.md):
    a new version of a bundled model takes a new position, and the folder of the version it
    replaces stays, so that files it wrote still decode."""
    from irec_jax.assets import asset_path

    with open(asset_path("models", HEADER_MODELS), encoding="utf-8") as f:
        return tuple(json.load(f)["models"])


def known_models(extra: CodecModel | None = None) -> list[CodecModel]:
    """The models a reader knows, in header order: the bundled folders of ``header_models()``
    (each checked to hold the weights its entry names), then ``extra``."""
    from irec_jax.assets import asset_path

    models = []
    for entry in header_models():
        cm = load_model(asset_path("models", entry["folder"]))
        if (cm.name, cm.ref.param_hash.hex()) != (entry["name"], entry["hash"]):
            raise ModelError(f"bundled model folder {entry['folder']!r} holds {cm.name!r} (params "
                             f"{cm.ref.param_hash.hex()}), but header id {len(models)} names {entry['name']!r} "
                             f"(params {entry['hash']}): a new model version needs a new entry in {HEADER_MODELS}")
        models.append(cm)
    if extra is not None and all(extra.ref != m.ref for m in models):
        models.append(extra)
    return models


def export_model(model: CodecModel, out_dir: str, *, name: str | None = None,
                 card: dict | None = None) -> str:
    """Writes ``model`` as a model folder (``model.json`` + ``params.npz``, its
    integer form, format version 2); returns ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    flat = _flatten(model.params)
    np.savez_compressed(os.path.join(out_dir, "params.npz"),
                        **{k: np.asarray(v) for k, v in sorted(flat.items())})
    meta = {
        "format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION,
        "name": name or model.name,
        "config": _config_to_dict(model.config),
        "defaults": model.defaults.file_fields(),
        "card": card if card is not None else model.card,
    }
    with open(os.path.join(out_dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    return out_dir

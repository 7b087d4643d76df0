"""The embedding model once loaded, with the store of its vectors; which model's vectors serve
semantic search across restarts (`serving-model.json`); deleting the vectors of every other
model once the configured one covers the index. Blocking: the service calls these in a thread.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import cattrs

from codeweir.embed.model_build import ModelSpec
from codeweir.embed.session import Embedder
from codeweir.host.durable import write_atomic
from codeweir.index.vectors import VectorStore

if TYPE_CHECKING:
    from codeweir.config import ModelConfig

log = logging.getLogger(__name__)

_spec_converter = cattrs.Converter(forbid_extra_keys=True)
_spec_converter.register_structure_hook(Path, lambda value, _: Path(value))
_spec_converter.register_unstructure_hook(Path, str)

ACTIVE_MODEL_FILE = "serving-model.json"
_DELETED_SUFFIX = ".deleted"  # a model directory being removed; a leading dot: no model id


@attrs.frozen
class LoadedModel:
    """A model ready to embed, and the store of its vectors (in `state_dir`/vectors/<model id>)."""

    embedder: Embedder
    vectors: VectorStore


def open_model(cfg: ModelConfig, state_dir: Path, spec: ModelSpec) -> LoadedModel:
    embedder = Embedder(spec, provider=cfg.provider, threads=cfg.threads)
    return LoadedModel(embedder, VectorStore(state_dir / "vectors", spec.model_id, spec.dim, unit_norm=spec.normalize))


def read_serving_spec(state_dir: Path) -> ModelSpec | None:
    """The model whose vectors served semantic search last, if one was recorded."""
    try:
        return _spec_converter.structure(json.loads(_active_file(state_dir).read_text()), ModelSpec)
    except (OSError, ValueError, cattrs.BaseValidationError):
        return None


def write_serving_spec(state_dir: Path, spec: ModelSpec) -> None:
    write_atomic(_active_file(state_dir), json.dumps(_spec_converter.unstructure(spec)).encode())


def _active_file(state_dir: Path) -> Path:
    return state_dir / "vectors" / ACTIVE_MODEL_FILE


def delete_other_models(vectors: VectorStore) -> None:
    """Remove every model's vectors but `vectors`' (the serving model's): nothing reads them any
    more. Each directory is first renamed to a name no model id can have, so a crash mid-delete
    never leaves a partial store that would load as a model's vectors."""
    for path in vectors.directory.parent.iterdir():
        if not path.is_dir() or path == vectors.directory:
            continue
        try:
            if not path.name.startswith("."):
                path = path.rename(path.with_name(f".{path.name}{_DELETED_SUFFIX}"))
                log.info("vectors of model %s deleted", path.name[1 : -len(_DELETED_SUFFIX)])
            if path.name.endswith(_DELETED_SUFFIX):
                shutil.rmtree(path)
        except OSError as exc:
            log.warning("%s: cannot delete the vectors of an unused model: %s", path, exc)

"""Which model's vectors serve across restarts, and deleting the vectors of the others."""

from pathlib import Path

from codeweir.embed.loaded_model import ACTIVE_MODEL_FILE, delete_other_models, read_serving_spec, write_serving_spec
from codeweir.embed.model_build import ModelSpec
from codeweir.index.vectors import VectorStore


def test_the_serving_model_is_read_back_as_written_and_is_none_when_unrecorded_or_unreadable(tmp_path: Path) -> None:
    assert read_serving_spec(tmp_path) is None
    spec = ModelSpec("m-1", tmp_path / "model", 8, "mean", True, 256, "query: ", "passage: ")
    (tmp_path / "vectors").mkdir()
    write_serving_spec(tmp_path, spec)
    assert read_serving_spec(tmp_path) == spec
    (tmp_path / "vectors" / ACTIVE_MODEL_FILE).write_text('{"model_id": "m-1"}')
    assert read_serving_spec(tmp_path) is None


def test_deleting_other_models_keeps_only_the_serving_models_vectors_and_finishes_an_interrupted_delete(
    tmp_path: Path,
) -> None:
    root = tmp_path / "vectors"
    for name in ("old-model", ".older-model.deleted"):
        (root / name).mkdir(parents=True)
        (root / name / "seg-0.npy").write_bytes(b"")
    (root / ACTIVE_MODEL_FILE).write_text("{}")
    serving = VectorStore(root, "new-model", 8)
    serving.directory.mkdir(parents=True, exist_ok=True)
    delete_other_models(serving)
    assert sorted(p.name for p in root.iterdir()) == sorted([ACTIVE_MODEL_FILE, "new-model"])

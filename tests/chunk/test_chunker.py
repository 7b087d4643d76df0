"""The chunker: definitions per language, Markdown sections, line windows, and no line lost."""

import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeweir.chunk.chunker import Budget, chunk_file, detect_language
from codeweir.chunk.version import CHUNKER_VERSION
from codeweir.errors import FileSkipped
from codeweir.records import KINDS, Chunk

DATA = Path(__file__).parents[1] / "data" / "chunk"


def check_chunks(text: str, chunks: list[Chunk], budget: Budget = Budget()) -> None:
    """The invariants every chunking keeps, whatever the input."""
    lines = text.split("\n")
    data = text.encode("utf-8")
    covered: set[int] = set()
    previous_start = 0
    for chunk in chunks:
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert chunk.start_line > previous_start, "chunks are in file order"
        previous_start = chunk.start_line
        assert chunk.content == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert data[chunk.start_byte : chunk.end_byte].decode("utf-8") == chunk.content
        assert chunk.content.split("\n")[0].strip() and chunk.content.split("\n")[-1].strip()
        assert chunk.kind in KINDS
        assert chunk.symbol_path.endswith(chunk.symbol)
        within = chunk.end_line - chunk.start_line < budget.max_lines and len(chunk.content) <= budget.max_chars
        assert within or chunk.start_line == chunk.end_line, "only a single overlong line may exceed the budget"
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    assert {row + 1 for row, line in enumerate(lines) if line.strip()} <= covered


def checked(path: str, text: str, **kwargs) -> list[Chunk]:
    """chunk_file's chunks, after checking its invariants on them."""
    chunks = chunk_file(path, text, **kwargs)
    check_chunks(text, chunks, kwargs.get("budget", Budget()))
    return chunks


def chunks_of(name: str) -> list[Chunk]:
    return checked(name, (DATA / name).read_text("utf-8"))


def outline(chunks: list[Chunk]) -> list[tuple[int, int, str, str]]:
    return [(c.start_line, c.end_line, c.kind, c.symbol_path) for c in chunks]


def test_python_class_header_methods_decorators_and_module_code():
    """A class's header holds its docstring and fields; comments and decorators above a method belong to it."""
    assert outline(chunks_of("server.py")) == [
        (1, 7, "text", ""),  # docstring, imports and two one-line constants, merged
        (10, 13, "class", "Server"),
        (15, 17, "method", "Server.__init__"),
        (19, 24, "method", "Server.handle"),  # from the comment, through @staticmethod
        (26, 27, "method", "Server.stop"),
        (29, 30, "class", "Server.Stats"),
        (32, 33, "method", "Server.Stats.bump"),
        (36, 38, "function", "serve_forever"),
        (41, 42, "text", ""),
    ]


def test_python_symbol_is_the_bare_name():
    handle = next(c for c in chunks_of("server.py") if c.symbol_path == "Server.handle")
    assert handle.symbol == "handle"
    assert handle.content.startswith("    # Connections are served one thread each.\n    @staticmethod\n")


def test_jsx_function_arrow_const_and_class_with_arrow_field():
    assert outline(chunks_of("TodoList.jsx")) == [
        (1, 3, "text", ""),
        (5, 12, "function", "TodoItem"),  # with its doc comment
        (14, 17, "function", "TodoList"),  # `export const TodoList = (...) => {...}`
        (19, 20, "class", "Store"),
        (22, 24, "method", "Store.add"),
        (26, 29, "method", "Store.toggle"),  # `toggle = (id) => {...}`, and the class's `}`
        (31, 31, "text", ""),
    ]
    assert detect_language("TodoList.jsx") == "jsx"


def test_javascript_class_and_functions():
    text = (
        "const path = require('path');\n\n"
        "function join(a, b) {\n  return path.join(a, b);\n}\n\n"
        "class Cache {\n  constructor() {\n    this.map = new Map();\n  }\n}\n\n"
        "module.exports = { join, Cache };\n"
    )
    chunks = checked("lib/util.js", text)
    assert outline(chunks) == [
        (1, 1, "const", "path"),
        (3, 5, "function", "join"),
        (7, 7, "class", "Cache"),
        (8, 11, "method", "Cache.constructor"),
        (13, 13, "text", ""),
    ]


def test_typescript_interface_type_enum_abstract_class_and_namespace():
    """Bodiless abstract members stay in their class's header; namespace members are its path."""
    assert outline(chunks_of("shapes.ts")) == [
        (1, 4, "interface", "Shape"),
        (6, 6, "type", "Point"),
        (8, 11, "enum", "Unit"),
        (13, 15, "class", "Base"),
        (17, 20, "method", "Base.describe"),
        (22, 23, "class", "Circle"),
        (25, 27, "method", "Circle.constructor"),
        (29, 32, "method", "Circle.area"),
        (34, 34, "module", "Geometry"),
        (35, 38, "function", "Geometry.distance"),
    ]


def test_tsx_component():
    assert outline(chunks_of("Counter.tsx")) == [
        (1, 1, "text", ""),
        (3, 3, "type", "CounterProps"),
        (5, 12, "function", "Counter"),
        (14, 14, "function", "Reset"),
    ]


def test_go_struct_interface_method_on_pointer_receiver_and_function():
    """Go methods take their receiver's type as path: `(s *Server) Handle` is Server.Handle."""
    assert outline(chunks_of("server.go")) == [
        (1, 6, "text", ""),
        (8, 12, "struct", "Server"),
        (14, 17, "interface", "Handler"),
        (19, 19, "const", "defaultMaxLine"),
        (21, 31, "method", "Server.Handle"),
        (33, 35, "function", "NewServer"),
    ]


def test_go_grouped_types_and_generic_receiver():
    text = "package p\n\ntype (\n\tA int\n\tB interface{ M() }\n)\n\nfunc (g *G[T]) Get() T { return g.v }\n"
    chunks = checked("p.go", text)
    assert outline(chunks) == [
        (1, 1, "text", ""),
        (3, 4, "type", "A"),  # `type (` leads into the group's first member
        (5, 6, "interface", "B"),
        (8, 8, "method", "G.Get"),
    ]


def test_rust_struct_trait_impls_and_fn():
    """Methods of `impl Point` and `impl fmt::Display for Point` are Point.method; attributes belong to their item."""
    chunks = chunks_of("shapes.rs")
    assert outline(chunks) == [
        (1, 1, "text", ""),
        (3, 8, "struct", "Point"),  # doc comment and #[derive] included
        (10, 12, "trait", "Shape"),  # its associated const and bodiless fn are its header
        (13, 16, "method", "Shape.describe"),
        (18, 18, "impl", "Point"),
        (19, 21, "method", "Point.new"),
        (23, 26, "method", "Point.distance"),
        (28, 28, "impl", "Point"),
        (29, 32, "method", "Point.fmt"),
        (34, 36, "function", "origin"),
    ]


def test_java_class_fields_and_methods():
    assert outline(chunks_of("Stack.java")) == [
        (1, 4, "text", ""),
        (6, 9, "class", "Stack"),
        (11, 14, "method", "Stack.push"),
        (16, 23, "method", "Stack.pop"),
    ]


def test_c_struct_and_functions():
    assert outline(chunks_of("list.c")) == [
        (1, 3, "text", ""),  # #include and #define merged
        (5, 9, "struct", "list"),
        (11, 19, "function", "grow"),
        (21, 26, "function", "list_push"),
    ]


def test_cpp_namespace_class_inline_method_and_out_of_line_definition():
    assert outline(chunks_of("widget.cpp")) == [
        (1, 1, "text", ""),
        (3, 3, "module", "ui"),
        (5, 8, "class", "ui.Widget"),
        (9, 9, "method", "ui.Widget.width"),
        (11, 14, "class", "ui.Widget"),
        (16, 16, "module", "ui"),
        (18, 20, "method", "ui.Widget.Widget"),
    ]


def test_c_header_guard_and_preprocessor_branches():
    """Definitions inside #ifndef/#ifdef blocks are found; the opening directive leads into the first."""
    text = (
        "#ifndef LIST_H\n#define LIST_H\n\n"
        "#ifdef _WIN32\nvoid list_sync(void) {\n  flush();\n}\n#else\nvoid list_sync(void) {}\n#endif\n\n#endif\n"
    )
    chunks = checked("list.h", text)
    assert outline(chunks) == [
        (1, 2, "const", "LIST_H"),
        (4, 7, "function", "list_sync"),
        (8, 9, "function", "list_sync"),
        (10, 12, "text", ""),
    ]


def test_markdown_sections_by_heading():
    """ATX and setext headings start sections; fenced code and front matter are not headings."""
    chunks = chunks_of("guide.md")
    assert outline(chunks) == [
        (1, 5, "text", ""),
        (7, 14, "section", "Install"),
        (16, 18, "section", "Install.From source"),
        (20, 23, "section", "Install.Usage"),
    ]
    assert [c.symbol for c in chunks] == ["", "Install", "From source", "Usage"]


def test_markdown_heading_on_the_first_line_and_nested_paths():
    text = "# Title\nIntro.\n\n## Part\nBody.\n\n### Detail\nMore.\n\n## Other\nEnd.\n"
    chunks = checked("doc.md", text)
    assert outline(chunks) == [
        (1, 2, "section", "Title"),
        (4, 5, "section", "Title.Part"),
        (7, 8, "section", "Title.Part.Detail"),
        (10, 11, "section", "Title.Other"),
    ]


def test_plain_text_is_one_window_when_small():
    assert outline(chunks_of("notes.txt")) == [(1, 4, "text", "")]


def test_long_text_becomes_overlapping_windows_cut_at_paragraphs():
    paragraphs = ["\n".join(f"paragraph {p} line {i} of some prose" for i in range(6)) for p in range(10)]
    text = "\n\n".join(paragraphs) + "\n"
    budget = Budget(max_chars=10_000, max_lines=15, overlap_lines=2)
    chunks = checked("notes.txt", text, budget=budget)
    assert len(chunks) > 1 and {c.kind for c in chunks} == {"text"}
    for before, after in zip(chunks, chunks[1:]):
        assert after.start_line == before.end_line - 1, "two lines of overlap"
    assert all(c.content.split("\n")[-1].endswith("line 5 of some prose") for c in chunks[:-1])


def test_oversized_definition_is_split_into_overlapping_pieces_only_the_first_named_as_it():
    body = "".join(f"        total += compute_step({i}, total)\n" for i in range(120))
    text = f"class Job:\n    def run(self):\n        total = 0\n{body}        return total\n"
    budget = Budget(max_chars=800, max_lines=30, overlap_lines=3)
    chunks = checked("job.py", text, budget=budget)
    pieces = [c for c in chunks if c.symbol_path == "Job.run"]
    assert len(pieces) >= 5
    # The piece holding `def run` is the definition; the later ones are its pieces: same path
    # and kind, no symbol, so a symbol search finds `run` once.
    assert (pieces[0].kind, pieces[0].symbol) == ("method", "run")
    assert {(c.kind, c.symbol) for c in pieces[1:]} == {("method", "")}
    assert pieces[0].start_line == 2 and pieces[-1].end_line == text.count("\n")
    for before, after in zip(pieces, pieces[1:]):
        assert after.start_line == before.end_line - 2, "three lines of overlap"


def test_single_overlong_line_stays_whole():
    line = "DATA = [" + ", ".join(str(i) for i in range(2000)) + "]"
    chunks = checked("data.py", f"import os\n{line}\n")
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 1), (2, 2)]


def test_tiny_constants_merge_up_to_the_budget():
    text = "".join(f"LIMIT_{i} = {i}\n" for i in range(100))
    budget = Budget(max_chars=300, min_chars=200)
    chunks = checked("limits.py", text, budget=budget)
    assert 5 <= len(chunks) <= 10
    assert all(c.kind == "const" for c in chunks)
    assert chunks[1].symbol == f"LIMIT_{chunks[1].start_line - 1}", "a merged chunk is named after its first member"


def test_tiny_functions_keep_a_chunk_each():
    text = "".join(f"def get_{i}():\n    return {i}\n\n" for i in range(5))
    chunks = chunk_file("getters.py", text)
    assert [c.symbol for c in chunks] == [f"get_{i}" for i in range(5)]


def test_closing_brace_joins_the_chunk_before_it():
    text = "class A {\n  int x;\n\n  void f() {\n    x++;\n  }\n\n}\n"
    chunks = checked("A.java", text)
    assert outline(chunks) == [(1, 2, "class", "A"), (4, 8, "method", "A.f")]


def test_one_line_container_stays_whole():
    chunks = chunk_file("p.rs", "impl Point { fn new() -> Self { Point } }\n")
    assert outline(chunks) == [(1, 1, "impl", "Point")]


def test_empty_and_blank_files_have_no_chunks():
    assert chunk_file("empty.py", "") == []
    assert chunk_file("blank.md", "\n  \n\t\n") == []


def test_syntax_errors_still_give_chunks_covering_every_line():
    text = "def ok():\n    return 1\n\ndef broken(:\n    pass\n\nclass C:\n    def m(self):\n        return )\n"
    chunks = checked("broken.py", text)
    assert "ok" in {c.symbol for c in chunks}


def test_absurdly_deep_nesting_falls_back_to_line_windows():
    depth = 600
    text = "".join(f"#ifdef X{i}\n" for i in range(depth)) + "int f(void) { return 0; }\n" + "#endif\n" * depth
    chunks = checked("deep.h", text)
    assert {c.kind for c in chunks} == {"text"}


def test_language_argument_overrides_the_file_name():
    chunks = chunk_file("script", "def main():\n    pass\n", language="python")
    assert outline(chunks) == [(1, 2, "function", "main")]


def test_unknown_language_gets_line_windows():
    text = "fn main() {\n}\n"
    assert outline(chunk_file("x.zig", text)) == [(1, 2, "text", "")]
    assert outline(chunk_file("x.rs", text, language="cobol")) == [(1, 2, "text", "")]


def test_crlf_and_non_ascii_text_keep_exact_content_and_byte_offsets():
    text = "# Größe\r\ndef größe(x):\r\n    return 'µ' * x\r\n"
    chunks = checked("units.py", text)
    assert outline(chunks) == [(1, 3, "function", "größe")]


def test_text_that_is_not_utf8_encodable_is_a_skipped_file():
    with pytest.raises(FileSkipped, match=r"bad\.py: text cannot be encoded as UTF-8"):
        chunk_file("bad.py", "x = '\udcff'\n")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_chars": 0}, "Budget.max_chars must be an integer >= 1, got 0"),
        ({"overlap_lines": -1}, "Budget.overlap_lines must be an integer >= 0"),
        ({"min_chars": 500, "max_chars": 400}, r"Budget.min_chars \(500\) must not exceed max_chars \(400\)"),
        ({"max_lines": 3, "overlap_lines": 3}, r"Budget.overlap_lines \(3\) must be less than max_lines \(3\)"),
    ],
)
def test_bad_budget_names_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        Budget(**fields)


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a/b/server.py", "python"),
        ("types.pyi", "python"),
        ("app.mjs", "javascript"),
        ("App.JSX", "jsx"),
        ("index.d.ts", "typescript"),
        ("App.tsx", "tsx"),
        ("main.go", "go"),
        ("lib.rs", "rust"),
        ("Main.java", "java"),
        ("list.h", "c"),
        ("widget.hpp", "cpp"),
        ("README.md", "markdown"),
        ("package.json", "json"),
        (".github/ci.yml", "yaml"),
        ("pyproject.toml", "toml"),
        ("build.sh", "shell"),
        ("Makefile", "makefile"),
        ("Dockerfile", "dockerfile"),
        ("LICENSE", "text"),
        ("photo.jpeg", None),
        ("noextension", None),
    ],
)
def test_detect_language(path, language):
    assert detect_language(path) == language


def test_chunks_survive_pickling_for_worker_processes():
    chunks = chunks_of("server.go")
    assert pickle.loads(pickle.dumps(chunks)) == chunks
    assert isinstance(CHUNKER_VERSION, int)


# --- the coverage property ------------------------------------------------------------

_FRAGMENTS = [
    "def f(x):", "    return x", "class C(Base):", "    def m(self):", "        pass", "@decorator",
    "# comment", '"""doc"""', "X = 1", "import os", "", "   ", "}", "{", ");", "fn main() {",
    "impl Foo {", "func (s *S) Run() {", "type T struct {", "#ifdef X", "#endif", "int f(void);",
    "export const g = () => {", "# Heading", "Setext", "---", "```", "    x = [1,", "µ ünïcode ✓",
    "\t", "\r", "if __name__ == '__main__':",
]  # fmt: skip
_LANGUAGES = ["python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "markdown", "text"]

code_like = st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map("\n".join)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
budgets = st.builds(
    lambda max_chars, max_lines, overlap: Budget(
        max_chars=max_chars, max_lines=max_lines, min_chars=max_chars // 4, overlap_lines=min(overlap, max_lines - 1)
    ),
    st.integers(1, 400),
    st.integers(1, 30),
    st.integers(0, 4),
)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(code_like, any_text), language=st.sampled_from(_LANGUAGES), budget=budgets)
def test_every_non_blank_line_is_in_a_chunk_whatever_the_input(text, language, budget):
    """Ranges lie within the file, content is exactly those lines, byte offsets match, and it is deterministic."""
    chunks = checked("file", text, language=language, budget=budget)
    assert chunk_file("file", text, language=language, budget=budget) == chunks


MODEL = '''\
class Model(AltersData, metaclass=ModelBase):
    """The base class of every model."""

    def __init__(self, *args, **kwargs):
        self._state = ModelState()
        super().__init__()

    def _get_pk_val(self, meta=None):
        meta = meta or self._meta
        return getattr(self, meta.pk.attname)

    def _set_pk_val(self, value):
        for parent_link in self._meta.parents.values():
            if parent_link and parent_link != self._meta.pk:
                setattr(self, parent_link.target_field.attname, value)
        return setattr(self, self._meta.pk.attname, value)

    pk = property(_get_pk_val, _set_pk_val)

    # Saving: save() validates its arguments and hands over to save_base(), which sends the
    # signals around the actual write.

    def save(self, force_insert=False, force_update=False, using=None, update_fields=None):
        self._prepare_related_fields_for_save(operation_name="save")
        using = using or router.db_for_write(self.__class__, instance=self)
        self.save_base(using=using, force_insert=force_insert, force_update=force_update)

    save.alters_data = True

    @property
    def _base_manager(cls):
        return cls._meta.base_manager
'''


def test_a_class_cut_into_pieces_names_only_the_piece_holding_its_class_line():
    chunks = checked("django/db/models/base.py", MODEL)
    named = [(c.symbol_path, c.kind) for c in chunks if c.symbol]
    assert named.count(("Model", "class")) == 1
    (definition,) = [c for c in chunks if c.symbol == "Model"]
    assert definition.content.startswith("class Model(")
    # The class's other lines are its pieces: its path and kind, no symbol of their own.
    for line in ("pk = property(_get_pk_val, _set_pk_val)", "save.alters_data = True"):
        (piece,) = [c for c in chunks if line in c.content and c.symbol_path == "Model"]
        assert (piece.symbol, piece.kind) == ("", "class")
    assert [c.symbol for c in chunks if c.symbol_path == "Model.save"] == ["save"]


def test_comment_lines_carry_no_symbol():
    chunks = checked("django/db/models/base.py", MODEL)
    (comment,) = [c for c in chunks if "# Saving:" in c.content]
    assert comment.symbol == "" and "def save" not in comment.content
    # A doc comment too long for one chunk: its first window holds no definition line.
    doc = "".join(f"// NewReader returns a new Reader whose buffer has the default size ({i}).\n" for i in range(60))
    text = f"package bufio\n\n{doc}func NewReader(rd io.Reader) *Reader {{\n\treturn NewReaderSize(rd, defaultBufSize)\n}}\n"
    chunks = checked("bufio/bufio.go", text)
    windows = [c for c in chunks if c.symbol_path == "NewReader"]
    assert len(windows) >= 2
    assert [c.symbol for c in windows if "func NewReader" in c.content][:1] == ["NewReader"]
    assert all(c.symbol == "" for c in windows if "func NewReader" not in c.content)
    assert sum(c.symbol == "NewReader" for c in chunks) == 1


def test_a_decorated_definition_is_named_by_the_piece_holding_its_def_line():
    decorators = "".join(f"    @register_lookup(Lookup{i})\n" for i in range(60))
    text = f"class Field:\n    x = 1\n\n{decorators}    def get_lookup(self, name):\n        return None\n"
    chunks = checked("django/db/models/fields/__init__.py", text)
    (named,) = [c for c in chunks if c.symbol == "get_lookup"]
    assert "def get_lookup" in named.content

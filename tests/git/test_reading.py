import pytest

from codeweir.errors import RequestError
from codeweir.git.reading import read_text, read_whole_text
from tests.gitrepo import make_repo

TEXTS = {"none.txt": "", "one.txt": "a\n", "two.txt": "a\n\n", "open.txt": "a\nb", "bad.txt": b"caf\xe9\n"}


def test_a_files_whole_text_is_its_lines_joined_whatever_its_last_newlines(tmp_path):
    repo = make_repo(tmp_path / "r", TEXTS)
    for name in TEXTS:
        assert read_whole_text(repo.config(), name) == "\n".join(read_text(repo.config(), name).lines)


def test_a_binary_file_has_no_whole_text_either(tmp_path):
    repo = make_repo(tmp_path / "r", {"logo.png": b"\x89PNG\0"})
    with pytest.raises(RequestError, match="binary"):
        read_whole_text(repo.config(), "logo.png")

"""A .bin that is no pickle, or a cut-short one, is named for what it is.

Before, a text file given as ``.bin`` was reported as 'the pickle asks for an object (opcode OBJ)'
(its letters read as pickle opcodes), as if it were a malicious pickle.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from disk_helpers import assert_clean_failure, run_cli

from facelivt.errors import FaceLiVTError
from facelivt.evaluation import NotAPickleError, UnsafePickleError, read_bin, safe_loads

FACE = next((Path(__file__).resolve().parents[2].parent / "shared" / "data" / "celeba_subset").rglob("*.jpg"))


@pytest.mark.parametrize(
    "data",
    [b"hello world, these are my notes\n", b"path_a path_b 1\npath_c path_d 0\n", FACE.read_bytes(), b"\x00\x01\x02"],
    ids=["text", "pairs list", "jpeg", "binary"],
)
def test_not_a_pickle(tmp_path, data):
    path = tmp_path / "set.bin"
    path.write_bytes(data)
    with pytest.raises(NotAPickleError) as err:
        read_bin(path)
    assert str(err.value) == (f"{path} is not a pickle file (a verification .bin is a pickle and starts with "
                              f"the protocol byte 0x80; this file starts with {data[:16]!r})")
    assert isinstance(err.value, FaceLiVTError) and isinstance(err.value, ValueError)
    assert not isinstance(err.value, UnsafePickleError)


def test_truncated_pickle(tmp_path):
    good = pickle.dumps(([b"a" * 300, b"b" * 300], [True]), protocol=4)
    path = tmp_path / "cut.bin"
    path.write_bytes(good[:400])
    with pytest.raises(ValueError, match=rf"^{path} is a pickle that is truncated or corrupt \(400 bytes; .+\): copy "
                                         r"or download it again, or rebuild it with `facelivt make-bin`$"):
        read_bin(path)


def test_protocol_0_pickles_are_still_read_and_still_checked():
    """Protocol 0/1 streams carry no 0x80 marker: they are told from text by parsing up to STOP."""
    assert safe_loads(b"((lp0\nS'ab'\np1\naS'cd'\np2\na(lp3\nI01\natp4\n.") == ([b"ab", b"cd"], [True])
    with pytest.raises(UnsafePickleError, match="the global 'os.system'"):
        safe_loads(b"cos\nsystem\n(S'echo hi'\ntR.")


def test_eval_on_a_text_file(tmp_path):
    (tmp_path / "lfw.bin").write_text("not a verification set\n")
    proc = run_cli("eval", "--model", "facelivt_s", "--bin", str(tmp_path / "lfw.bin"), "--device", "cpu",
                   "--out", str(tmp_path / "out"), "--quiet", timeout=300)
    assert_clean_failure(proc)
    assert f"facelivt eval: error: {tmp_path / 'lfw.bin'} is not a pickle file" in proc.stderr
    assert "opcode" not in proc.stderr

"""``facelivt serve keys create|list|revoke`` (issue 24, item 4): the token is printed once, never listed;
revoked keys stay listed; bad input is one error line and exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gallery_helpers import child_env
from facelivt.cli import main
from facelivt.serve.keys import KeyStore


def _keys(tmp_path) -> str:
    return str(tmp_path / "keys.sqlite")


def _create(keys: str, capsys, *extra: str) -> dict:
    assert main(["serve", "keys", "create", "--name", "kiosk", "--keys", keys, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_create_prints_the_token_once_with_a_note(tmp_path, capsys):
    keys = _keys(tmp_path)
    assert main(["serve", "keys", "create", "--name", "front desk", "--scope", "write", "--gallery", "staff",
                 "--keys", keys]) == 0
    out, err = capsys.readouterr()
    token = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("token: "))
    key = KeyStore(keys).check(token)
    assert (key.name, key.scope, key.gallery) == ("front desk", "write", "staff")
    assert key.id in out and "cannot be shown again" in err
    assert main(["serve", "keys", "list", "--keys", keys]) == 0
    out, err = capsys.readouterr()
    assert key.id in out and "front desk" in out and "active" in out
    assert token.split("_", 2)[2] not in out + err


def test_create_list_revoke_as_json(tmp_path, capsys):
    keys = _keys(tmp_path)
    reader = _create(keys, capsys)
    writer = _create(keys, capsys, "--scope", "write")
    assert reader["scope"] == "read" and reader["gallery"] is None and writer["scope"] == "write"
    assert KeyStore(keys).check(reader["token"]).id == reader["id"]
    assert main(["serve", "keys", "revoke", reader["id"], "--keys", keys, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked"] is True
    assert main(["serve", "keys", "list", "--keys", keys, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [(k["id"], k["revoked"]) for k in listed] == [(reader["id"], True), (writer["id"], False)]
    assert all("token" not in k and "secret" not in json.dumps(k) for k in listed)
    assert KeyStore(keys).check(reader["token"]) is None and KeyStore(keys).check(writer["token"]) is not None


def test_list_of_a_missing_store_is_empty_and_says_the_server_needs_no_key(tmp_path, capsys):
    keys = _keys(tmp_path)
    assert main(["serve", "keys", "list", "--keys", keys]) == 0
    assert "127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "keys.sqlite").exists()


@pytest.mark.parametrize("args, message", [
    (["revoke", "0123456789ab"], "no API key '0123456789ab'"),
    (["revoke", "nope"], "no API key 'nope'"),
    (["create", "--name", "a", "--gallery", "../x"], "invalid gallery name"),
    (["create", "--name", ""], "invalid key name"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, args, message):
    keys = _keys(tmp_path)
    _create(keys, capsys)
    before = (tmp_path / "keys.sqlite").read_bytes()
    assert main(["serve", "keys", *args, "--keys", keys]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facelivt serve: error: ") and message in err and len(err.splitlines()) == 1
    assert (tmp_path / "keys.sqlite").read_bytes() == before


def test_an_unknown_scope_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "keys", "create", "--name", "a", "--scope", "admin", "--keys", _keys(tmp_path)])
    assert info.value.code == 2 and "invalid choice: 'admin'" in capsys.readouterr().err


def test_a_file_that_is_not_a_key_store_is_refused(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello " * 200)
    for action in (["list"], ["create", "--name", "a"]):
        assert main(["serve", "keys", *action, "--keys", str(notes)]) == 2
        assert "not a facelivt key store" in capsys.readouterr().err
    assert notes.read_text() == "hello " * 200


def test_the_default_store_is_in_facelivt_home(tmp_path):
    """A real process with FACELIVT_HOME set: the key goes to FACELIVT_HOME/serve-keys.sqlite."""
    env = {**child_env(), "FACELIVT_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "facelivt", "serve", "keys", "create", "--name", "ci", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    made = json.loads(proc.stdout)
    path = tmp_path / "home" / "serve-keys.sqlite"
    assert made["keys"] == str(path)
    assert KeyStore(path).check(made["token"]).id == made["id"]

"""The service's audit log (issue 24, item 4): one JSON line per enrol / rename / delete, appended whole
even when several processes write at once, and one log line; never a secret."""
from __future__ import annotations

import datetime
import json
import logging
import os
import stat

import pytest

from gallery_helpers import read_only, run_together
from facelivt.errors import InvalidInputError, OutputWriteError
from facelivt.serve.audit import FIELDS, REDACTED, AuditLog, AuditLogWriteError
from facelivt.serve.keys import KeyStore


def _lines(path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_record_is_one_json_line_with_the_time_key_action_gallery_identity_and_extras(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.record(key_id="0123456789ab", action="enroll", gallery="staff", identity="Ada Lovelace", added=3)
        log.record(key_id=None, action="rename", gallery="staff", identity="Ada Lovelace", new_name="Ada")
    first, second = _lines(path)
    assert list(first) == [*FIELDS, "added"]
    assert first["key_id"] == "0123456789ab" and first["action"] == "enroll" and first["added"] == 3
    assert (first["gallery"], first["identity"]) == ("staff", "Ada Lovelace")
    when = datetime.datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert first["time"].endswith("Z") and when.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 600
    assert second["key_id"] is None and second["new_name"] == "Ada"


def test_each_record_is_also_one_log_line(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="facelivt.serve.audit"):
        AuditLog(None).record(key_id="0123456789ab", action="delete", gallery="staff", identity="Bob", embeddings=4)
    records = [r for r in caplog.records if r.name == "facelivt.serve.audit"]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    message = records[0].getMessage()
    assert "\n" not in message
    for word in ("delete", "staff", "Bob", "0123456789ab", "embeddings=4"):
        assert word in message


def test_without_a_file_nothing_is_written(tmp_path, monkeypatch):
    before = sorted(os.listdir(tmp_path))
    monkeypatch.chdir(tmp_path)
    AuditLog(None).record(key_id=None, action="enroll", gallery="g", identity="x")
    assert sorted(os.listdir(tmp_path)) == before


def test_a_key_token_never_reaches_the_log(tmp_path, caplog):
    _, token = KeyStore(tmp_path / "keys.sqlite").create("a", scope="write")
    path = tmp_path / "audit.jsonl"
    with caplog.at_level(logging.INFO, logger="facelivt.serve.audit"), AuditLog(path) as log:
        log.record(key_id=token.split("_")[1], action="enroll", gallery="g", identity=f"x {token}",
                   header=f"Bearer {token}", files=[token, "a.jpg"], more={"key": token})
    text = path.read_text(encoding="utf-8")
    logged = " ".join(r.getMessage() for r in caplog.records)
    secret = token.split("_", 2)[2]
    assert secret not in text and secret not in logged
    line = _lines(path)[0]
    assert line["header"] == f"Bearer {REDACTED}" and line["files"] == [REDACTED, "a.jpg"]
    assert line["more"] == {"key": REDACTED} and line["identity"] == f"x {REDACTED}"


def test_a_new_log_file_is_readable_by_its_owner_only_and_an_old_one_is_appended_to(tmp_path):
    path = tmp_path / "logs" / "audit.jsonl"
    old = os.umask(0)
    try:
        AuditLog(path).record(key_id=None, action="enroll", gallery="g", identity="a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    AuditLog(path).record(key_id=None, action="delete", gallery="g", identity="a")
    assert [line["action"] for line in _lines(path)] == ["enroll", "delete"]


def test_extras_may_not_replace_the_fields(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(InvalidInputError, match="time"):
        log.record(key_id=None, action="enroll", gallery="g", identity="a", time="yesterday")
    assert (tmp_path / "audit.jsonl").read_text() == ""


def test_a_folder_is_not_a_log_file(tmp_path):
    with pytest.raises(InvalidInputError, match="is a folder"):
        AuditLog(tmp_path)


def test_a_log_that_cannot_be_written_fails_at_once(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(AuditLogWriteError) as info:
        AuditLog(tmp_path / "plain" / "audit.jsonl")
    assert isinstance(info.value, OutputWriteError) and "cannot write" in str(info.value)
    with read_only(tmp_path) as view:
        with pytest.raises(AuditLogWriteError, match="audit.jsonl"):
            AuditLog(view / "audit.jsonl")


WRITE_RECORDS = r"""
import sys
from facelivt.serve.audit import AuditLog
log = AuditLog(sys.argv[1])
who, n = sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    # lines of 100 B to 20 KB: far past stdio's and the pipe's buffer sizes
    log.record(key_id=None, action="enroll", gallery="g", identity=f"{who}-{i}", note=who[-1] * (100 + (i * 997) % 20000))
"""


def test_processes_writing_at_once_leave_whole_parseable_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    n, each = 4, 300
    run_together(WRITE_RECORDS, [[str(path), f"p{i}", str(each)] for i in range(n)])
    lines = _lines(path)
    assert sorted(line["identity"] for line in lines) == sorted(f"p{i}-{j}" for i in range(n) for j in range(each))
    for line in lines:
        who, i = line["identity"].split("-")
        assert line["note"] == who[-1] * (100 + (int(i) * 997) % 20000)

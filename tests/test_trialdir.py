"""sweeps/trialdir.py: the layout's writers under concurrent writers."""

from __future__ import annotations

import json
import threading

from sweeps.trialdir import STATUS_FILE, atomic_write_json, read_status


def test_two_writers_of_one_status_file_never_collide(tmp_path):
    # a trial marking itself interrupted while the sweep runner does the same: before the
    # temporary files were named per writer, one rename found the other's .tmp gone
    path = tmp_path / STATUS_FILE
    errors: list[BaseException] = []

    def write(who: str) -> None:
        try:
            for i in range(200):
                atomic_write_json(path, {"state": "interrupted", "writer": who, "i": i})
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in ("trial", "runner")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    status = json.loads(path.read_text())  # whole, one writer's last write
    assert status["writer"] in ("trial", "runner") and status["i"] == 199
    assert read_status(tmp_path) == status
    assert [p.name for p in tmp_path.iterdir()] == [STATUS_FILE]  # no temporary files left


def test_read_status_of_a_missing_or_damaged_file_is_empty(tmp_path):
    assert read_status(tmp_path) == {}
    (tmp_path / STATUS_FILE).write_text('{"state": "runn')  # half a file
    assert read_status(tmp_path) == {}
    (tmp_path / STATUS_FILE).write_text("[1, 2]")  # JSON, but not a status
    assert read_status(tmp_path) == {}

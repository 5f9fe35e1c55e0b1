"""find_emulator: the Pub/Sub emulator beside the gcloud on PATH is found without running gcloud;
`gcloud info` is asked only for another layout."""

import os
import stat

from tests.contract.fakes.emulator import RELATIVE, find_emulator


def _executable(path, text="#!/bin/sh\nexit 0\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _sdk_on_path(tmp_path, monkeypatch, *, sdk_root_answer=""):
    """A fake SDK whose gcloud, reached through a link on PATH, records each call and prints
    `sdk_root_answer` as `gcloud info` would."""
    calls = tmp_path / "gcloud-calls"
    gcloud = _executable(
        tmp_path / "sdk" / "bin" / "gcloud", f'#!/bin/sh\necho "$@" >> {calls}\necho {sdk_root_answer}\n'
    )
    links = tmp_path / "links"
    links.mkdir()
    (links / "gcloud").symlink_to(gcloud)
    monkeypatch.delenv("PUBSUB_EMULATOR_BIN", raising=False)
    monkeypatch.setenv("PATH", f"{links}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return calls


def test_the_emulator_beside_the_linked_gcloud_is_found_without_running_it(tmp_path, monkeypatch):
    calls = _sdk_on_path(tmp_path, monkeypatch)
    emulator = _executable(tmp_path / "sdk" / RELATIVE)
    assert find_emulator() == str(emulator)
    assert not calls.exists()


def test_gcloud_info_names_the_root_of_another_layout(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    emulator = _executable(elsewhere / RELATIVE)
    calls = _sdk_on_path(tmp_path, monkeypatch, sdk_root_answer=str(elsewhere))
    assert find_emulator() == str(emulator)
    assert "info" in calls.read_text()

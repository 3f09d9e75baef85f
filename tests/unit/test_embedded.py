"""The Redis the project starts (local run, tests) keeps its data and never evicts it."""

from __future__ import annotations

from pathlib import Path

from backend.embedded import redis_command


def test_redis_keeps_an_append_only_file_fsynced_every_second(tmp_path: Path) -> None:
    command = " ".join(redis_command(6390, tmp_path))
    assert f"--dir {tmp_path}" in command
    assert "--appendonly yes" in command and "--appendfsync everysec" in command


def test_redis_refuses_writes_when_full_rather_than_evict_queue_data(tmp_path: Path) -> None:
    command = " ".join(redis_command(6390, tmp_path, maxmemory="256mb"))
    assert "--maxmemory 256mb" in command and "--maxmemory-policy noeviction" in command
    assert "--bind 127.0.0.1" in command

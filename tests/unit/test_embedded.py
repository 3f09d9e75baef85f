"""The Redis the project starts (local run, tests) keeps its data and never evicts it."""

from __future__ import annotations

from pathlib import Path

from backend.local.embedded import redis_command


def test_redis_keeps_an_append_only_file_fsynced_every_second(tmp_path: Path) -> None:
    command = " ".join(redis_command(6390, tmp_path))
    assert f"--dir {tmp_path}" in command
    assert "--appendonly yes" in command and "--appendfsync everysec" in command


def test_redis_refuses_writes_when_full_rather_than_evict_queue_data(tmp_path: Path) -> None:
    command = " ".join(redis_command(6390, tmp_path, maxmemory="256mb"))
    assert "--maxmemory 256mb" in command and "--maxmemory-policy noeviction" in command
    assert "--bind 127.0.0.1" in command


def test_the_local_run_makes_data_dir_private_and_fixes_older_files(tmp_path: Path) -> None:
    from backend.local.supervisor import private_data_dir

    data = tmp_path / "data"
    (data / "mongo").mkdir(parents=True)
    (data / "redis" / "appendonlydir").mkdir(parents=True)
    loose = [data / "secrets.json", data / "api.log", data / "nx-27017.pid",
             data / "mongo" / "taskbroker.db", data / "redis" / "appendonlydir" / "a.aof"]
    for path in loose:
        path.write_text("x")
        path.chmod(0o644)
    for directory in (data, data / "mongo", data / "redis", data / "redis" / "appendonlydir"):
        directory.chmod(0o755)
    other = data / "notes.txt"  # DATA_DIR may hold other things: left as they are
    other.write_text("x")
    other.chmod(0o644)
    private_data_dir(data)
    assert data.stat().st_mode & 0o777 == 0o700
    for path in loose:
        assert path.stat().st_mode & 0o777 == 0o600, path
    for directory in (data / "mongo", data / "redis", data / "redis" / "appendonlydir"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert other.stat().st_mode & 0o777 == 0o644

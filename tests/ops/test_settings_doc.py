"""docs/settings.md lists every setting of backend/settings.py, once, with the code's default
(the value .env.example gives it) and its description, and nothing else."""

from __future__ import annotations

from backend.settings import setting_names
from tests.ops.settings_files import (
    ENV_EXAMPLE,
    SETTINGS_DOC,
    default_of,
    field_of,
    parse_env_file,
    parse_settings_tables,
    render_default,
)

FIX = "(python -m tests.ops.settings_files --docs renders the tables afresh)"


def test_settings_doc_has_a_row_for_every_setting_in_the_code_order() -> None:
    names = [name for name, _, _ in parse_settings_tables(SETTINGS_DOC.read_text())]
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"listed twice: {twice} {FIX}"
    assert names == setting_names(), (
        f"missing: {sorted(set(setting_names()) - set(names))}; "
        f"not a setting: {sorted(set(names) - set(setting_names()))} {FIX}")


def test_each_row_shows_the_code_default_and_the_env_example_value() -> None:
    env = parse_env_file(ENV_EXAMPLE.read_text())
    for name, default, meaning in parse_settings_tables(SETTINGS_DOC.read_text()):
        assert default == render_default(default_of(name)), f"{name}: {default} {FIX}"
        value = default.strip("`") if default != "empty" else ""
        assert value == env[name][0], f"{name}: docs {value!r}, .env.example {env[name][0]!r}"
        cls, field = field_of(name)
        assert meaning == cls.model_fields[field].description, f"{name}: {meaning!r} {FIX}"

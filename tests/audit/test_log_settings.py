"""Log settings: the deprecated GENESIS_LOG_DAILY_BACKUPS, the format choices."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from genesis.config import Settings


def test_the_old_daily_backups_variable_warns_and_zero_still_means_no_day_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENESIS_LOG_DAILY_BACKUPS", "0")
    with pytest.warns(FutureWarning, match="GENESIS_LOG_DAILY_BACKUPS is deprecated.*LOG_ROTATE_DAILY=false"):
        settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.log_rotate_daily is False
    monkeypatch.setenv("GENESIS_LOG_DAILY_BACKUPS", "30")
    with pytest.warns(FutureWarning, match="the value is ignored"):
        settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.log_rotate_daily is True


def test_defaults_rotate_by_size_and_day_with_both_caps(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert (settings.log_rotate_daily, settings.log_file_backups, settings.log_file_max_total_bytes) == (
        True, 30, 1024**3)  # fmt: skip
    assert (settings.log_format, settings.log_console_format) == ("json", "auto")


@pytest.mark.parametrize(("name", "value"), [("GENESIS_LOG_FORMAT", "xml"), ("GENESIS_LOG_CONSOLE_FORMAT", "tty"),
                                             ("GENESIS_LOG_FILE_MAX_TOTAL_BYTES", "-1")])
def test_bad_log_settings_are_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("GENESIS_").lower()):
        Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]

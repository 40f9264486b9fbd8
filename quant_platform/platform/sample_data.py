"""Where the real vendor sample files live: the package's own `sample_data/` folder, or QP_SAMPLE_DATA.

Never read anything outside the package by default, and never write into the sample folder: its files are
vendor bytes kept verbatim (origins and licences in sample_data/SOURCES.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from quant_platform.errors import ConfigError

SAMPLE_DATA_ENV = "QP_SAMPLE_DATA"
PACKAGED_SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


class SampleDataNotFoundError(ConfigError):
    """The sample data folder (or a file the caller needs in it) is missing."""


def sample_data_dir(override: Path | str | None = None) -> Path:
    """The folder holding eia/, cftc/ and ticks/: `override`, else $QP_SAMPLE_DATA, else the packaged copy."""
    if override is not None:
        chosen, named_by = Path(override).expanduser(), "the given data folder"
    elif os.environ.get(SAMPLE_DATA_ENV, "").strip():
        chosen, named_by = Path(os.environ[SAMPLE_DATA_ENV].strip()).expanduser(), SAMPLE_DATA_ENV
    else:
        chosen, named_by = PACKAGED_SAMPLE_DATA, "the installed package"
    if not chosen.is_dir():
        raise SampleDataNotFoundError(
            f"sample data folder {chosen} ({named_by}) does not exist; set {SAMPLE_DATA_ENV} to a folder "
            "with eia/, cftc/ and ticks/ (see quant_platform/sample_data/SOURCES.md)")
    return chosen


def sample_file(relative: str, override: Path | str | None = None) -> Path:
    """One sample file by its path relative to the sample folder; a clear error when it is missing."""
    folder = sample_data_dir(override)
    path = folder / relative
    if not path.is_file():
        raise SampleDataNotFoundError(
            f"sample file {relative} is missing from {folder}; {SAMPLE_DATA_ENV} must name a folder laid out "
            "like quant_platform/sample_data (see its SOURCES.md)")
    return path

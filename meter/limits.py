"""Size bounds on the text a user gives a run, checked at the API so that the ledger and
every report stay small and fast (a 1 MB run name made `joulemeter runs` take 17 s).

The bounds are generous for what each field is for, far below what hurts:
- a name (run, project, window, unit of work): 256 characters, more than a filesystem
  allows a file name (NAME_MAX 255 bytes on ext4, XFS, APFS) and several lines of a report;
- a tag: 128 characters, a label rather than a description; at most 64 tags per run;
- metadata: 64 KiB as JSON, room for a model's whole hyperparameter set, while a dataset
  or a tokenizer vocabulary belongs in a file the metadata points to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from joulemeter.meter.errors import InputLimitError

NAME_MAX_CHARS = 256
TAG_MAX_CHARS = 128
TAGS_MAX = 64
METADATA_MAX_BYTES = 64 * 1024


def check_name(value: object, parameter: str, max_chars: int = NAME_MAX_CHARS) -> str:
    """`value` if it is a string of at most `max_chars` characters, else InputLimitError naming `parameter`."""
    if not isinstance(value, str):
        raise InputLimitError(f"{parameter} must be a string, got {type(value).__name__}", parameter=parameter)
    if len(value) > max_chars:
        raise InputLimitError(
            f"{parameter} is {len(value):,} characters long; the limit is {max_chars:,}. "
            "Shorten it and keep longer descriptions in the run's metadata.",
            parameter=parameter,
        )
    return value


def check_tags(tags: Sequence[object]) -> list[str]:
    """The tags as a list, if there are at most TAGS_MAX of TAG_MAX_CHARS each, else InputLimitError."""
    if isinstance(tags, str):
        raise InputLimitError(f"tags must be a list of strings, got the string {tags[:40]!r}", parameter="tags")
    tags = list(tags)
    if len(tags) > TAGS_MAX:
        raise InputLimitError(f"{len(tags):,} tags; the limit is {TAGS_MAX}", parameter="tags")
    return [check_name(tag, "tags", TAG_MAX_CHARS) for tag in tags]


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata as a dict, if it is at most METADATA_MAX_BYTES as JSON, else InputLimitError."""
    size = len(json.dumps(metadata, default=str).encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise InputLimitError(
            f"metadata is {size:,} bytes as JSON; the limit is {METADATA_MAX_BYTES:,}. "
            "Store large values in a file and put its path in the metadata.",
            parameter="metadata",
        )
    return dict(metadata)


def check_run_fields(
    name: object, project: object, tags: Sequence[object], metadata: Mapping[str, Any]
) -> None:
    """Every bound on what a run is given (name, project, tags, metadata), in that order."""
    check_name(name, "name")
    check_name(project, "project")
    check_tags(tags)
    check_metadata(metadata)

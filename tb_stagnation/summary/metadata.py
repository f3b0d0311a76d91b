"""Summary metadata of the `stagnation` plugin: building it and parsing it.

Every value we write carries `plugin_data.plugin_name == "stagnation"`, an
explicit `data_class` (TensorBoard fills it only for its built-in plugins; data
without one is invisible) and a JSON `content` with the format version, so a
later reader can migrate old runs (FORMAT.md, "Versions").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tensorboard.compat.proto import summary_pb2

PLUGIN_NAME = "stagnation"

# Bump when the meaning of an existing tag changes. Readers accept every
# version up to this one and read the known fields of newer ones.
FORMAT_VERSION = 1

KIND_SCALAR = "scalar"
KIND_LAYER_STAT = "layer_stat"
KIND_CLASS_COUNTS = "class_counts"
KIND_MODEL_CARD = "model_card"
KIND_PREFLIGHT = "preflight"
KIND_LR_RANGE = "lr_range"

_DATA_CLASS_OF_KIND = {
    KIND_SCALAR: summary_pb2.DATA_CLASS_SCALAR,
    KIND_LAYER_STAT: summary_pb2.DATA_CLASS_TENSOR,
    KIND_CLASS_COUNTS: summary_pb2.DATA_CLASS_TENSOR,
    KIND_MODEL_CARD: summary_pb2.DATA_CLASS_TENSOR,
    KIND_PREFLIGHT: summary_pb2.DATA_CLASS_TENSOR,
    KIND_LR_RANGE: summary_pb2.DATA_CLASS_TENSOR,
}


@dataclass(frozen=True)
class PluginContent:
    """The parsed `plugin_data.content` of one tag."""

    version: int
    kind: str

    @property
    def is_newer_than_reader(self) -> bool:
        return self.version > FORMAT_VERSION


def create_summary_metadata(kind: str) -> summary_pb2.SummaryMetadata:
    """Metadata for a value of the given kind (one of the KIND_* constants)."""
    if kind not in _DATA_CLASS_OF_KIND:
        raise ValueError(f"unknown summary kind {kind!r}")
    content = json.dumps({"version": FORMAT_VERSION, "kind": kind}).encode("utf-8")
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content
        ),
        data_class=_DATA_CLASS_OF_KIND[kind],
    )


def parse_plugin_content(content: bytes) -> PluginContent:
    """Parse `plugin_data.content`; raises ValueError on anything malformed.

    Version 0 does not exist; an empty content is treated as malformed rather
    than guessed at, so a foreign writer that borrows our plugin name is caught.
    """
    try:
        parsed = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"plugin content is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise ValueError("plugin content is not a JSON object")
    version = parsed.get("version")
    kind = parsed.get("kind")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"plugin content has no valid version: {version!r}")
    if not isinstance(kind, str):
        raise ValueError(f"plugin content has no valid kind: {kind!r}")
    return PluginContent(version=version, kind=kind)

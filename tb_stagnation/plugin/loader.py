"""The entry point TensorBoard loads (setup.py, group `tensorboard_plugins`).

A loader rather than the plugin class: `fix_flags` runs before TensorBoard
builds its data ingester, the only moment to ask it to keep every point.
"""

from __future__ import annotations

import argparse

from tensorboard.plugins import base_plugin

from tb_stagnation.summary import metadata

# `--samples_per_plugin` value meaning "keep every point".
_KEEP_ALL = 0


class StagnationLoader(base_plugin.TBLoader):
    """Loads the Stagnation plugin and makes TensorBoard keep all its data."""

    def fix_flags(self, flags: argparse.Namespace) -> None:
        # Without this TensorBoard keeps a random reservoir of 10 points per
        # tag of an unknown plugin (100 for tensors with --load_fast): epochs
        # would vanish and a stall could not be located. An explicit
        # `--samples_per_plugin stagnation=N` is the user's to keep.
        samples = getattr(flags, "samples_per_plugin", None)
        if not isinstance(samples, dict):
            samples = {}
            flags.samples_per_plugin = samples
        samples.setdefault(metadata.PLUGIN_NAME, _KEEP_ALL)

    def load(self, context: base_plugin.TBContext) -> base_plugin.TBPlugin:
        # Imported here so that a broken import shows up as this plugin
        # failing to load, not as TensorBoard failing to start.
        from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin

        return StagnationPlugin(context)

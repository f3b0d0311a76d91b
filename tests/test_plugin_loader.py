"""The TensorBoard entry point: flags, loading, how the tab is listed."""

import argparse
from importlib import metadata as importlib_metadata

from tensorboard.plugins import base_plugin

from tb_stagnation.plugin.loader import StagnationLoader
from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin


def test_keeps_every_point_by_default():
    flags = argparse.Namespace(samples_per_plugin={"images": 3})
    StagnationLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"images": 3, "stagnation": 0}


def test_an_explicit_user_value_wins():
    flags = argparse.Namespace(samples_per_plugin={"stagnation": 50})
    StagnationLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"stagnation": 50}


def test_flags_without_samples_per_plugin():
    flags = argparse.Namespace()
    StagnationLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"stagnation": 0}


def test_load_returns_the_plugin():
    plugin = StagnationLoader().load(base_plugin.TBContext())
    assert isinstance(plugin, StagnationPlugin) and plugin.plugin_name == "stagnation"
    routes = {"/index.js", "/static/*", "/runs", "/report", "/series"}
    assert set(plugin.get_plugin_apps()) == routes
    meta = plugin.frontend_metadata()
    assert meta.es_module_path == "/index.js" and meta.tab_name == "Stagnation"
    # Our data or plain Keras scalars enable the tab; nothing else is asked.
    assert set(plugin.data_plugin_names()) == {"stagnation", "scalars"}
    assert plugin.is_active() is False


def test_the_installed_entry_point_is_this_loader():
    (entry,) = [
        ep
        for ep in importlib_metadata.entry_points(group="tensorboard_plugins")
        if ep.name == "stagnation"
    ]
    assert entry.load() is StagnationLoader

"""The TensorBoard plugin behind the "Stagnation" tab: routes only.

Each route parses its request, calls one function on plain data and responds;
the work lives in `analyses` (cache, reading, analysis), `series` (chart
data) and `static_files`. http_api.md documents every route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_stagnation.analysis.run_data import RunData
from tb_stagnation.compat import tensorboard as compat_tensorboard
from tb_stagnation.plugin.analyses import Analyze, RunAnalyses
from tb_stagnation.plugin.query import run_param
from tb_stagnation.plugin.responses import error_response, json_response, json_route
from tb_stagnation.plugin.run_scope import run_scoped, tensorboard_runs
from tb_stagnation.plugin.server_errors import install_json_server_errors
from tb_stagnation.plugin.static_files import read_static
from tb_stagnation.reader.provider_reader import ProviderReader
from tb_stagnation.summary import metadata

# What keras.callbacks.TensorBoard writes its epoch_* scalars as.
KERAS_DATA_PLUGIN = "scalars"
TAB_NAME = "Stagnation"
_STATIC_ROUTE_PREFIX = f"/data/plugin/{metadata.PLUGIN_NAME}/static/"
_ENTRY_FILE = "index.js"


def analyze_run(run: RunData) -> Mapping[str, Any]:
    """One run's report as `tb_stagnation.analyze()` and `tb-stagnation report`
    make it (`run_report`: an unreadable run included), imported on first use."""
    from tb_stagnation.analysis.api import run_report

    return run_report(run)


class StagnationPlugin(base_plugin.TBPlugin):
    """Serves the Stagnation tab's frontend and its JSON API."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext, analyze: Analyze | None = None) -> None:
        """`analyze` replaces `analyze_run` in tests."""
        self._data_provider = _with_column_reads(context.data_provider, context.flags)
        self._analyses = RunAnalyses(analyze or analyze_run)
        # A URL too long for TensorBoard's HTTP server never reaches a route;
        # its error must still be the JSON http_api.md promises.
        install_json_server_errors()

    def get_plugin_apps(self) -> dict:
        return {
            "/" + _ENTRY_FILE: self._serve_entry,
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/report": self._serve_report,
            "/series": self._serve_series,
        }

    def is_active(self) -> bool:
        # Asked only when no plugin of `data_plugin_names` has data. The tab
        # then stays listed under "Inactive", still opens, and shows how to start.
        return False

    def data_plugin_names(self) -> tuple[str, ...]:
        # Plain Keras runs (epoch_* "scalars") are diagnosable too, so any
        # scalar data enables the tab; in a logdir of unrelated scalars the
        # tab finds no run and explains how to log one.
        return (metadata.PLUGIN_NAME, KERAS_DATA_PLUGIN)

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/" + _ENTRY_FILE, tab_name=TAB_NAME)

    # -- routes ------------------------------------------------------------------

    @json_route
    def _serve_entry(self, request: wrappers.Request):
        return _static_response(request, _ENTRY_FILE)

    @json_route
    def _serve_static(self, request: wrappers.Request):
        path = request.path
        name = path[len(_STATIC_ROUTE_PREFIX) :] if path.startswith(_STATIC_ROUTE_PREFIX) else ""
        return _static_response(request, name)

    @json_route
    def _serve_runs(self, request: wrappers.Request):
        reader, scope = self._reader(request)
        return json_response(request, self._analyses.runs(reader, scope))

    @json_route
    def _serve_report(self, request: wrappers.Request):
        run = run_param(request)
        reader, scope = self._reader(request, run)
        return json_response(request, self._analyses.report(reader, scope, run))

    @json_route
    def _serve_series(self, request: wrappers.Request):
        run = run_param(request)
        reader, scope = self._reader(request, run)
        body = self._analyses.series_gzip(reader, scope, run)
        return json_response(request, body, gzipped=True)

    def _reader(
        self, request: wrappers.Request, run: str | None = None
    ) -> tuple[ProviderReader, str]:
        """A reader of this request's experiment; of run `run` only, if given."""
        ctx = plugin_util.context(request.environ)
        experiment_id = plugin_util.experiment_id(request.environ)
        provider = self._data_provider
        if run is not None:
            provider = run_scoped(provider, tensorboard_runs(run))
        return ProviderReader(provider, ctx, experiment_id), experiment_id


def _with_column_reads(provider: Any, flags: Any) -> Any:
    """TensorBoard's gRPC provider (`--load_fast=true`) remade as the reader's
    own subclass on the same stub (reader/grpc_series.py), which reads a
    tag's points into arrays: a cold `/runs` of 100 runs reads 800,000 points.
    Calls it makes at once get connections of their own, opened as
    TensorBoard opens its channel (`flags`), so that a listing's three
    calls do not wait ~40 ms for each other (reader/grpc_lanes.py).
    TensorBoard's other plugins keep its provider; any other provider is
    returned as it is."""
    parts = compat_tensorboard.grpc_provider_parts(provider)
    if parts is None:
        return provider
    # Imported here: it imports gRPC, which only this loader needs.
    from tb_stagnation.reader.grpc_series import SeriesGrpcProvider

    address, stub = parts
    opener = compat_tensorboard.data_server_channel_opener(flags, address)
    return SeriesGrpcProvider(address, stub, opener)


def _static_response(request: wrappers.Request, name: str):
    found = read_static(name)
    if found is None:
        if name == _ENTRY_FILE:
            return error_response(request, 404, "the frontend bundle index.js is not built")
        return error_response(request, 404, f"no static file {name[:200]!r}")
    return http_util.Respond(request, found.content, found.content_type)

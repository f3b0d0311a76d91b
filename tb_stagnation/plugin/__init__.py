"""The TensorBoard "Stagnation" tab's backend: `loader` is the entry point,
`stagnation_plugin` the routes, http_api.md their contract."""

"""The tool layer: tool specs, execution with limits, built-in offline suites, importers, and sources (MCP, OpenAPI, ...).

Upstream of everything else in the system: it imports nothing from the other packages.
"""

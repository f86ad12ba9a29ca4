"""The HTTP side: health, metrics, and (later) the REST API and consoles, on the same loop."""

"""Event handlers: plain async functions, one module per family of events."""

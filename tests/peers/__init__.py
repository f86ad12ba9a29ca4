"""Drivers for the real third-party peers the tests talk to over loopback."""

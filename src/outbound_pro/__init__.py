"""Outbound Pro: a self-hosted outbound call-center platform.

The package is laid out by concept: ``sip/`` (sans-I/O protocol core and its asyncio
adapters), ``rtp/`` and ``media/`` (relay, recorder), ``billing/`` (tariff to invoices) and the
in-process modules beside them. ``app`` is the one place that wires them onto the loop.
"""

__version__ = "0.1.0"

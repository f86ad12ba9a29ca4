"""The SIP registrar (RFC 3261 §10): digest-authenticated bindings, persisted in the store."""

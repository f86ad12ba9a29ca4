"""Media processing beside the relay: G.711 codec tables, a crash-safe WAV writer, call recorder."""

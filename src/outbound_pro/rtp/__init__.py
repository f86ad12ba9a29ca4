"""RTP/RTCP packets (sans-I/O, ``packet``) and the relay that carries every call (``relay``)."""

"""WebRTC media for browser legs: ICE + DTLS-SRTP on one side, plain RTP to the relay."""

from outbound_pro.webrtc.gateway import (
    PASSTHROUGH,
    OfferError,
    WebRtcGateway,
    WebRtcLeg,
    is_webrtc_offer,
)

__all__ = ["PASSTHROUGH", "OfferError", "WebRtcGateway", "WebRtcLeg", "is_webrtc_offer"]

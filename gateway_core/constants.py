"""Protocol constants of OpenClaw Gateway protocol v4 (protocol.md), with their sources.

Every tunable is a ``DEFAULT_*`` or plain constant here so that the core, the shell and the
conformance suite agree on one number.
"""

from __future__ import annotations

from typing import Final

#: protocol.md §5: the version this gateway speaks; hello-ok always reports it.
PROTOCOL_VERSION: Final = 4
#: Lowest version an operator client may ask for.
MIN_CLIENT_PROTOCOL_VERSION: Final = 4
#: Legacy node clients (role node, mode node) may still speak v3.
MIN_NODE_PROTOCOL_VERSION: Final = 3
#: Probe clients (mode probe) may still speak v3.
MIN_PROBE_PROTOCOL_VERSION: Final = 3

#: protocol.md §1: frame limit before the handshake completes (MAX_PREAUTH_PAYLOAD_BYTES).
MAX_PREAUTH_PAYLOAD_BYTES: Final = 64 * 1024
#: protocol.md §1: frame limit once admitted (MAX_PAYLOAD_BYTES, 25 MiB).
MAX_PAYLOAD_BYTES: Final = 25 * 1024 * 1024
#: protocol.md §1: outbound buffer ceiling per connection (MAX_BUFFERED_BYTES, 50 MiB).
MAX_BUFFERED_BYTES: Final = 50 * 1024 * 1024
#: protocol.md §10.5: tick broadcast interval.
TICK_INTERVAL_MS: Final = 30_000
#: protocol.md §3.1: handshake deadline from socket open (DEFAULT_PREAUTH_HANDSHAKE_TIMEOUT_MS).
DEFAULT_HANDSHAKE_TIMEOUT_MS: Final = 15_000
#: protocol.md §7.3: requests of one connection in flight at once; the next one is answered
#: ``UNAVAILABLE "The server is busy. Please try again in a moment."`` (observed live: a burst of
#: 400 pipelined requests gets 257 answers, then "busy").
MAX_INFLIGHT_REQUESTS: Final = 257
#: protocol.md §3.1 step 6: frames queued while the connect is processed; the 16th closes.
MAX_PENDING_HANDSHAKE_FRAMES: Final = 15
#: protocol.md §7.1: consecutive "unauthorized role" answers sent; the next such call gets no
#: answer and closes 1008 (observed live: 11 answers, the 12th call closes).
MAX_UNAUTHORIZED_ROLE_RESPONSES: Final = 11
#: protocol.md §6.4: allowed |now - device.signedAt|.
DEVICE_SIGNATURE_SKEW_MS: Final = 120_000
#: protocol.md §1: close reasons are cut to this many UTF-8 bytes.
MAX_CLOSE_REASON_BYTES: Final = 120
#: protocol.md §1: server keepalive ping interval (also the pong deadline).
KEEPALIVE_INTERVAL_MS: Final = 25_000
#: protocol.md §1: grace before a close handshake the peer does not finish is cut.
CLOSE_GRACE_MS: Final = 1_000
#: protocol.md §13.1: idempotency entries live this long after completion, at most this many.
IDEMPOTENCY_TTL_MS: Final = 5 * 60_000
IDEMPOTENCY_MAX_ENTRIES: Final = 1000
#: protocol.md §8: attachment ceilings advertised in hello-ok.policy.
ATTACHMENT_MAX_BYTES: Final = (MAX_PAYLOAD_BYTES - 256 * 1024) * 3 // 4
ATTACHMENT_MAX_IMAGE_BYTES: Final = 6_291_456

#: protocol.md §9.3: the reference client's liveness rule (2 x tickIntervalMs of silence).
CLIENT_TICK_TIMEOUT_FACTOR: Final = 2

#: protocol.md §3.1: the only pre-auth capability the server advertises in connect.challenge.
CHALLENGE_CAPABILITIES: Final = ("model-catalog-snapshot",)

#: Close codes used by the gateway (protocol.md §12) and the reference client.
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_ABNORMAL: Final = 1006
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_MESSAGE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_TRY_AGAIN_LATER: Final = 1013
CLOSE_TICK_TIMEOUT: Final = 4000
CLOSE_CLIENT_INVALIDATED: Final = 4001

"""Outbox retry decisions (§5.3 step 7; channels-observed.md): what to do after a send attempt.

A send attempt ends in one :class:`Outcome` kind, and :func:`decide` turns it into what the outbox
does with the message:

========================  ===========================================  ===========================
outcome                   meaning                                      decision
========================  ===========================================  ===========================
``delivered``             the platform confirmed (message id)          done
``refused``               never reached the platform (connection       retry with backoff
                          refused, DNS, connect timeout)
``rate_limited``          the platform said "not now" (429)            retry after ``retry_after``
``ambiguous``             sent, outcome unknown (a 5xx answer, a       no blind replay: mark
                          timeout or reset after the request was        ``unknown``, queue the
                          written)                                     "couldn't confirm" notice
``rejected``              the platform refused it for good (4xx)       failed
========================  ===========================================  ===========================

Retries stop after :data:`MAX_AGE_MS` (a message that could not be sent for a day is failed).
The published gateway posts the notice after its next reconnect; ours queues it at once, behind the
messages already waiting for that account (so it goes out as soon as the platform takes messages).
Everything is a pure function of the outcome, the attempt count and the time passed in.
"""

from __future__ import annotations

from typing import Final, Literal

from msgspec import Struct

OutcomeKind = Literal["delivered", "refused", "rate_limited", "ambiguous", "rejected"]
#: Seconds to wait before attempt n+1 after n certain failures (the last value repeats).
BACKOFF_S: Final = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
MAX_AGE_MS: Final = 24 * 3_600_000
#: As published, after an ambiguous send and a reconnect.
UNCONFIRMED_NOTICE: Final = (
    "I couldn\u2019t confirm whether my previous reply reached this chat, so I won\u2019t resend it "
    "automatically. Please ask for any missing remainder."
)


class Outcome(Struct, frozen=True, kw_only=True):
    """How one attempt ended."""

    kind: OutcomeKind
    message_id: str | None = None
    retry_after_s: float | None = None
    detail: str = ""


class Decision(Struct, frozen=True, kw_only=True):
    """``state``: ``sent`` | ``pending`` (retry at ``next_at_ms``) | ``unknown`` | ``failed``."""

    state: str
    next_at_ms: int | None = None
    notice: bool = False
    error: str | None = None


def backoff_s(attempts: int) -> float:
    """The pause after ``attempts`` certain failures (1 → 1 s, 2 → 2 s, …, capped at 60 s)."""
    return BACKOFF_S[min(max(attempts, 1), len(BACKOFF_S)) - 1]


def decide(outcome: Outcome, *, attempts: int, created_ms: int, now_ms: int) -> Decision:
    """The outbox's next step for a message after its ``attempts``-th attempt ended in ``outcome``."""
    if outcome.kind == "delivered":
        return Decision(state="sent")
    if outcome.kind == "rejected":
        return Decision(state="failed", error=outcome.detail or "rejected by the platform")
    if outcome.kind == "ambiguous":
        return Decision(state="unknown", notice=True, error=f"unknown_after_send; refusing blind replay ({outcome.detail})")
    if now_ms - created_ms >= MAX_AGE_MS:
        return Decision(state="failed", error=f"gave up after {attempts} attempts: {outcome.detail}")
    if outcome.kind == "rate_limited" and outcome.retry_after_s is not None:
        wait = max(0.0, outcome.retry_after_s)
    else:
        wait = backoff_s(attempts)
    return Decision(state="pending", next_at_ms=now_ms + int(wait * 1000), error=outcome.detail or None)


def classify_http(status: int | None, *, sent: bool, retry_after_s: float | None = None, detail: str = "") -> Outcome:
    """An HTTP-based platform's answer (or lack of one) as an outcome.

    ``status`` is ``None`` when no answer came: ``sent`` says whether the request had been written
    (then the platform may have acted on it: ambiguous) or not (refused: certainly not delivered).
    """
    if status is None:
        return Outcome(kind="ambiguous" if sent else "refused", detail=detail)
    if 200 <= status < 300:
        return Outcome(kind="delivered", detail=detail)
    if status == 429:
        return Outcome(kind="rate_limited", retry_after_s=retry_after_s, detail=detail or "429 Too Many Requests")
    if status >= 500:
        return Outcome(kind="ambiguous", detail=detail or f"HTTP {status}")
    return Outcome(kind="rejected", detail=detail or f"HTTP {status}")


__all__ = ["BACKOFF_S", "MAX_AGE_MS", "UNCONFIRMED_NOTICE", "Decision", "Outcome", "OutcomeKind", "backoff_s", "classify_http", "decide"]

"""What to do after a model call fails: retry the same model, fail over to the next fallback, or fail.

The policy is data (:class:`RetryPolicy`, one :class:`RetryRule` per error kind) and the decision a
pure function (:func:`decide`): the shell passes the error, how many same-model retries it has
made, the time spent on this model so far, a jitter value in ``[0, 1)`` and whether a fallback
remains. Credential cooldowns (:class:`Cooldowns`) are a map the shell owns, with ``now`` passed in.

Published behaviour (http-openai-observed.md §1.7, gateway_console.log) and where the default
differs, deliberately, to answer in seconds rather than minutes:

====================  ==============================================  ==================================
failure               published 2026.9.6                              DEFAULT_POLICY
====================  ==============================================  ==================================
429 rate_limit        9 retries, ~1.2→31 s (cap 30 s), 148 s total;   4 retries, 1→8 s (×2, ±50 %),
                      first delay = Retry-After                       ≥ Retry-After; Retry-After > 30 s:
                                                                      no wait, fail over / fail
5xx server_error      8 allowed, stops after 6-7 when the ~70-90 s    3 retries, 0.5→4 s
                      retry window elapses; 0.7→30 s
idle timeout          8 allowed, circuit breaker at 5 consecutive     1 retry, 1 s (each try already
                      timeouts; then "Request failed after            cost ``timeoutSeconds``)
                      repeated internal retries…"
network / protocol    (not observed)                                  2 / 1 retries, 0.5→2 s
401/403 auth, 402     no retry; credential cooled down ~1 min;        same (60 s, configurable), then
                      requests in cooldown fail without a call        the next fallback if any
400 format, 404       no retry, surface the error                     no retry; next fallback if any
cancelled             chain stops (``caller_signal_aborted``)         same
total time            retry window ~70-90 s (5xx)                     ``budget_s`` 45 s per model
====================  ==============================================  ==================================

:data:`PUBLISHED_POLICY` approximates the published numbers for anyone who wants them.
"""

from __future__ import annotations

from typing import Final, Literal

from msgspec import Struct

from .errors import (
    AUTH,
    BILLING,
    CANCELLED,
    NETWORK,
    PROTOCOL,
    RATE_LIMIT,
    RETRIES_EXHAUSTED_MESSAGE,
    SERVER,
    TIMEOUT,
    ProviderError,
    cooldown_error,
)


class RetryRule(Struct, frozen=True, kw_only=True):
    """Same-model retries for one error kind: delay ``base_s × factor^(n-1)``, capped at ``cap_s``."""

    max_retries: int
    base_s: float
    factor: float = 2.0
    cap_s: float = 30.0


class RetryPolicy(Struct, frozen=True, kw_only=True):
    """The whole policy. ``jitter_fraction`` f scales a delay by ``1 - f + 2·f·jitter``.

    ``max_retry_after_s``: a longer ``Retry-After`` is not waited for (fail over or fail at once).
    ``budget_s``: same-model retries stop when the next delay would end past this many seconds
    since the first attempt. ``cooldown_s``: how long a credential rests after a 401/403/402.
    """

    rules: dict[str, RetryRule]
    jitter_fraction: float = 0.5
    max_retry_after_s: float = 30.0
    budget_s: float = 45.0
    cooldown_s: float = 60.0


DEFAULT_POLICY: Final = RetryPolicy(
    rules={
        RATE_LIMIT: RetryRule(max_retries=4, base_s=1.0, cap_s=8.0),
        SERVER: RetryRule(max_retries=3, base_s=0.5, cap_s=4.0),
        TIMEOUT: RetryRule(max_retries=1, base_s=1.0, cap_s=1.0),
        NETWORK: RetryRule(max_retries=2, base_s=0.5, cap_s=2.0),
        PROTOCOL: RetryRule(max_retries=1, base_s=0.5, cap_s=2.0),
    },
)

PUBLISHED_POLICY: Final = RetryPolicy(
    rules={
        RATE_LIMIT: RetryRule(max_retries=9, base_s=1.25, cap_s=30.0),
        SERVER: RetryRule(max_retries=8, base_s=1.0, cap_s=30.0),
        TIMEOUT: RetryRule(max_retries=4, base_s=1.5, cap_s=4.5),  # breaker at 5 consecutive timeouts
        NETWORK: RetryRule(max_retries=8, base_s=1.0, cap_s=30.0),
        PROTOCOL: RetryRule(max_retries=8, base_s=1.0, cap_s=30.0),
    },
    jitter_fraction=0.4,
    budget_s=90.0,
)

Action = Literal["retry", "failover", "fail"]


class Decision(Struct, frozen=True, kw_only=True):
    """The verdict. ``retry``: sleep ``delay_s`` then call the same model; ``failover``: call the next
    fallback now; ``fail``: surface ``error``. ``cooldown_s`` > 0: put the credential in cooldown.
    ``log`` is a console line in the published wording."""

    action: Action
    reason: str
    delay_s: float = 0.0
    retry: int = 0
    max_retries: int = 0
    cooldown_s: float = 0.0
    log: str = ""
    message: str = ""


def backoff_s(rule: RetryRule, retry: int, jitter: float, jitter_fraction: float) -> float:
    """The delay before same-model retry number ``retry`` (1-based), jittered and capped."""
    raw = rule.base_s * rule.factor ** max(0, retry - 1)
    jitter = min(max(jitter, 0.0), 1.0)
    return min(rule.cap_s, raw * (1.0 - jitter_fraction + 2.0 * jitter_fraction * jitter))


def decide(
    error: ProviderError,
    retries_done: int,
    *,
    elapsed_s: float,
    jitter: float,
    has_fallback: bool,
    policy: RetryPolicy = DEFAULT_POLICY,
    ref: str = "",
) -> Decision:
    """Retry, fail over or fail after ``error``; ``retries_done`` counts same-model retries so far.

    ``elapsed_s`` is the time since the first attempt on this model (the shell's clock);
    ``ref`` (``provider/model``) only goes into the log text.
    """
    kind = error.kind
    ref = ref or (f"{error.provider}/{error.model}" if error.provider and error.model else "model")
    cooldown = policy.cooldown_s if kind in (AUTH, BILLING) else 0.0
    rule = policy.rules.get(kind)
    if kind == CANCELLED:
        return Decision(action="fail", reason=kind, log=f"model fallback chain stopped: reason=caller_signal_aborted candidate={ref}",
                        message=error.summary)
    move_on: Action = "failover" if has_fallback and error.failover else "fail"
    if error.retryable and rule is not None and retries_done < rule.max_retries:
        retry = retries_done + 1
        delay = backoff_s(rule, retry, jitter, policy.jitter_fraction)
        too_long = error.retry_after_s is not None and error.retry_after_s > policy.max_retry_after_s
        if error.retry_after_s is not None and not too_long:
            delay = max(delay, error.retry_after_s)
        if not too_long and elapsed_s + delay <= policy.budget_s:
            return Decision(
                action="retry", reason=kind, delay_s=delay, retry=retry, max_retries=rule.max_retries,
                log=f"transient same-model retry {retry}/{rule.max_retries} for {ref} reason={kind}: "
                    f"delayMs={round(delay * 1000)}",
            )
        why = (f"retry-after {error.retry_after_s:g}s exceeds {policy.max_retry_after_s:g}s" if too_long
               else f"transient retry window elapsed for {ref} after {retries_done}/{rule.max_retries} retries")
        return Decision(action=move_on, reason=kind, retry=retries_done, max_retries=rule.max_retries,
                        log=f"{why}; stopping same-model retries", message=_final_message(error, retries_done))
    max_retries = rule.max_retries if rule is not None and error.retryable else 0
    decision = "fallback" if move_on == "failover" else "surface_error"
    return Decision(
        action=move_on, reason=kind, retry=retries_done, max_retries=max_retries, cooldown_s=cooldown,
        log=f"failover decision: decision={decision} reason={kind} retry={retries_done} from={ref} rawError={error.wire_message}",
        message=_final_message(error, retries_done),
    )


def _final_message(error: ProviderError, retries_done: int) -> str:
    if error.kind == TIMEOUT and retries_done > 0:
        return RETRIES_EXHAUSTED_MESSAGE
    return error.summary


class Cooldowns:
    """Credentials resting after an auth/billing failure: provider id → monotonic ``until``."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def start(self, provider: str, now: float, seconds: float) -> None:
        """Rest ``provider``'s credential for ``seconds`` from ``now`` (extends, never shortens)."""
        if seconds > 0:
            self._until[provider] = max(self._until.get(provider, 0.0), now + seconds)

    def remaining(self, provider: str, now: float) -> float:
        """Seconds left (0 when not cooling down; expired entries are dropped)."""
        until = self._until.get(provider)
        if until is None:
            return 0.0
        if until <= now:
            del self._until[provider]
            return 0.0
        return until - now

    def check(self, provider: str, now: float) -> ProviderError | None:
        """The published cooldown error when ``provider`` may not be called yet, else ``None``."""
        left = self.remaining(provider, now)
        return cooldown_error(provider, left) if left > 0 else None

    def clear(self, provider: str | None = None) -> None:
        """Forget one provider's cooldown (e.g. its apiKey changed), or all."""
        if provider is None:
            self._until.clear()
        else:
            self._until.pop(provider, None)

"""The OpenAI-compatible HTTP surface, sans-IO: request validation, turn planning and answers.

Routes glue these to the agent runtime; nothing here does I/O, reads a clock or draws random ids
(ids and times come in through :class:`~gateway_core.openai.chat.RequestContext`).

* :mod:`.wire` — answers, the shared error bodies, SSE frames, JavaScript-compatible JSON
* :mod:`.jsonbody` / :mod:`.schema` — body parsing and zod-worded validation
* :mod:`.models` — agent-first model ids, ``/v1/models``, ``x-openclaw-model``
* :mod:`.sessions` / :mod:`.conversation` — session keys, ``previous_response_id`` links, conversation mode
* :mod:`.prompt` / :mod:`.toolchoice` — flattening histories, images, client tools
* :mod:`.chat` / :mod:`.chat_render` — ``/v1/chat/completions``
* :mod:`.responses` / :mod:`.responses_render` — ``/v1/responses``
* :mod:`.failures` — how a failed run is answered
* :mod:`.embeddings` — ``/v1/embeddings``
* :mod:`.invoke` — ``/tools/invoke``
* :mod:`.hooks` — ``/hooks/*``
"""

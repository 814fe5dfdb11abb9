"""Model providers behind one interface, and the routing from a model id to a provider.

Routing (documented in INTERFACE terms: the id a client sends is exactly an id its plan
lists, or ``tollgate-echo``):

===================================== ==========================================
``tollgate-echo``                      built in (:mod:`.echo`)
``bedrock:<bedrock model id>``         Bedrock Converse with ``<bedrock model id>``
``<vendor>.<model>`` (Bedrock's form,  Bedrock Converse with the id as is, e.g.
optionally a region prefix ``us.``)    ``anthropic.claude-3-haiku-20240307-v1:0``
``upstream:<model>``                   the OpenAI-compatible upstream, ``model=<model>``
anything else                          not routable: never listed, 404 ``model_not_found``
===================================== ==========================================
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from functions.api.providers.base import (
    ChatMessage,
    Completion,
    Delta,
    EmbeddingCall,
    EmbeddingProvider,
    Embeddings,
    ModelCall,
    Provider,
)
from functions.api.providers.echo import ECHO_MODEL, EchoProvider

BEDROCK_PREFIX: Final = "bedrock:"
UPSTREAM_PREFIX: Final = "upstream:"
_BEDROCK_VENDORS: Final = (
    "ai21|amazon|anthropic|cohere|deepseek|meta|mistral|openai|qwen|stability|twelvelabs|writer"
)
BEDROCK_ID: Final = re.compile(rf"^(?:[a-z]{{2,4}}\.)?(?:{_BEDROCK_VENDORS})\.[A-Za-z0-9._:-]+$")

__all__ = [
    "ECHO_MODEL",
    "ChatMessage",
    "Completion",
    "Delta",
    "EmbeddingCall",
    "EmbeddingProvider",
    "Embeddings",
    "ModelCall",
    "Provider",
    "Providers",
    "Route",
    "route",
]


@dataclass(frozen=True)
class Route:
    kind: str  # echo | bedrock | upstream
    model: str  # the id the provider is called with


def route(model_id: str) -> Route | None:
    if model_id == ECHO_MODEL:
        return Route("echo", ECHO_MODEL)
    if model_id.startswith(BEDROCK_PREFIX) and len(model_id) > len(BEDROCK_PREFIX):
        return Route("bedrock", model_id[len(BEDROCK_PREFIX) :])
    if model_id.startswith(UPSTREAM_PREFIX) and len(model_id) > len(UPSTREAM_PREFIX):
        return Route("upstream", model_id[len(UPSTREAM_PREFIX) :])
    if BEDROCK_ID.match(model_id):
        return Route("bedrock", model_id)
    return None


class Providers:
    """The providers of this container, each built on first use from a factory."""

    def __init__(self, factories: dict[str, Callable[[], Provider]]) -> None:
        self._factories = {"echo": EchoProvider, **factories}
        self._built: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def get(self, kind: str) -> Provider:
        provider = self._built.get(kind)
        if provider is None:
            with self._lock:
                provider = self._built.get(kind)
                if provider is None:
                    provider = self._factories[kind]()
                    self._built[kind] = provider
        return provider

    def set(self, kind: str, provider: Provider) -> None:
        """Replace a provider (tests hand in one with a stubbed client)."""
        with self._lock:
            self._built[kind] = provider

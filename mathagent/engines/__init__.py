"""Who writes: model engines behind one interface (see base.Engine)."""

from mathagent.engines.base import (
    Chat,
    Engine,
    EngineError,
    EngineInfo,
    Message,
    Sample,
    Sampling,
)

__all__ = ["Chat", "Engine", "EngineError", "EngineInfo", "Message", "Sample", "Sampling"]

"""A job's output as the controller keeps it: stdout and stderr within their caps, artifacts checked.

    output = Output.empty(settings, ArtifactCollector(directory, count, total_bytes))
    for frame in frames:
        output.take(frame, emit)     # True: an output frame, kept (what was kept goes to emit)

A run's transcript (`conversation.Transcript`) and a session's cell
(`session.cells.CellCollector`) keep what their sandbox says through here,
alike: text is cut at its cap, counted in UTF-8 bytes, and artifact frames go
to the collector that checks every name, size and hash on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.events import Emitter
from ai_data_agent.executor.frames import ArtifactBegin, ArtifactData, ArtifactEnd, Frame, OutFrame
from ai_data_agent.settings import Settings

__all__ = ["Output", "OutputBuffer"]


class OutputBuffer:
    """One output stream, kept within its cap (UTF-8 bytes; one raw byte decodes to <= 3)."""

    def __init__(self, limit_bytes: int) -> None:
        self.room = limit_bytes * 3
        self.parts: list[str] = []
        self.cut = False

    def add(self, text: str) -> str:
        """Append what fits; return what was kept."""
        data = text.encode()
        if len(data) > self.room:
            text = data[: max(self.room, 0)].decode("utf-8", "ignore")
            self.cut = True
            data = text.encode()
        self.parts.append(text)
        self.room -= len(data)
        return text

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class Output:
    """The text and the files one job (or cell) sent, bounded at every step."""

    stdout: OutputBuffer
    stderr: OutputBuffer
    artifacts: ArtifactCollector

    @classmethod
    def empty(cls, settings: Settings, artifacts: ArtifactCollector) -> Self:
        return cls(
            OutputBuffer(settings.stdout_limit_bytes),
            OutputBuffer(settings.stderr_limit_bytes),
            artifacts,
        )

    def take(self, frame: Frame, emit: Emitter) -> bool:
        """Keep ``frame`` when it is output (text or an artifact's); False for any other kind."""
        if isinstance(frame, OutFrame):
            buffer = self.stdout if frame.stream == "stdout" else self.stderr
            kept = buffer.add(frame.text)
            if kept:
                emit(frame.stream, kept)
            return True
        if isinstance(frame, ArtifactBegin | ArtifactData | ArtifactEnd):
            self.artifacts.handle(frame)
            return True
        return False

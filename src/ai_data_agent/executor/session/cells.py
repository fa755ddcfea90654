"""Collecting one cell from a session's frames into a `CellResult`.

    collector = CellCollector(settings, session_id, count, artifacts_dir, on_event)
    for frame in wire.frames(deadline):
        if (done := collector.handle(frame)) is not None:
            return collector.result(done)

Text and artifact frames are kept as a run's are (`output.Output`: within
the caps, every artifact's name, size and hash checked on the host); rich
outputs are checked again here (they come from the user's process).
"""

from __future__ import annotations

import json
from pathlib import Path

from ai_data_agent.checkpoint_models import RestoreReport
from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.events import Emitter, EventHandler
from ai_data_agent.executor.frames import CellFrame, DisplayFrame, Frame
from ai_data_agent.executor.output import Output
from ai_data_agent.session_models import (
    CellError,
    CellResult,
    CellStatus,
    CellTimings,
    DisplayOutput,
)
from ai_data_agent.settings import Settings

__all__ = ["CellCollector", "restored"]


def restored(cell: CellResult, report: RestoreReport | None) -> CellResult:
    """The first cell after a resume says so (``restored``, or ``lost``; what came back)."""
    if report is None or cell.state != "preserved":
        return cell
    return cell.model_copy(update={"state": report.state, "restore": report})


class CellCollector:
    """What one cell produced, bounded at every step."""

    def __init__(
        self,
        settings: Settings,
        session_id: str,
        count: int,
        artifacts_dir: Path | None,
        on_event: EventHandler | None,
    ) -> None:
        self.settings = settings
        self.session_id = session_id
        self.count = count
        self.emit = Emitter(session_id, on_event)
        self.output = Output.empty(
            settings,
            ArtifactCollector(
                artifacts_dir, settings.max_artifacts, settings.max_artifact_total_bytes
            ),
        )
        self.outputs: list[DisplayOutput] = []
        self.outputs_bytes = 0
        self.outputs_truncated = False

    def handle(self, frame: Frame) -> CellFrame | None:
        """Take one frame; the cell's last frame is returned, everything else kept."""
        if self.output.take(frame, self.emit):
            return None
        if isinstance(frame, DisplayFrame):
            self._display(frame)
        elif isinstance(frame, CellFrame) and frame.count == self.count:
            return frame
        return None

    def _display(self, frame: DisplayFrame) -> None:
        output = frame.as_output(self.settings.display_max_bytes)
        size = len(output.model_dump_json()) if output is not None else 0
        if output is None or self.outputs_bytes + size > self.settings.cell_display_max_bytes:
            self.outputs_truncated = True
            return
        self.outputs_bytes += size
        self.outputs.append(output)
        self.emit("display", output.model_dump_json())

    def result(self, done: CellFrame, total_s: float) -> CellResult:
        out = self.output
        out.artifacts.finish(done.artifacts)
        out.artifacts.close()
        result = None
        if done.result is not None:
            result = done.result.as_output(self.settings.display_max_bytes)
        error = None
        if done.error is not None:
            error = CellError(
                ename=done.error.ename, evalue=done.error.evalue, traceback=done.error.traceback
            )
        cell = CellResult(
            session_id=self.session_id,
            execution_count=self.count,
            generation=done.generation,
            status=CellStatus(done.status),
            state=done.state,
            stdout=out.stdout.text,
            stderr=out.stderr.text,
            stdout_truncated=out.stdout.cut or done.stdout_truncated,
            stderr_truncated=out.stderr.cut or done.stderr_truncated,
            result=result,
            outputs=self.outputs,
            outputs_truncated=self.outputs_truncated or done.truncated,
            error=error,
            artifacts=out.artifacts.artifacts,
            artifacts_skipped=out.artifacts.skipped,
            artifacts_truncated=out.artifacts.truncated,
            timings=CellTimings(execute_s=round(done.duration_s, 4), total_s=round(total_s, 4)),
        )
        self.emit("result", json.dumps(cell.model_dump(mode="json")))
        return cell

"""Matplotlib figures left open come back as PNG files, without the code asking.

The runner writes this file as ``sitecustomize.py`` into the sandbox dir, first
on the code's ``PYTHONPATH``, so the code's interpreter imports it at start and
`install_hook` runs: once ``matplotlib.pyplot`` is imported, an exit handler is
registered that saves every figure still open into ``$AI_DATA_AGENT_OUTPUTS``
(``plt.show()`` under Agg then gives PNGs). pyplot registers its own exit
handler that closes every figure; exit handlers run last-in first-out, so ours
is registered right after pyplot loads. Figures the code saved itself are not
saved again. The session kernel calls `save_open_figures` after each cell.

Standard library only (matplotlib is used only if the code imported it), Python >= 3.9.
It is imported at the start of every run's interpreter, so it imports next to
nothing until pyplot appears (no typing, no importlib.util).
"""

from __future__ import annotations

import atexit
import os
import sys

SAVED_MARK = "_ai_data_agent_saved"
OUTPUTS_VARIABLE = "AI_DATA_AGENT_OUTPUTS"


def _free_name(folder: str, num: int) -> str:
    name = f"figure_{num}.png"
    n = 1
    while os.path.lexists(os.path.join(folder, name)):
        n += 1
        name = f"figure_{num}_{n}.png"
    return name


def save_open_figures(folder: str, *, close: bool = False) -> list[str]:
    """Save every open figure the code did not save itself into ``folder``; return the paths."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    saved = []
    nums = plt.get_fignums()
    if nums:
        os.makedirs(folder, exist_ok=True)
    for num in nums:
        figure = plt.figure(num)
        if not getattr(figure, SAVED_MARK, False):
            path = os.path.join(folder, _free_name(folder, num))
            figure.savefig(path, format="png")
            saved.append(path)
        if close:
            plt.close(figure)
    return saved


class _AfterPyplot:
    """A one-shot import hook: runs `_on_pyplot` right after pyplot's own module code."""

    def __init__(self, main_pid: int) -> None:
        self.main_pid = main_pid

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name != "matplotlib.pyplot":
            return None
        import importlib.util
        from types import ModuleType

        sys.meta_path.remove(self)  # type: ignore[arg-type]
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module
        main_pid = self.main_pid

        def exec_module(module: ModuleType) -> None:
            run(module)
            _on_pyplot(main_pid)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _on_pyplot(main_pid: int) -> None:
    def save_at_exit() -> None:
        out = os.environ.get(OUTPUTS_VARIABLE)
        if not out or os.getpid() != main_pid:
            return
        try:
            save_open_figures(out)
        except Exception as exc:
            sys.stderr.write(f"ai-data-agent: could not save figures: {exc!r}\n")

    atexit.register(save_at_exit)
    figure_class = sys.modules["matplotlib.figure"].Figure
    savefig = figure_class.savefig

    def savefig_and_mark(self: object, *args: object, **kwargs: object) -> object:
        setattr(self, SAVED_MARK, True)
        return savefig(self, *args, **kwargs)

    figure_class.savefig = savefig_and_mark


def install_hook() -> None:
    """Watch for pyplot (see the module docstring)."""
    sys.meta_path.insert(0, _AfterPyplot(os.getpid()))  # type: ignore[arg-type]


if __name__ == "sitecustomize":
    install_hook()

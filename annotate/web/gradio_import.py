"""Import Gradio without its import-time stub writing, a large share of the studio's start-up time.

Every Gradio component class is built by a metaclass that re-creates the class's ``.pyi`` type
stub as it is defined (``gradio.component_meta.create_or_modify_pyi``): it reads the component's
source file, parses it with ``ast`` twice and rewrites the stub if it differs. That is editor
tooling, not behaviour, and it is a large part of what ``import gradio`` costs. ``skip_stub_writing``
makes that one function do nothing for this process, from the moment its module is loaded; it
must run before anything imports Gradio. If Gradio moves the function,
nothing is skipped and everything still works, only slower to start; ``tests/test_gradio_import.py``
fails when the pinned Gradio (requirements.txt) no longer has it, with this signature, called by
the component metaclass, so an upgrade meets the change at once.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_MODULE = "gradio.component_meta"
_FUNCTION = "create_or_modify_pyi"


def _no_stub(*args: Any, **kwargs: Any) -> None:
    """Stands in for Gradio's stub writer."""


class _StubSkipper(importlib.abc.MetaPathFinder):
    """Finds ``gradio.component_meta`` as usual, and swaps the stub writer out right after it runs."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)  # once is enough; also keeps the lookup below from finding this finder
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            if callable(getattr(module, _FUNCTION, None)):
                setattr(module, _FUNCTION, _no_stub)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def skip_stub_writing() -> bool:
    """Have Gradio, when it is first imported, skip writing component stubs; False if it is already imported."""
    if _MODULE in sys.modules:
        return False
    if not any(isinstance(finder, _StubSkipper) for finder in sys.meta_path):
        sys.meta_path.insert(0, _StubSkipper())
    return True

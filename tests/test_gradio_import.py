"""``annotate.web.gradio_import``: Gradio imported without rewriting its component stubs."""
from __future__ import annotations

import subprocess
import sys

from conftest import REPO

CHECK = """
import sys
from annotate.web.gradio_import import skip_stub_writing
assert skip_stub_writing()
import gradio as gr
import gradio.blocks_events
from gradio import component_meta
from annotate.web.gradio_import import _no_stub
assert component_meta.create_or_modify_pyi is _no_stub
assert gradio.blocks_events.create_or_modify_pyi is _no_stub
assert not skip_stub_writing()  # too late once Gradio is in
with gr.Blocks() as demo:  # components still build and wire up
    box = gr.Textbox()
    gr.Button().click(lambda text: text, box, box)
print("ok")
"""


def test_gradio_imports_and_builds_without_the_stub_writer() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


SIGNATURE = """
import inspect
from gradio import component_meta
stub_writer = component_meta.create_or_modify_pyi
print(list(inspect.signature(stub_writer).parameters))
print("create_or_modify_pyi(" in inspect.getsource(component_meta.ComponentMeta))
"""


def test_the_pinned_gradio_still_has_the_stub_writer_it_replaces() -> None:
    """Fails loudly when a Gradio upgrade renames, re-signs or stops calling the private function that
    ``skip_stub_writing`` replaces; then update ``annotate/web/gradio_import.py`` or remove it."""
    done = subprocess.run([sys.executable, "-c", SIGNATURE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    parameters, called = done.stdout.strip().splitlines()[-2:]
    assert parameters == "['component_class', 'class_name', 'events']"
    assert called == "True"  # the component metaclass still writes stubs through it

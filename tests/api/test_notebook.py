"""examples/lab1.ipynb runs end to end in a real kernel (the venv's ipykernel) on tiny generated MNIST, shows at least
one figure inline (an image/png output), and leaves the kernel's matplotlib backend the inline one."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.fakedata import write_mnist

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "lab1.ipynb"
BACKEND_CELL = "import matplotlib; print('backend:', matplotlib.get_backend())"


def test_the_example_notebook_runs_and_shows_figures_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    data = write_mnist(tmp_path / "data")
    monkeypatch.setenv("RESLAB_DATA", str(data))  # the kernel inherits this environment
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its own: the inline backend
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(BACKEND_CELL))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    shown = [out for out in outputs if out.output_type in ("display_data", "execute_result")
             and "image/png" in out.get("data", {})]
    assert len(shown) >= 2  # the run's curves and the depth study's figure
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs if out.output_type == "stream")
    assert printed.strip() == "backend: module://matplotlib_inline.backend_inline"
    first = "".join(out.get("text", "") for out in nb.cells[1].outputs if out.output_type == "stream")
    assert f"data: {data} (600 training images)" in first  # the data it was given, not its own stand-in
    assert not (work / "tiny-data").exists()
    assert (work / "runs" / "depth-study" / "aggregate.csv").is_file() and (work / "gradflow-twins").is_dir()

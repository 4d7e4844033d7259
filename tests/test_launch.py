"""Reading a process's place among those ``accelerate launch`` started."""
from __future__ import annotations

from toonmatte.launch import cpu_forced, local_index, own_device, process_count, process_index


def test_alone_by_default(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK",
                 "PMI_SIZE", "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(name, raising=False)
    assert (process_index(), process_count(), local_index(), cpu_forced()) == (0, 1, 0, False)


def test_torchrun_and_mpirun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (process_index(), process_count(), local_index()) == (3, 4, 1)
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "8")
    assert (process_index(), process_count()) == (2, 8)


def test_cpu_forced_by_the_launcher(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    assert cpu_forced() and own_device() == "cpu"

"""The package as a user installs it: a wheel in a fresh virtualenv, run from another directory, finds
its suites and reference tables, and writes nothing into site-packages."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd, **kwargs):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh virtualenv holding the built wheel; the heavy dependencies (torch, timm, ...) come from
    the interpreter's own site-packages, so the test installs nothing from the network."""
    where = tmp_path_factory.mktemp("wheel")
    built = run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-q", "-w",
                where / "dist", cwd=where)
    assert built.returncode == 0, built.stderr
    run(sys.executable, "-m", "venv", "--system-site-packages", where / "env", cwd=where).check_returncode()
    wheel = next((where / "dist").glob("transferbench-*.whl"))
    installed = run(where / "env/bin/python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=where)
    assert installed.returncode == 0, installed.stderr
    return where


def test_the_installed_wheel_lists_its_suites_from_another_directory(venv, tmp_path):
    where = run(venv / "env/bin/python", "-c", "import benchmark; print(benchmark.__file__)", cwd=tmp_path)
    assert str(venv / "env") in where.stdout  # the wheel's copy, not the checkout's
    listed = run(venv / "env/bin/transferbench", "ls", "suites", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.split() == ["ericsson2021", "ericsson2021-lite", "natural_shift", "offline", "offline-lite", "vtab1k"]


def test_the_installed_wheel_evaluates_the_offline_suite(venv, tmp_path):
    site = Path(run(venv / "env/bin/python", "-c", "import benchmark, os; print(os.path.dirname(benchmark.__file__))",
                    cwd=tmp_path).stdout.strip())
    before = sorted(p.name for p in site.rglob("*") if "__pycache__" not in p.parts)
    done = run(venv / "env/bin/transferbench", "evaluate", "--suite", "offline", "--model", "pixels:4",
               "--protocol", "knn", "--cache-dir", tmp_path / "cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "### knn" in done.stdout and "| digits " in done.stdout and (tmp_path / "results/runs.sqlite").exists()
    assert sorted(p.name for p in site.rglob("*") if "__pycache__" not in p.parts) == before
    compared = run(venv / "env/bin/transferbench", "table", "--compare", "ericsson2021", cwd=tmp_path)
    assert compared.returncode == 0 and "Published" in compared.stdout

"""`emolens models` outside the tests (no torchvision shim) says exactly what is missing: a package
not installed ("needs timm") apart from one installed that cannot import (timm without a working
torchvision, as scripts/test.sh leaves the environment); the library never loads the test shim."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytest.importorskip("torch")


def emolens_models(boot: str = "", env_path: str | None = None) -> subprocess.CompletedProcess:
    """``emolens models`` in a fresh interpreter, after ``boot`` (no test shim: tests/conftest.py is not run)."""
    import os

    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env_path, env.get("PYTHONPATH")]))
    code = (boot + "\nimport sys\nfrom emolens.cli import main\nrc = main(['models'])\n"
            "print('shim loaded' if 'torchvision_ops_shim' in sys.modules else 'no shim')\nsys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_installed_timm_that_cannot_import_is_named_as_such(tmp_path):
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    broken = tmp_path / "site" / "torchvision"        # a torchvision built for another torch (the CUDA wheel)
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    r = emolens_models(env_path=str(tmp_path / "site"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "timm is installed but cannot import: operator torchvision::nms does not exist (RuntimeError); it needs " \
           "a torchvision built for this torch" in r.stdout
    assert not any("needs timm" in line for line in lines)
    assert any(line.startswith("resnet50 ") and "timm fails" in line for line in lines)
    assert lines[-1] == "no shim"


def test_timm_not_installed_is_named_with_its_install_line():
    blocker = ("import sys\nclass Blocker:\n    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'timm':\n"
               "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
               "sys.meta_path.insert(0, Blocker())")
    r = emolens_models(blocker)
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("resnet50 ") and "needs timm" in line for line in r.stdout.splitlines())
    assert "timm is not installed: pip install 'emolens[zoo]' -c constraints.txt" in r.stdout


def test_as_the_environment_is_no_false_needs_timm():
    r = emolens_models()
    assert r.returncode == 0, r.stderr
    if importlib.util.find_spec("timm") is not None:
        assert "needs timm" not in r.stdout                   # installed: counted, or why it cannot import
    assert r.stdout.splitlines()[-1] == "no shim"

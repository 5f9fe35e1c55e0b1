"""The layer contracts in .importlinter hold, and `lint-imports` (run by `make lint`) fails when one
is broken: each case plants one forbidden import into a copy of the packages and expects it named."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workloads", "dashboards", "controlplane", "demo")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_hold():
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "BROKEN" not in run.stdout


@pytest.mark.parametrize(
    ("module", "planted", "named"),
    [
        ("workloads/selectors/planted.py", "from workloads.services import polling", "Selectors never import"),
        ("workloads/domain/planted.py", "from django.utils import timezone", "The domain needs no Django"),
        ("workloads/domain/planted.py", "from workloads.models import Slo", "The domain needs no Django"),
        # Indirectly: a domain module importing a Django-importing helper breaks it as well.
        ("workloads/domain/planted.py", "from workloads import batch_delete", "The domain needs no Django"),
        ("workloads/services/planted.py", "from workloads import tasks", "Services never import tasks"),
        ("workloads/models/planted.py", "from workloads.selectors import fleet", "Interfaces -> services"),
        ("dashboards/planted.py", "from workloads.api import errors", "Dashboards never import the API"),
        ("workloads/services/planted.py", "from google.cloud import pubsub_v1", "Only the gcp providers"),
        ("workloads/providers/local/planted.py", "import grpc", "Only the gcp providers"),
        ("workloads/services/planted.py", "from demo import fleet", "The product never imports the demo"),
        (
            "workloads/services/planted.py",
            "from workloads.providers.local.models import LocalTopic",
            "Only the local provider imports its tables",
        ),
        ("dashboards/planted_views.py", "from dashboards.overview_views import overview", None),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path, module, planted, named):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    if named is None:  # a view module importing another: plant it in pool_views itself
        module, named = "dashboards/pool_views.py", "Dashboard view modules share"
        target = tmp_path / module
        target.write_text(target.read_text() + f"\n{planted}  # planted\n")
    else:
        (tmp_path / module).write_text(f"{planted}  # planted\n")

    run = _lint_imports(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    broken = [line for line in run.stdout.splitlines() if " BROKEN" in line]
    assert [line for line in broken if line.startswith(named)], run.stdout
    assert module.removesuffix(".py").replace("/", ".") in run.stdout


def test_every_dashboard_view_module_is_in_the_views_contract():
    # A screen's module left out of the layers could import another screen's helpers unchecked.
    contract = (ROOT / ".importlinter").read_text().split("[importlinter:contract:dashboard-views]")[1]
    contract = contract.split("[importlinter:contract:")[0]
    for module in sorted((ROOT / "dashboards").glob("*views.py")):
        assert f"dashboards.{module.stem}" in contract, f"dashboards.{module.stem} is not in the dashboard-views layers"


def test_the_domain_loads_without_django():
    # The contract reads imports; this runs them: every domain module imports in a bare
    # interpreter (no settings, no apps) and leaves Django and the models unloaded.
    code = (
        "import importlib, pkgutil, sys, workloads.domain as d\n"
        "for m in pkgutil.iter_modules(d.__path__): importlib.import_module('workloads.domain.' + m.name)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('django', 'rest_framework') "
        "or k.startswith(('workloads.models', 'workloads.providers'))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"

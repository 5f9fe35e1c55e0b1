"""The screens' forms live in the package dashboards/forms/ (docs/architecture.md, "Where does X
live"), one module per screen: a view module that defines a form of its own is caught here."""

import ast
from pathlib import Path

import dashboards

DASHBOARDS = Path(dashboards.__file__).parent
FORM_BASES = {"Form", "ModelForm", "BaseFormSet", "BaseModelFormSet", "BaseInlineFormSet"}
FORMSET_FACTORIES = {"formset_factory", "modelformset_factory", "inlineformset_factory"}


def _forms_defined(path: Path) -> list[str]:
    """Classes deriving from a Django form or formset base, and formsets built by a factory."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ClassDef):
            bases = {base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "") for base in node.bases}
            if bases & FORM_BASES:
                found.append(node.name)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in FORMSET_FACTORIES:
                found.append(f"{name}(...) at line {node.lineno}")
    return found


def test_no_dashboard_module_outside_the_forms_package_defines_a_form():
    outside = {
        str(path.relative_to(DASHBOARDS)): names
        for path in sorted(DASHBOARDS.rglob("*.py"))
        if "forms" not in path.relative_to(DASHBOARDS).parts[:1] and (names := _forms_defined(path))
    }
    assert outside == {}


def test_the_check_finds_forms_and_formsets(tmp_path):
    # The walk above finds nothing today; this shows it would find one.
    planted = tmp_path / "planted_views.py"
    planted.write_text(
        "from django import forms\nfrom django.forms.models import inlineformset_factory\n"
        "class PlantedForm(forms.Form):\n    name = forms.CharField()\n"
        "class PlantedModelForm(forms.ModelForm):\n    pass\n"
        "Rows = inlineformset_factory(A, B, fields=('x',))\n"
    )
    assert _forms_defined(planted) == ["PlantedForm", "PlantedModelForm", "inlineformset_factory(...) at line 7"]
    assert _forms_defined(DASHBOARDS / "forms" / "class_edit.py")  # the moved class edit forms are found there

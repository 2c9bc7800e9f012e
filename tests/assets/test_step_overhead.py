"""Cheap steps stay cheap: every step process loads the code location, so loading it must not
import the LLM stack (torch, transformers, peft: ~5 s and ~0.5 GB a process). Each check runs in
a fresh interpreter, where ``sys.modules`` shows what an import really pulled in."""

import json
import subprocess
import sys

import pytest

LLM_STACK = ("torch", "transformers", "peft")


def llm_modules_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps([m for m in {LLM_STACK!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("module", ["recpie_core.profiles", "recpie_assets.resources", "recpie_assets.ingest",
                                    "recpie_assets.split", "recpie_assets.checks", "recpie_assets.sensors"])
def test_config_and_data_modules_load_without_the_llm_stack(module):
    assert llm_modules_after(f"import {module}") == []


def test_the_llm_stack_is_what_the_probe_sees():
    """The probe is not blind: a model module does bring torch."""
    assert "torch" in llm_modules_after("import recpie_core.rec.fit")


def test_the_code_location_loads_without_the_llm_stack(tmp_path):
    code = f"import recpie_assets.definitions as d\nd.full_job('smoke', {str(tmp_path)!r}, '')"
    assert llm_modules_after(code) == []

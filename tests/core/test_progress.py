"""probe.core.progress: in a notebook without ipywidgets, probe's first use and its bars warn about nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A notebook as tqdm.autonotebook sees one (ipykernel's shell), in a Python without ipywidgets
NOTEBOOK = """
import sys, types, warnings
shell = type("ZMQInteractiveShell", (), {"custom_exceptions": (), "set_custom_exc": lambda self, *a: None})()
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
sys.modules["ipywidgets"] = None  # not installed
import IPython
IPython.get_ipython = lambda: shell
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
{body}
print("WARNINGS", [str(w.message)[:60] for w in caught if "IProgress" in str(w.message)])
"""


def _in_notebook(body: str) -> str:
    code = NOTEBOOK.replace("{body}", textwrap.indent(textwrap.dedent(body), "    "))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return next(line for line in run.stdout.splitlines() if line.startswith("WARNINGS"))


def test_notebook__the_check_sees_tqdms_warning_when_transformers_comes_first():
    assert "IProgress not found" in _in_notebook("import transformers")


def test_notebook__import_probe_load_a_model_and_show_a_bar_warn_about_nothing():
    body = """
    import probe
    probe.load_model("default")
    from probe.core.progress import progress_bar
    bar = progress_bar(3, "passes", enabled=True)
    bar.update(3)
    bar.close()
    """
    assert _in_notebook(body) == "WARNINGS []"


def test_notebook__the_readings_served_by_their_package_warn_about_nothing():
    assert _in_notebook("from probe.readings.explain import importance") == "WARNINGS []"


def test_progress_bar__counts_over_its_iterable_and_hides_when_disabled():
    from probe.core.progress import progress_bar

    bar = progress_bar(3, "drift", enabled=False, iterable=iter("abc"))
    assert list(bar) == ["a", "b", "c"] and bar.disable

"""Reports from a store: CSV, JSON, HTML (checked in headless chromium when present), figures."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pytest

from hwsim.dse.report import report_data, sensitivity, write_report
from hwsim.dse.report_html import PARETO_DIV
from hwsim.dse.runner import run_sweep
from hwsim.dse.store import ResultStore
from tests.dse_fakes import fake_evaluate, fake_spec


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        run_sweep(fake_spec(tmp_path), store, evaluate=fake_evaluate)
        yield store


def test_csv_and_json_have_one_entry_per_point(store, tmp_path):
    rows = list(csv.DictReader(write_report(store, tmp_path / "r.csv").open()))
    assert len(rows) == 27 and {"key", "model", "recipe", "hw.systolic.rows", "latency_s"} <= set(rows[0])
    items = json.loads(write_report(store, tmp_path / "r.json").read_text())
    assert len(items) == 27 and set(items[0]) == {"key", "params", "objectives"}
    assert items[0]["params"]["hw.systolic.rows"] == 8


def test_report_data_front_and_sensitivity(store):
    data = report_data(store)                      # objectives/constraints from the stored spec
    assert [o.metric for o in data.objectives] == ["latency_s", "energy_pj"]
    assert data.constraints[0].metric == "area_mm2"
    by_key = {r["key"]: r for r in data.records}
    front = [by_key[k] for k in data.front_keys]
    assert all(r["objectives"]["area_mm2"] <= 1 for r in front)
    # the fake model: latency falls with array size, energy rises with it and with the buffer;
    # the smallest buffer always wins on energy at equal latency, so every front point has it
    assert {r["params"]["hw.memory.GLB.size_bytes"] for r in front} == {16384}
    assert len(data.chosen) <= 4 and all(c["layers"]["rows"] for c in data.chosen)
    assert len(data.hypervolume) == 27
    assert data.sensitivity["hw.systolic.rows"]["latency_s"] > data.sensitivity["hw.memory.GLB.size_bytes"]["latency_s"]


def test_sensitivity_hand_computed():
    records = [{"params": {"a": 1}, "objectives": {"x": 1.0}}, {"params": {"a": 2}, "objectives": {"x": 3.0}}]
    # per-value means 1 and 3, overall mean 2 -> (3 - 1) / 2
    assert sensitivity(records, ["x"]) == {"a": {"x": 1.0}}


def test_html_is_self_contained(store, tmp_path):
    page = write_report(store, tmp_path / "r.html").read_text()
    assert "<script src=\"http" not in page and "<script src=" not in page
    assert f'id="{PARETO_DIV}"' in page and "Plotly.newPlot" in page
    for name in ("hypervolume-plot", "breakdown-plot", "roofline-plot", "sensitivity-plot"):
        assert f'id="{name}"' in page


def test_report_axes_name_metric_and_unit(store, tmp_path):
    """Axis titles say what a metric is and its unit, not the stored column name."""
    from hwsim.dse.spec import METRIC_LABELS, METRICS, metric_label

    assert set(METRICS) <= set(METRIC_LABELS)
    assert metric_label("latency_s") == "latency (s)" and metric_label("unknown_x") == "unknown_x"
    page = write_report(store, tmp_path / "r.html").read_text()
    data = report_data(store)
    x_m, y_m = [o.metric for o in data.objectives][:2]
    assert json.dumps(metric_label(x_m))[1:-1] in page and json.dumps(metric_label(y_m))[1:-1] in page
    assert '"latency (s) per layer"' in page


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_static_figures(store, tmp_path, fmt):
    folder = write_report(store, tmp_path / f"figs.{fmt}")
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{n}.{fmt}" for n in ("pareto", "hypervolume", "breakdown", "roofline", "sensitivity"))
    head = (folder / f"pareto.{fmt}").read_bytes()[:64]
    assert head.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in (folder / f"pareto.{fmt}").read_bytes()[:2000]


_ERROR_HOOK = ("<script>window.addEventListener('error', function (e) {var d = document.createElement('div');"
               "d.id = 'js-error-report'; d.textContent = String(e.message); document.documentElement.appendChild(d);"
               "});</script>")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(store, tmp_path):
    page = write_report(store, tmp_path / "r.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + _ERROR_HOOK, 1))
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'id="js-error-report"' not in dom, dom[dom.find('id="js-error-report"'):][:300]
    scatter = dom[dom.index(f'id="{PARETO_DIV}"'):dom.index('id="hypervolume-plot"')]
    assert scatter.count('class="point"') == 27          # every stored point drawn once in the Pareto scatter
    assert 'class="main-svg"' in scatter


_HIDE_AXIS_TITLES = "<style>.xtitle, .ytitle { visibility: hidden !important; }</style>"


def _screenshot(page, path) -> "object":
    from PIL import Image

    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                    "--hide-scrollbars", "--window-size=1200,900", f"--screenshot={path}", page.as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)
    return Image.open(path).convert("RGB")


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_screenshot_shows_the_axis_titles_with_units(store, tmp_path):
    """The Pareto scatter's axis titles (metric and unit) are in the DOM and painted on screen."""
    from PIL import ImageChops

    from hwsim.dse.spec import metric_label

    page = write_report(store, tmp_path / "r.html")
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    scatter = dom[dom.index(f'id="{PARETO_DIV}"'):dom.index('id="hypervolume-plot"')]
    for metric in ("latency_s", "energy_pj"):
        assert f">{metric_label(metric)}</text>" in scatter              # "latency (s)", "energy (pJ)"
    hidden = tmp_path / "hidden.html"
    hidden.write_text(page.read_text().replace("<head>", "<head>" + _HIDE_AXIS_TITLES, 1))
    shown, blank = _screenshot(page, tmp_path / "shown.png"), _screenshot(hidden, tmp_path / "hidden.png")
    assert shown.size == (1200, 900)
    box = ImageChops.difference(shown, blank).getbbox()
    assert box is not None                           # hiding only the axis titles changes the pixels: they are drawn
    assert box[3] - box[1] > 100                     # both the x title (below) and the y title (rotated, left)


def test_colour_scale_fits_the_metric():
    """A fraction spans [0, 1]; another metric its own range; a constant one is not padded to +-40 %."""
    from hwsim.dse.report_html import _colour_range

    rows = [{"objectives": {"top1_accuracy": 1.0, "energy_pj": 5.0}}, {"objectives": {"top1_accuracy": 1.0,
                                                                                     "energy_pj": 9.0}}]
    assert _colour_range("top1_accuracy", rows) == {"cmin": 0.0, "cmax": 1.0}
    assert _colour_range("energy_pj", rows) == {"cmin": 5.0, "cmax": 9.0}
    constant = _colour_range("energy_pj", rows[:1])
    assert constant["cmin"] < 5.0 < constant["cmax"] and constant["cmax"] - constant["cmin"] < 0.02

"""MkDocs with image figures: the image is relative to the page's source, bad images are page:line warnings."""

from __future__ import annotations

import pytest

from tests.test_vision import draw_scene


@pytest.mark.parametrize("superfences", [True, False], ids=["superfences", "fenced_code"])
def test_an_image_figure_in_mkdocs(mkdocs_project, tiny_model_dir, open_site, superfences):
    vit = tiny_model_dir("vit")
    page = (
        "# Seeing\n\n"
        f"```attention\nmodel: {vit}\nimage: pics/scene.png\nview: patch\n```\n\n"
        f"```attention\nmodel: {vit}\nimage: pics/nope.png\nview: matrix\n```\n"
    )
    # Material without fonts or search (whose worker a file:// page may not start), as the example course: opened from file://.
    project = mkdocs_project({"index.md": "# Home\n", "guide/seeing.md": page}, superfences=superfences, theme={"name": "material", "font": False})
    project.config["plugins"] = [p for p in project.config["plugins"] if p != "search"]
    project.write_config()
    (project.docs / "guide/pics").mkdir(parents=True)
    draw_scene(project.docs / "guide/pics/scene.png")
    plugin = project.build()
    assert plugin.last.computed == 1 and plugin.last.failed == 1
    warnings = project.warnings()
    assert any(w.startswith("attndocs: guide/seeing.md:9: ") and "nope.png' not found" in w for w in warnings), warnings

    probe = open_site(project.site, "guide/seeing/index.html")
    fig = probe.figures.first
    assert fig.get_attribute("data-attndocs-view") == "patch"
    probe.page.wait_for_function("() => document.querySelector('.attndocs-pdesc').textContent.length > 0")
    before = probe.canvas_stats(".attndocs-pcanvas")["hash"]
    box = fig.locator(".attndocs-pcanvas").bounding_box()
    fig.locator(".attndocs-pcanvas").click(position={"x": box["width"] * 0.9, "y": box["height"] * 0.9})
    assert "Attention from r4c4" in fig.locator(".attndocs-pdesc").inner_text()
    assert probe.canvas_stats(".attndocs-pcanvas")["hash"] != before

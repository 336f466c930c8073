"""Generated tokens in the browser: marked as such, and a step control that replays the writing.

At step t the token written (prompt + t - 1) is highlighted, the position before it (the one
that predicted it) is the locked query, later tokens are dimmed; step=N links open there; the
control works from the keyboard; it fits a phone's column.
"""

from __future__ import annotations

import pytest

from attndocs.record import AttentionRecord
from tests.site.site_probe import open_site, site_browser  # noqa: F401  (fixtures: a built site in Chromium)

PROMPT = ["<s>", "the", "cat", "sat", "on", "the"]
WRITTEN = ["mat", "and", "slept", "quietly"]


def _generated(synthetic_record, *, kind: str = "decoder", qk: bool = True) -> AttentionRecord:
    if kind == "decoder":
        record = synthetic_record("decoder", layers=2, heads=3, qk=qk, tokens=PROMPT + WRITTEN)
    else:
        record = synthetic_record("encoder-decoder", n=5, layers=2, heads=3, qk=qk, target_tokens=["<pad>", *WRITTEN])
    prompt = len(record.sides["decoder"]) - len(WRITTEN)
    record.generation = {
        "side": "decoder", "prompt_tokens": prompt, "new_tokens": len(WRITTEN), "text": " " + " ".join(WRITTEN),
        "stopped": "length", "settings": {"new_tokens": len(WRITTEN), "sampling": False, "seed": None, "temperature": None},
    }
    record.check()
    return record


STATE_JS = "fig => ({step: fig.state.step, token: fig.state.token, locked: fig.state.locked, section: fig.state.section})"
MARKS_JS = """fig => {
  const pick = cls => [...fig.body.querySelectorAll('.attndocs-token.' + cls + '[data-side="q"]')].map(n => +n.dataset.index);
  return {generated: pick('attndocs-generated'), future: pick('attndocs-future'), writing: pick('attndocs-writing'),
          locked: pick('attndocs-locked'), label: fig.frame.querySelector('.attndocs-step-label').textContent};
}"""


def _marks(probe, index: int = 0) -> dict:
    return probe.fig_eval(index, MARKS_JS)


def _wait_step(probe, index: int, step: int) -> None:
    probe.page.wait_for_function("([i, s]) => attndocs.figures()[i].state.step === s", arg=[index, step], timeout=5000)


@pytest.mark.parametrize("view", ["head", "matrix", "neuron"])
def test_step_control_moves_the_written_token_and_the_locked_query(figure_page, synthetic_record, view):
    probe = figure_page([(_generated(synthetic_record), {"view": view})])
    start = len(PROMPT)
    marks = _marks(probe)
    # Opens on the whole sequence: the written tokens are marked, nothing is locked or dimmed.
    assert marks["generated"] == list(range(start, start + len(WRITTEN)))
    assert marks["future"] == [] and marks["writing"] == [] and marks["label"].startswith("all 4 generated tokens")
    figure = probe.figures.nth(0)
    figure.locator('[data-step="next"]').click()
    _wait_step(probe, 0, 1)
    state = probe.fig_eval(0, STATE_JS)
    assert state["token"] == {"side": "q", "index": start - 1} and state["locked"] is True
    marks = _marks(probe)
    assert marks["writing"] == [start] and marks["future"] == list(range(start + 1, start + len(WRITTEN)))
    assert marks["label"] == "step 1 of 4: wrote ‘mat’"
    figure.locator('[data-step="next"]').click()
    figure.locator('[data-step="next"]').click()
    _wait_step(probe, 0, 3)
    state, marks = probe.fig_eval(0, STATE_JS), _marks(probe)
    assert state["token"]["index"] == start + 1 and marks["writing"] == [start + 2] and marks["future"] == [start + 3]
    assert marks["label"] == "step 3 of 4: wrote ‘slept’"
    probe.page.wait_for_function("() => /[/&]step=3(&|$)/.test(location.hash)", timeout=5000)  # the step is linkable
    figure.locator('[data-step="prev"]').click()
    _wait_step(probe, 0, 2)
    assert probe.fig_eval(0, STATE_JS)["token"]["index"] == start


def test_the_head_view_draws_the_lines_of_the_query_that_wrote(figure_page, synthetic_record):
    probe = figure_page([(_generated(synthetic_record), {"view": "head", "step": 2})])
    start = len(PROMPT)
    state = probe.fig_eval(0, STATE_JS)
    assert state["step"] == 2 and state["token"] == {"side": "q", "index": start} and state["locked"]
    # The query token that wrote 'and' is the one the head view shows locked.
    assert _marks(probe)["locked"] == [start]
    before = probe.canvas_stats(".attndocs-figure .attndocs-canvas")
    probe.figures.nth(0).locator('[data-step="next"]').click()
    _wait_step(probe, 0, 3)
    after = probe.canvas_stats(".attndocs-figure .attndocs-canvas")
    assert after["painted"] > 0 and after["hash"] != before["hash"]  # another query's lines


def test_keyboard_moves_through_the_steps(figure_page, synthetic_record):
    probe = figure_page([(_generated(synthetic_record), {"view": "matrix"})])
    slider = probe.figures.nth(0).locator(".attndocs-step-slider")
    slider.focus()
    probe.page.keyboard.press("ArrowRight")
    _wait_step(probe, 0, 1)
    probe.page.keyboard.press("End")
    _wait_step(probe, 0, len(WRITTEN))
    assert slider.get_attribute("aria-valuetext") == "step 4 of 4: wrote ‘quietly’"
    assert _marks(probe)["writing"] == [len(PROMPT) + 3]
    probe.page.keyboard.press("Home")
    _wait_step(probe, 0, 0)
    state = probe.fig_eval(0, STATE_JS)
    assert state["token"] is None and state["locked"] is False and _marks(probe)["future"] == []
    # The buttons are ordinary buttons: Enter presses them.
    forward = probe.figures.nth(0).locator('[data-step="next"]')
    forward.focus()
    probe.page.keyboard.press("Enter")
    _wait_step(probe, 0, 1)


def test_play_replays_to_the_end_and_pauses(figure_page, synthetic_record):
    probe = figure_page([(_generated(synthetic_record), {"view": "head"})])
    play = probe.figures.nth(0).locator('[data-step="play"]')
    play.click()
    assert play.get_attribute("aria-pressed") == "true"
    _wait_step(probe, 0, 2)
    play.click()
    assert play.get_attribute("aria-pressed") == "false"
    paused = probe.fig_eval(0, "fig => fig.state.step")
    probe.page.wait_for_timeout(1200)
    assert probe.fig_eval(0, "fig => fig.state.step") == paused


def test_a_link_with_step_opens_there(figure_page, open_html, synthetic_record):
    first = figure_page([(_generated(synthetic_record), {"view": "neuron", "name": "wrote"})])
    html = first.path.read_text(encoding="utf-8")
    probe = open_html(html, name="linked.html", fragment="#wrote/step=4")
    state = probe.fig_eval(0, STATE_JS)
    assert state["step"] == 4 and state["token"] == {"side": "q", "index": len(PROMPT) + 2} and state["locked"]
    assert _marks(probe)["label"] == "step 4 of 4: wrote ‘quietly’"
    # A step past what the model wrote (a link made for another text) is ignored.
    other = open_html(html, name="other.html", fragment="#wrote/step=9")
    assert other.fig_eval(0, STATE_JS)["step"] == 0


def test_encoder_decoder_steps_show_the_decoders_own_attention(figure_page, synthetic_record):
    probe = figure_page([(_generated(synthetic_record, kind="encoder-decoder"), {"view": "head"})])
    assert probe.fig_eval(0, STATE_JS)["section"] == "encoder"
    probe.figures.nth(0).locator('[data-step="next"]').click()
    _wait_step(probe, 0, 1)
    state = probe.fig_eval(0, STATE_JS)
    assert state["section"] == "decoder" and state["token"] == {"side": "q", "index": 0}
    assert _marks(probe)["writing"] == [1]


@pytest.mark.parametrize("view", ["model", "summary"])
def test_model_and_summary_show_the_whole_sequence_and_the_written_text(figure_page, synthetic_record, view):
    probe = figure_page([(_generated(synthetic_record), {"view": view})])
    figure = probe.figures.nth(0)
    assert figure.locator(".attndocs-step-slider").count() == 0
    assert figure.locator(".attndocs-steps").inner_text().startswith("The model wrote 4 tokens: “mat and slept quietly”")
    assert figure.locator(".attndocs-gen-key").is_visible()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1280])
def test_the_step_bar_fits_its_column(figure_page, synthetic_record, width, color_scheme):
    probe = figure_page(
        [(_generated(synthetic_record), {"view": view, "step": 2}) for view in ("head", "matrix", "neuron")],
        viewport={"width": width, "height": 900}, color_scheme=color_scheme,
    )
    boxes = probe.page.evaluate(
        """() => [...document.querySelectorAll('.attndocs-figure')].map(f => {
             const frame = f.querySelector('.attndocs-frame').getBoundingClientRect();
             const bar = f.querySelector('.attndocs-steps');
             const parts = [...bar.querySelectorAll('*')].map(n => n.getBoundingClientRect());
             return {frame: [frame.left, frame.right], right: Math.max(...parts.map(r => r.right)),
                     left: Math.min(...parts.map(r => r.left)), over: bar.scrollWidth - bar.clientWidth};
           })"""
    )
    for box in boxes:
        assert box["left"] >= box["frame"][0] - 0.5 and box["right"] <= box["frame"][1] + 0.5, box
        assert box["over"] <= 0, box
    writing = probe.page.locator(".attndocs-token.attndocs-writing").first
    assert writing.is_visible()


def test_a_built_site_replays_what_a_tiny_model_wrote_offline(open_site, tiny_model_dir, tmp_path):  # noqa: F811
    """attndocs build end to end: a real model writes, the page opens from file:// with the network off."""
    from attndocs.site import build_site

    src = tmp_path / "src"
    src.mkdir()
    fence = f"```attention\nmodel: {tiny_model_dir('gpt2')}\ngenerate: 3\nview: matrix\nname: wrote\n\nthe cat sat\n```\n"
    (src / "index.md").write_text("# Writing\n\n" + fence, encoding="utf-8")
    report = build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    probe = open_site(report.out, "index.html", via="file", fragment="#wrote/step=2")
    state = probe.fig_eval(0, STATE_JS)
    header = probe.fig_eval(0, "fig => fig.header.generation")
    assert state["step"] == 2 and state["token"] == {"side": "q", "index": header["promptLength"]}
    assert _marks(probe)["writing"] == [header["promptLength"] + 1]
    assert _marks(probe)["label"].startswith("step 2 of 3: wrote")

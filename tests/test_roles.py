"""Named head roles: scores on hand-made attention, thresholds, what the payload ships, and every host."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import attndocs
from attndocs.analysis import head_statistics, payload_extras, record_statistics
from attndocs.errors import OptionError
from attndocs.options import FigureOptions
from attndocs.record import AttentionRecord, Section, Side
from attndocs.render import figure_payloads, render_figure
from attndocs.roles import (
    INDUCTION_MIN_QUERIES,
    THRESHOLDS,
    available_roles,
    describe,
    head_role_scores,
    induction_targets,
    named,
    percent,
    record_role_scores,
)
from attndocs.state import HEAD_ROLES

ROOTS = Path(__file__).parent / "roots"


# -- hand-made heads --------------------------------------------------------------------------------
def _section(*heads: np.ndarray, causal: bool = False, rows: str = "encoder", cols: str = "encoder") -> Section:
    attention = np.stack([np.asarray(h, np.float32) for h in heads])[None]  # one layer
    return Section(name="s", attention=attention, rows=rows, cols=cols, causal=causal)


def _previous(n: int, causal: bool) -> np.ndarray:
    a = np.zeros((n, n))
    a[0, 0 if causal else 1] = 1.0  # row 0 has no previous token: itself (causal) or the next one
    for i in range(1, n):
        a[i, i - 1] = 1.0
    return a


def _uniform(n: int, causal: bool) -> np.ndarray:
    a = np.tril(np.ones((n, n))) if causal else np.ones((n, n))
    return a / a.sum(axis=1, keepdims=True)


def _on_column(n: int, col: int) -> np.ndarray:
    a = np.zeros((n, n))
    a[:, col] = 1.0
    return a


def _scores(*heads: np.ndarray, **kwargs) -> dict[str, np.ndarray]:
    causal = kwargs.pop("causal", False)
    return head_role_scores(_section(*heads, causal=causal), **kwargs)


@pytest.mark.parametrize("causal", [False, True])
def test_a_pure_previous_token_head_scores_one_and_is_named(causal):
    scores = _scores(_previous(10, causal), causal=causal)
    assert scores["previous"][0, 0] == pytest.approx(1.0)
    assert describe(scores, 0, 0)[0] == ("previous", 1.0)
    assert scores["current"][0, 0] == pytest.approx(0.0)  # causal row 0 attends itself: no choice, left out
    assert not named("current", scores["current"])[0, 0]


@pytest.mark.parametrize("causal", [False, True])
def test_a_uniform_head_is_broad_and_nothing_else(causal):
    n = 12
    scores = _scores(_uniform(n, causal), causal=causal, key_special=[False] * n)
    assert scores["broad"][0, 0] == pytest.approx(1.0)
    assert [role for role, _ in describe(scores, 0, 0)] == ["broad"]
    if causal:  # rows 1..n-1 give 1 / (i + 1) to themselves; row 0 (no choice) is left out
        assert scores["current"][0, 0] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, n)]))
    else:
        assert scores["current"][0, 0] == pytest.approx(1 / n)


def test_a_head_on_cls_or_sep_is_a_sink_and_the_score_counts_first_and_special_tokens():
    n = 9
    special = [True] + [False] * (n - 2) + [True]  # [CLS] ... [SEP]
    scores = _scores(_on_column(n, 0), _on_column(n, n - 1), _on_column(n, 4), key_special=special)
    np.testing.assert_allclose(scores["sink"][0], [1.0, 1.0, 0.0])
    assert named("sink", scores["sink"])[0].tolist() == [True, True, False]
    # Without special tokens (GPT-2 style) the first token alone is the sink.
    plain = _scores(_on_column(n, 0), _on_column(n, n - 1), key_special=None)
    np.testing.assert_allclose(plain["sink"][0], [1.0, 0.0])


def test_the_first_row_of_a_causal_section_counts_for_no_role():
    n = 6
    head = np.zeros((n, n))
    head[0, 0] = 1.0  # forced
    for i in range(1, n):
        head[i, i] = 1.0  # a current-token head
    scores = _scores(head, causal=True)
    assert scores["current"][0, 0] == pytest.approx(1.0)
    assert scores["sink"][0, 0] == pytest.approx(0.0)  # row 0 on the first token would be a free sink share


# -- induction --------------------------------------------------------------------------------------
TOKENS = ["[CLS]", "a", "b", "c", "d", "a", "b", "c", "d", "[SEP]"]
SPECIAL = [t.startswith("[") for t in TOKENS]


def _induction_head(n: int, targets: dict[int, list[int]]) -> np.ndarray:
    head = _uniform(n, causal=True)
    for i, keys in targets.items():
        head[i] = 0.0
        head[i, keys] = 1.0 / len(keys)
    return head


def test_induction_is_the_share_on_the_token_after_the_previous_occurrence():
    targets = induction_targets(TOKENS, SPECIAL)
    assert targets == {5: [2], 6: [3], 7: [4], 8: [5]}  # "a" at 5 looks at "b" at 2, ...; [SEP] is no query
    n = len(TOKENS)
    scores = _scores(_induction_head(n, targets), _previous(n, causal=True), causal=True, tokens=TOKENS, row_special=SPECIAL)
    assert scores["induction"][0, 0] == pytest.approx(1.0)
    assert named("induction", scores["induction"])[0].tolist() == [True, False]
    # "d" at 8: its earlier occurrence at 4 is followed by "a" at 5, two back: not the previous token 7.
    assert scores["induction"][0, 1] == pytest.approx(0.0)


def test_no_induction_score_without_repeats_or_with_too_few():
    n = 8
    unique = [f"t{k}" for k in range(n)]
    assert "induction" not in _scores(_uniform(n, True), causal=True, tokens=unique)
    few = ["x", "a", "b", "y", "a", "b", "z", "w"]  # two repeated queries: fewer than the minimum
    assert len(induction_targets(few)) < INDUCTION_MIN_QUERIES
    assert "induction" not in _scores(_uniform(n, True), causal=True, tokens=few)
    # A token repeated right after itself points at the previous token: never an induction target.
    assert induction_targets(["x", "x", "x", "x"]) == {3: [1]}


def test_cross_attention_has_only_sink_and_broad():
    a = _uniform(4, False)[:3]  # 3 decoder rows over 4 encoder keys
    scores = head_role_scores(_section(a, rows="decoder", cols="encoder"), key_special=[True, False, False, True], tokens=None)
    assert set(scores) == {"sink", "broad"}
    assert scores["sink"][0, 0] == pytest.approx(0.5)


# -- thresholds ----------------------------------------------------------------------------------------
def test_a_head_is_named_when_its_shipped_score_reaches_the_threshold():
    for role, threshold in THRESHOLDS.items():
        at = np.array([[threshold, threshold - 0.01, threshold - 0.004, 1.0, 0.0]])
        assert named(role, at)[0].tolist() == [True, False, True, True, False], role  # 0.696 ships as 0.70
    assert set(THRESHOLDS) == set(HEAD_ROLES)
    assert all(0.0 < t < 1.0 for t in THRESHOLDS.values())


def test_random_softmax_heads_are_rarely_named():
    rng = np.random.default_rng(7)
    named_heads = total = 0
    for causal in (False, True):
        for n in (12, 24):
            logits = rng.normal(size=(2, 24, n, n)) * 2
            if causal:
                logits = np.where(np.tril(np.ones((n, n), bool)), logits, -np.inf)
            w = np.exp(logits - logits.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            tokens = [f"t{k % (n // 2)}" for k in range(n)]  # the text repeats: induction is scored
            section = Section("s", w.astype(np.float32), "encoder", "encoder", causal=causal)
            scores = head_role_scores(section, key_special=[k == 0 for k in range(n)], tokens=tokens)
            assert "induction" in scores
            for role, values in scores.items():
                named_heads += int(named(role, values).sum())
                total += values.size
    assert named_heads / total < 0.02, f"{named_heads} of {total} random role scores named"


# -- records and payloads --------------------------------------------------------------------------------
def _record(tokens: list[str], attention: np.ndarray, *, special: list[bool] | None = None) -> AttentionRecord:
    side = Side(tokens=tokens, display=tokens, special=special or [False] * len(tokens))
    return AttentionRecord(
        model_id="hand-made", revision="r", model_type="bert", kind="encoder", text=" ".join(tokens),
        sides={"encoder": side}, sections={"encoder": Section("encoder", attention.astype(np.float32), "encoder", "encoder")},
    )


def _layered(rng: np.random.Generator, layers: int, heads: int, n: int) -> np.ndarray:
    """Random heads with a planted previous-token head (0, 1) and sink head (1, 2)."""
    logits = rng.normal(size=(layers, heads, n, n)) * 1.5
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    w[0, 1] = _previous(n, causal=False)
    w[1, 2] = _on_column(n, 0)
    return w


def test_the_summary_ships_every_included_heads_scores_within_rounding():
    rng = np.random.default_rng(3)
    record = _record(TOKENS, _layered(rng, 3, 4, len(TOKENS)), special=SPECIAL)
    scores = record_role_scores(record, "encoder")
    _, info = payload_extras(record, FigureOptions(view="summary", include_layers=(0, 2), include_heads=(1, 2, 3)))
    shipped = info["sections"]["encoder"]["roles"]
    assert set(shipped) == set(scores) == set(HEAD_ROLES)
    for role, values in scores.items():
        np.testing.assert_allclose(np.asarray(shipped[role]) / 100, values[np.ix_([0, 2], [1, 2, 3])], atol=0.005)
    assert info["roleThresholds"] == {role: round(t * 100) for role, t in THRESHOLDS.items()}
    assert shipped["previous"][0][0] == 100  # layer 0, head 1


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("first_special", [True, False])
def test_scores_are_the_same_from_the_summarys_statistics_for_some_heads_or_alone(causal, first_special):
    # The summary hands its statistics over (its special and self shares stand in for sink and current
    # where they are the same number); the head view scores the included heads alone. Same floats.
    rng = np.random.default_rng(9)
    tokens = TOKENS + TOKENS  # repeated: induction is scored
    n = len(tokens)
    special = [first_special and k == 0 or k == n - 1 for k in range(n)]
    attention = _layered(rng, 3, 4, n)
    if causal:
        attention = np.tril(attention)
        attention[:, :, 0, 0] = 1.0  # row 0 sees itself alone
        attention /= attention.sum(-1, keepdims=True)
    section = Section("encoder", attention.astype(np.float32), "encoder", "encoder", causal=causal)
    facts = {"key_special": special, "tokens": tokens, "row_special": special}
    alone = head_role_scores(section, **facts)
    assert "induction" in alone
    stats = head_statistics(section, key_special=special)
    handed = head_role_scores(section, statistics=stats, **facts)
    some = head_role_scores(section, layers=[1, 2], heads=[0, 2, 3], **facts)
    some_handed = head_role_scores(
        section, statistics=head_statistics(section, key_special=special, layers=[1, 2], heads=[0, 2, 3]), layers=[1, 2], heads=[0, 2, 3], **facts
    )
    for role, values in alone.items():
        assert np.array_equal(handed[role], values), role
        assert np.array_equal(some[role], values[np.ix_([1, 2], [0, 2, 3])]), role
        assert np.array_equal(some_handed[role], some[role]), role


@pytest.mark.parametrize("view", ["head", "model"])
def test_the_head_and_model_views_ship_only_the_named_heads_and_the_same_names(view):
    rng = np.random.default_rng(4)
    record = _record(TOKENS, _layered(rng, 3, 4, len(TOKENS)), special=SPECIAL)
    scores = record_role_scores(record, "encoder")
    arrays, info = payload_extras(record, FigureOptions(view=view, include_heads=(1, 2)))
    assert arrays == {}
    section = info["sections"]["encoder"]
    assert set(section) == {"named"}
    for role, values in scores.items():
        expected = [[int(li), int(hi), int(percent(values)[li, hi])] for li, hi in zip(*np.nonzero(named(role, values))) if hi in (1, 2)]
        assert section["named"][role] == expected, role
    assert [1, 2, 100] in section["named"]["sink"] and [0, 1, 100] in section["named"]["previous"]


def test_head_view_scores_of_included_heads_equal_the_full_computation():
    rng = np.random.default_rng(5)
    record = _record(TOKENS, _layered(rng, 3, 4, len(TOKENS)), special=SPECIAL)
    every = payload_extras(record, FigureOptions(view="head"))[1]["sections"]["encoder"]["named"]
    some = payload_extras(record, FigureOptions(view="head", include_layers=(1,), include_heads=(2, 3)))[1]["sections"]["encoder"]["named"]
    for role in every:
        assert some[role] == [t for t in every[role] if t[0] == 1 and t[1] in (2, 3)]


@pytest.mark.parametrize("view", ["matrix", "neuron"])
def test_other_views_ship_no_roles(view):
    rng = np.random.default_rng(6)
    record = _record(TOKENS, _layered(rng, 2, 3, len(TOKENS)), special=SPECIAL)
    _, info = payload_extras(record, FigureOptions(view=view))
    assert "roleThresholds" not in info
    assert all("roles" not in s and "named" not in s for s in info.get("sections", {}).values())
    if view == "matrix":  # the matrix view's statistics are unchanged by roles
        stats = record_statistics(record, "encoder")
        assert info["sections"]["encoder"]["stats"]["previous"][0][0] == round(float(stats["previous"][0, 0]), 5)


def test_available_roles_follow_the_text_and_section():
    rng = np.random.default_rng(8)
    repeated = _record(TOKENS, _layered(rng, 2, 3, len(TOKENS)), special=SPECIAL)
    assert available_roles(repeated, "encoder") == list(HEAD_ROLES)
    assert set(available_roles(repeated, "encoder")) == set(record_role_scores(repeated, "encoder"))
    unique = [f"w{k}" for k in range(6)]
    once = _record(unique, _layered(rng, 2, 3, 6))
    assert available_roles(once, "encoder") == ["sink", "previous", "current", "broad"]


# -- the option ------------------------------------------------------------------------------------------
def test_role_is_an_opening_state_key_of_the_head_model_and_summary_views():
    rng = np.random.default_rng(9)
    record = _record(TOKENS, _layered(rng, 2, 3, len(TOKENS)), special=SPECIAL)
    for view in ("head", "model", "summary"):
        header = figure_payloads(render_figure(record, FigureOptions(view=view, role="sink")).html)[0]["header"]
        assert header["options"]["state"]["role"] == "sink"
    with pytest.raises(OptionError, match="option 'role' does nothing in the matrix view") as error:
        render_figure(record, FigureOptions(view="matrix", role="sink"))
    assert "head" in error.value.hint
    with pytest.raises(OptionError, match="role") as error:
        FigureOptions.from_mapping({"view": "head", "role": "teacher"})
    assert "sink, previous, current, broad, induction" in str(error.value) + str(error.value.hint)


def test_induction_without_repeated_text_is_an_error_that_says_so():
    rng = np.random.default_rng(10)
    record = _record([f"w{k}" for k in range(6)], _layered(rng, 2, 3, 6))
    with pytest.raises(OptionError, match="role' is induction, which needs repeated text") as error:
        render_figure(record, FigureOptions(view="head", role="induction"))
    assert "sink, previous, current, broad" in error.value.hint


def test_rebuilds_are_byte_identical():
    rng = np.random.default_rng(11)
    record = _record(TOKENS, _layered(rng, 2, 3, len(TOKENS)), special=SPECIAL)
    for view in ("head", "summary"):
        options = FigureOptions(view=view, role="previous")
        assert render_figure(record, options).html == render_figure(record, options).html


# -- real models: the numbers the thresholds were picked on ------------------------------------------------
@pytest.mark.real
def test_minilm_names_sink_heads_and_its_previous_token_head(tmp_path):
    shown = attndocs.figure(
        "The cat sat on the mat. The cat sat on the mat.", view="summary", role="sink", html_action="return",
        settings={"cache_dir": str(tmp_path / "cache")},
    )
    header = figure_payloads(shown.data)[0]["header"]
    assert header["options"]["state"]["role"] == "sink"
    roles = header["analysis"]["sections"]["encoder"]["roles"]
    assert set(roles) == set(HEAD_ROLES)  # the text repeats: induction is scored
    sink = np.asarray(roles["sink"])
    assert 0 < (sink >= 70).sum() < sink.size // 2  # some heads, not most
    assert (np.asarray(roles["previous"]) >= 60).sum() >= 1  # BERT's previous-token head (layer 0 here)
    assert (np.asarray(roles["induction"]) >= 40).sum() == 0  # minilm, a bidirectional encoder, has no induction head


# -- hosts -----------------------------------------------------------------------------------------------
def _fence(model: str | Path, view: str, role: str, text: str) -> str:
    return f"```attention\nmodel: {model}\nview: {view}\nrole: {role}\n\n{text}\n```\n"


def _assert_role_figure(html: str, view: str, role: str) -> None:
    (payload,) = figure_payloads(html)
    header = payload["header"]
    assert header["view"] == view and header["options"]["state"]["role"] == role
    section = header["analysis"]["sections"]["encoder"]
    assert role in (section["roles"] if view == "summary" else section["named"])


def test_attndocs_build(tiny_model_dir, tmp_path):
    from attndocs.site import build_site

    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text("# Roles\n\n" + _fence(tiny_model_dir("bert"), "summary", "broad", "The cat sat on the mat."), encoding="utf-8")
    report = build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    _assert_role_figure((report.out / "index.html").read_text(encoding="utf-8"), "summary", "broad")


def test_mkdocs(tiny_model_dir, tmp_path):
    import yaml
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "index.md").write_text("# Roles\n\n" + _fence(tiny_model_dir("bert"), "head", "broad", "The cat sat on the mat."), encoding="utf-8")
    config = {"site_name": "Roles", "markdown_extensions": ["fenced_code"], "plugins": [{"attndocs": {}}]}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build(load_config(str(root / "mkdocs.yml")))
    _assert_role_figure((root / "site" / "index.html").read_text(encoding="utf-8"), "head", "broad")


@pytest.mark.real
def test_sphinx(tmp_path):
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    shutil.copytree(ROOTS / "test-roles", src)
    out = tmp_path / "html"
    status = build_main([str(src), str(out), "-b", "html", "-q", "-W", "-D", f"attention_cache_dir={tmp_path / 'cache'}"])
    assert status == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    head, summary = figure_payloads(html)
    assert head["header"]["options"]["state"]["role"] == "sink" and summary["header"]["options"]["state"]["role"] == "previous"
    assert head["header"]["analysis"]["sections"]["encoder"]["named"]["sink"]  # minilm has sink heads


def test_notebook_figure(tiny_model_dir, tmp_path):
    shown = attndocs.figure(
        "The cat sat on the mat.", model=str(tiny_model_dir("bert")), view="head", role="broad", html_action="return",
        settings={"cache_dir": str(tmp_path / "cache")},
    )
    _assert_role_figure(shown.data, "head", "broad")

// attndocs head roles: names the well-known patterns a head shows (attention sink, previous
// token, current token, broad, induction-like), from the per-head scores attndocs/roles.py
// ships in header.analysis: every included head's score in the summary view, the named heads
// only in the head view (see tableOf), and roleThresholds {role: percent}. A head is named
// with a role when its score reaches the role's threshold; the views show the names, and
// fig.state.role highlights one role's heads.
//
//  attndocs.roles.available(fig, section) -> [role names the section has scores for]
//  attndocs.roles.score(fig, section, layer, head, role) -> 0..1 | null (model indices)
//  attndocs.roles.named(fig, section, layer, head) -> [{role, score}] the head's roles, best first
//  attndocs.roles.heads(fig, section, layer, role) -> [heads of the layer named `role`]
//  attndocs.roles.badges(list) -> "sink 0.92, previous 0.71"
//  attndocs.roles.threshold(fig, role) -> 0..1
//  attndocs.roles.control(fig, onPick?) -> <label><select> none | roles</label>; .sync()
//  attndocs.roles.markHeads(fig, bar) marks the head selector's buttons of the highlighted role
//  attndocs.roles.line(fig, host) -> {el, update()}: "Head 3: previous token (0.81)" under the heads

var util = attndocs.util;
var el = util.el;
var roles = attndocs.roles = {};

// The order and values of attndocs/state.py HEAD_ROLES.
roles.ROLES = ["sink", "previous", "current", "broad", "induction"];
roles.LABELS = {
  sink: "attention sink", previous: "previous token", current: "current token", broad: "broad", induction: "induction-like",
};
roles.SHORT = { sink: "sink", previous: "previous", current: "current", broad: "broad", induction: "induction" };
// What each score measures (docs/head-roles.md says more).
roles.SCORES = {
  sink: "share of attention on the first token and special tokens",
  previous: "share of attention on the token just before",
  current: "share of attention a token gives itself",
  broad: "normalised entropy: 1 = spread evenly over every key",
  induction: "share on the token that followed an earlier occurrence of the query's token",
};

// {role: {"layer/head": percent}} of a section, from either form the payload ships: the summary's
// dense sections[s].roles ([[percent per head] per layer]) or the head view's sparse
// sections[s].named ([[layer, head, percent]] of the named heads only). Built once per figure.
function tableOf(fig, section) {
  var a = fig.header.analysis;
  var s = a && a.sections ? util.own(a.sections, section) : null;
  if (!s || !(s.roles || s.named)) return null;
  var cache = fig._roleTables = fig._roleTables || {};
  if (util.own(cache, section)) return cache[section];
  var out = {};
  Object.keys(s.roles || s.named).forEach(function (role) {
    var map = out[role] = {};
    if (s.roles) {
      s.layers.forEach(function (l, li) { s.heads.forEach(function (h, hi) { map[l + "/" + h] = s.roles[role][li][hi]; }); });
    } else {
      s.named[role].forEach(function (t) { map[t[0] + "/" + t[1]] = t[2]; });
    }
  });
  cache[section] = out;
  return out;
}

roles.available = function (fig, section) {
  var t = tableOf(fig, section);
  return t ? roles.ROLES.filter(function (r) { return util.own(t, r); }) : [];
};

roles.threshold = function (fig, role) {
  var t = fig.header.analysis && fig.header.analysis.roleThresholds;
  return t && t[role] != null ? t[role] / 100 : null;
};

function percent(fig, section, layer, head, role) {
  var t = tableOf(fig, section), map = t ? util.own(t, role) : null;
  var p = map ? util.own(map, layer + "/" + head) : null;
  return p == null ? null : p;
}

roles.score = function (fig, section, layer, head, role) {
  var p = percent(fig, section, layer, head, role);
  return p == null ? null : p / 100;
};

// Judged in whole percent, as attndocs/roles.py names them: the number shown and the name agree.
function isNamed(fig, section, layer, head, role) {
  var p = percent(fig, section, layer, head, role), t = fig.header.analysis.roleThresholds;
  return p != null && t != null && p >= t[role];
}

roles.named = function (fig, section, layer, head) {
  return roles.available(fig, section).filter(function (r) { return isNamed(fig, section, layer, head, r); })
    .map(function (r) { return { role: r, score: roles.score(fig, section, layer, head, r) }; })
    .sort(function (a, b) { return b.score - a.score; });
};

roles.heads = function (fig, section, layer, role) {
  if (roles.available(fig, section).indexOf(role) < 0) return [];
  return fig.section(section).heads.filter(function (h) { return isNamed(fig, section, layer, h, role); });
};

roles.badges = function (list) {
  return list.map(function (x) { return roles.SHORT[x.role] + " " + x.score.toFixed(2); }).join(", ");
};

// "sink: share of attention on ... (named from 0.70)"
roles.describe = function (fig, role) {
  var t = roles.threshold(fig, role);
  return roles.LABELS[role] + ": " + roles.SCORES[role] + (t != null ? " (named from " + t.toFixed(2) + ")" : "");
};

// The role the figure highlights, or null ("none", or one this section has no score for).
roles.current = function (fig) {
  var r = fig.state.role;
  return r && r !== "none" && roles.available(fig, fig.state.section).indexOf(r) >= 0 ? r : null;
};

// -- the control -------------------------------------------------------------------------------
// A select of the roles the figure has scores for; picking one sets fig.state.role and, where
// onPick is given, whatever else the view does with it (the head view selects those heads).
roles.control = function (fig, onPick) {
  function items() {
    var list = [{ value: "none", label: "none" }];
    roles.available(fig, fig.state.section).forEach(function (r) { list.push({ value: r, label: roles.LABELS[r] }); });
    return list;
  }
  var wrap = util.select("Role", items(), roles.current(fig) || "none", function (value) {
    var patch = { role: value };
    if (onPick) onPick(value, patch);
    fig.setState(patch);
    if (value !== "none") {
      var hit = roles.heads(fig, fig.state.section, fig.state.layer, value);
      fig.announce(roles.LABELS[value] + ": " + (hit.length ? "heads " + attndocs._ranges(hit) + " of layer " + fig.state.layer :
        "no head of layer " + fig.state.layer + " reaches " + roles.threshold(fig, value).toFixed(2)));
    }
  });
  wrap.classList.add("attndocs-rolectl");
  wrap.select.title = "Highlight the heads named with a role (thresholds: the ? help)";
  // The roles of the section shown (induction needs repeated text, cross attention has fewer).
  wrap.sync = function () {
    var value = roles.current(fig) || "none";
    wrap.select.textContent = "";
    items().forEach(function (item) { wrap.select.appendChild(el("option", { value: item.value, text: item.label })); });
    wrap.select.value = value;
  };
  return wrap;
};

// The head view's selection for a picked role: the named heads of the current layer, or the
// selection as it was when none of them is named (an empty drawing would say less).
roles.pickHeads = function (fig, role, patch) {
  if (role === "none") return;
  var hit = roles.heads(fig, fig.state.section, fig.state.layer, role);
  if (hit.length) patch.heads = hit;
};

// -- the head selector -------------------------------------------------------------------------
roles.markHeads = function (fig, bar) {
  var section = fig.state.section, layer = fig.state.layer, role = roles.current(fig);
  bar.querySelectorAll(".attndocs-head").forEach(function (b) {
    var h = +b.getAttribute("data-head"), list = roles.named(fig, section, layer, h);
    var hit = role != null && list.some(function (x) { return x.role === role; });
    b.classList.toggle("attndocs-role-hit", hit);
    var base = b.getAttribute("data-title") || b.title;
    b.setAttribute("data-title", base);
    b.title = base + (list.length ? "\n" + roles.badges(list) : "");
    b.setAttribute("aria-label", "Head " + h + (list.length ? ", " + list.map(function (x) { return roles.LABELS[x.role]; }).join(", ") : ""));
  });
};

// The line under the head selector: what the selected heads of this layer are named.
roles.line = function (fig, host) {
  var node = el("p", { class: "attndocs-roleline" });
  host.appendChild(node);
  function update() {
    var section = fig.state.section, layer = fig.state.layer, role = roles.current(fig);
    node.hidden = !roles.available(fig, section).length;
    if (node.hidden) return;
    var parts = [];
    if (role) {
      var hit = roles.heads(fig, section, layer, role);
      parts.push((hit.length ? roles.LABELS[role] + ": head" + (hit.length > 1 ? "s " : " ") + attndocs._ranges(hit) :
        "no " + roles.LABELS[role] + " head") + " in layer " + layer + " (score \u2265 " + roles.threshold(fig, role).toFixed(2) + ")");
    }
    var heads = fig.state.heads || [], named = [];
    heads.forEach(function (h) {
      var list = roles.named(fig, section, layer, h);
      if (list.length) {
        named.push("head " + h + ": " + list.map(function (x) { return roles.LABELS[x.role] + " (" + x.score.toFixed(2) + ")"; }).join(", "));
      }
    });
    if (named.length) parts.push(named.join(" \u00b7 "));
    else if (!role) parts.push(heads.length === 1 ? "head " + heads[0] + ": no named role" : "no named role among the selected heads");
    node.textContent = parts.join(" \u2014 ");
    node.title = roles.available(fig, section).map(function (r) { return roles.describe(fig, r); }).join("\n");
  }
  update();
  return { el: node, update: update };
};

// The roles' explanations in the figure's help panel (20-explain.js shows fig._helpNotes).
roles.helpNote = function (fig) {
  var texts = attndocs.explain.ROLE_HELP || {};
  var list = el("dl", { class: "attndocs-helpkeys attndocs-rolehelp" });
  roles.available(fig, fig.state.section).forEach(function (r) {
    list.appendChild(el("dt", { text: roles.LABELS[r] }));
    list.appendChild(el("dd", { text: roles.describe(fig, r) + ". " + (texts[r] || "") }));
  });
  (fig._helpNotes = fig._helpNotes || []).push(el("div", null, [el("p", { class: "attndocs-helptitle", text: "Head roles" }), list]));
};

// -- the head view's part ------------------------------------------------------------------------
// The role select in the controls, the line under the head selector (bar), the marks on the
// heads of the highlighted role and the roles' help. null when the payload has no scores.
// update(changes) after the view's own update has redrawn the head selector.
roles.headView = function (fig, bar) {
  if (!roles.available(fig, fig.state.section).length) return null;
  fig.defineState(["role"]);
  var ctl = roles.control(fig, function (role, patch) { roles.pickHeads(fig, role, patch); });
  fig.controls.appendChild(ctl);
  var line = roles.line(fig, fig.body);
  bar.after(line.el);  // directly under the head selector
  roles.markHeads(fig, bar);
  roles.helpNote(fig);
  return {
    update: function (changes) {
      if ("section" in changes) ctl.sync();
      else if ("role" in changes) ctl.set(roles.current(fig) || "none");
      if ("section" in changes || "layer" in changes || "role" in changes || "heads" in changes) {
        roles.markHeads(fig, bar);
        line.update();
      }
    },
  };
};

// -- the summary view's part ---------------------------------------------------------------------
// The role select, marks on the grid's cells and the table's rows of the highlighted role, the
// roles in each cell's tooltip, a Roles column and the open head's roles. null without scores.
roles.summaryView = function (fig) {
  if (!roles.available(fig, fig.state.section).length) return null;
  fig.defineState(["role"]);
  var ctl = roles.control(fig);
  fig.controls.appendChild(ctl);
  roles.helpNote(fig);
  function list(layer, head) { return roles.named(fig, fig.state.section, layer, head); }
  function hit(layer, head) {
    var role = roles.current(fig);
    return role != null && list(layer, head).some(function (x) { return x.role === role; });
  }
  return {
    // " · sink 0.92 (named from 0.70)": what a cell's tooltip adds.
    note: function (layer, head) {
      return list(layer, head).map(function (x) {
        return " \u00b7 " + roles.SHORT[x.role] + " " + x.score.toFixed(2) + " (named from " + roles.threshold(fig, x.role).toFixed(2) + ")";
      }).join("");
    },
    mark: function (node, layer, head) {
      node.classList.toggle("attndocs-role-hit", hit(layer, head));
      var named = list(layer, head);
      if (!named.length) return;
      node.title += "\n" + roles.badges(named);
      node.setAttribute("aria-label", node.getAttribute("aria-label") + "; " + named.map(function (x) { return roles.LABELS[x.role]; }).join(", "));
    },
    // The table's Roles column: sorted by the highlighted role's score (else the best named one).
    column: {
      key: "roles", label: "Roles", title: "named head roles and their scores",
      value: function (layer, head) {
        var role = roles.current(fig);
        if (role) return roles.score(fig, fig.state.section, layer, head, role);
        var named = list(layer, head);
        return named.length ? named[0].score : 0;
      },
      text: function (layer, head) { return roles.badges(list(layer, head)); },
    },
    detail: function (dl, layer, head) {
      var named = list(layer, head);
      dl.appendChild(el("dt", { text: "Roles" }));
      dl.appendChild(el("dd", {
        class: "attndocs-roles", text: named.length ? named.map(function (x) { return roles.LABELS[x.role] + " " + x.score.toFixed(2); }).join(", ") : "none named",
        title: roles.available(fig, fig.state.section).map(function (r) { return roles.describe(fig, r); }).join("\n"),
      }));
    },
    update: function (changes) {
      if ("section" in changes) ctl.sync();
      else if ("role" in changes) ctl.set(roles.current(fig) || "none");
    },
  };
};

// -- the model view's part -----------------------------------------------------------------------
// The role select, and an outline on the thumbnails (.attndocs-thumb in grid) of the highlighted
// role's heads, in every layer; each thumbnail's tooltip names its roles. null without scores.
// mark() after the grid is (re)built.
roles.modelView = function (fig, grid) {
  if (!roles.available(fig, fig.state.section).length) return null;
  fig.defineState(["role"]);
  var ctl = roles.control(fig);
  fig.controls.appendChild(ctl);
  roles.helpNote(fig);
  function mark() {
    var section = fig.state.section, role = roles.current(fig);
    grid.querySelectorAll(".attndocs-thumb").forEach(function (b) {
      var layer = +b.getAttribute("data-layer"), head = +b.getAttribute("data-head"), list = roles.named(fig, section, layer, head);
      b.classList.toggle("attndocs-role-hit", role != null && list.some(function (x) { return x.role === role; }));
      var base = "Layer " + layer + ", head " + head;
      b.title = base + (list.length ? ": " + roles.badges(list) : "");
      b.setAttribute("aria-label", base + (list.length ? ", " + list.map(function (x) { return roles.LABELS[x.role]; }).join(", ") : ""));
    });
  }
  return {
    mark: mark,
    update: function (changes) {
      if ("section" in changes) ctl.sync();
      else if ("role" in changes) ctl.set(roles.current(fig) || "none");
      if ("role" in changes) mark();
    },
  };
};

// recloop dashboard: pick a user, give feedback on their top-10, watch the model learn.
// Reads /ui/api/* and posts to /events; no build step, no framework.
"use strict";
(function () {
  const FEEDBACK = [
    { label: "Click", type: "click" },
    { label: "Like", type: "rating", value: 5 },
    { label: "Buy", type: "purchase" },
    { label: "Skip", type: "skip" },
    { label: "Dislike", type: "dislike" },
  ];
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const state = {
    key: sessionStorage.getItem("recloop.key") || "",
    user: null,
    ranks: new Map(), // item id -> rank in the list shown last, for the current user
    history: new Set(), // item ids in the history shown last
    busy: false,
    charts: null,
    writeNeedsKey: false, // from /ui/api/stats: the page asks for a key before posting

  };

  class ApiError extends Error {
    constructor(status, field, message) {
      super(message);
      this.status = status;
      this.field = field;
    }
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (state.key) opts.headers.Authorization = "Bearer " + state.key;
    const resp = await fetch(path, opts);
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (!resp.ok) {
      const err = (body && body.error) || {};
      throw new ApiError(resp.status, err.field || null, err.message || resp.statusText);
    }
    return body;
  }

  function setStatus(text, isError) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", !!isError);
    if (isError) el.setAttribute("role", "alert");
    else el.setAttribute("role", "status");
  }

  function explain(err, focusKey) {
    if (err instanceof ApiError && err.status === 401) {
      if (focusKey !== false) $("api-key").focus();
      return "This server needs an API key: enter it above (" + err.message + ").";
    }
    return err instanceof ApiError ? (err.field ? err.field + ": " : "") + err.message : String(err);
  }

  // ------------------------------------------------------------------ user view
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function name(item) {
    return item.title || "item " + item.item_id;
  }

  function renderRecs(view) {
    const list = $("recs");
    const prev = state.ranks;
    const fresh = prev.size > 0;
    const next = new Map();
    list.replaceChildren();
    view.items.forEach((item, n) => {
      const rank = n + 1;
      next.set(item.item_id, rank);
      const li = el("li", { "data-item-id": item.item_id, "data-rank": String(rank) });
      li.append(el("span", { class: "rank" }, rank + "."));
      const title = el("span", { class: "title" }, name(item));
      const before = prev.get(item.item_id);
      let change = "";
      if (fresh && before === undefined) {
        li.classList.add("new");
        change = "new";
      } else if (fresh && before > rank) {
        li.classList.add("up");
        change = "▲" + (before - rank);
      } else if (fresh && before < rank) {
        li.classList.add("down");
        change = "▼" + (rank - before);
      }
      if (change) {
        const c = el("span", { class: "change", "data-change": change }, change);
        c.setAttribute("aria-label", change === "new" ? "new in the list" : change[0] === "▲" ? "moved up " + change.slice(1) : "moved down " + change.slice(1));
        title.append(c);
      }
      li.append(title, el("span", { class: "score", title: "score" }, item.score.toFixed(3)));
      li.append(el("span", { class: "meta" }, [item.title ? "id " + item.item_id : "", item.genres || ""].filter(Boolean).join(" · ")));
      const actions = el("span", { class: "actions", role: "group", "aria-label": "Feedback on " + name(item) });
      for (const fb of FEEDBACK) {
        const b = el("button", { type: "button", "data-type": fb.type, "aria-label": fb.label + ": " + name(item) }, fb.label);
        b.addEventListener("click", () => feedback(item, fb, rank));
        actions.append(b);
      }
      li.append(actions);
      list.append(li);
    });
    if (!view.items.length) list.append(el("li", { class: "empty" }, "nothing left to recommend"));
    state.ranks = next;
  }

  function renderHistory(view) {
    const list = $("history");
    const before = state.history;
    list.replaceChildren();
    for (const item of view.history) {
      const li = el("li", { "data-item-id": item.item_id }, name(item));
      if (before.size && !before.has(item.item_id)) li.classList.add("fresh");
      li.append(el("span", { class: "meta" }, ["id " + item.item_id, item.genres || ""].filter(Boolean).join(" · ")));
      list.append(li);
    }
    state.history = new Set(view.history.map((i) => i.item_id));
    $("hist-total").textContent = String(view.history_total);
  }

  async function openUser(uid, focusHeading) {
    return showView(await api("/ui/api/users/" + encodeURIComponent(uid) + "?k=10&history=20"), focusHeading);
  }

  function showView(view, focusHeading) {
    if (state.user !== view.user_id) {
      state.user = view.user_id;
      state.ranks = new Map();
      state.history = new Set();
    }
    $("user").hidden = false;
    $("user-id").textContent = view.user_id + (view.known ? "" : " (new to the model)");
    $("recs").dataset.userId = view.user_id;
    renderRecs(view);
    renderHistory(view);
    const url = new URL(window.location.href);
    if (url.searchParams.get("user_id") !== view.user_id) {
      url.searchParams.set("user_id", view.user_id);
      history.replaceState(null, "", url.toString());
    }
    if (focusHeading) $("user-h").focus();
    return view;
  }

  async function feedback(item, fb, rank) {
    if (state.busy) return;
    if (state.writeNeedsKey && !state.key) {
      setStatus("This server needs an API key for feedback: enter it above, then try again.", true);
      $("api-key").focus();
      return;
    }
    state.busy = true;
    const t0 = performance.now();
    try {
      const event = { user_id: state.user, item_id: item.item_id, type: fb.type };
      if (fb.value !== undefined) event.value = fb.value;
      await api("/events", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(event),
      });
      await openUser(state.user, false);
      const ms = performance.now() - t0;
      $("recs").dataset.renderMs = ms.toFixed(1);
      setStatus(fb.label + " on “" + name(item) + "”: list re-rendered in " + Math.round(ms) + " ms.");
      const next = $("recs").querySelector('li[data-rank="' + rank + '"] button') || $("recs").querySelector("button");
      (next || $("recs-h")).focus();
      pollStats();
    } catch (err) {
      setStatus(explain(err), true);
    } finally {
      state.busy = false;
    }
  }

  // ------------------------------------------------------------------ search
  let searchTimer = null;
  let searchSeq = 0;

  async function search(q, openExact) {
    const seq = ++searchSeq;
    const results = $("search-results");
    if (!q.trim()) {
      results.replaceChildren();
      return;
    }
    try {
      const body = await api("/ui/api/users?limit=20&q=" + encodeURIComponent(q.trim()));
      if (seq !== searchSeq) return;
      results.replaceChildren();
      if (openExact && body.users.length && body.users[0].user_id === q.trim()) {
        await openUser(body.users[0].user_id, true);
      }
      for (const u of body.users) {
        const li = el("li");
        const b = el("button", { type: "button", "data-user-id": u.user_id }, "user " + u.user_id);
        if (u.match !== "id") b.append(el("span", { class: "why" }, u.match));
        b.addEventListener("click", () => openUser(u.user_id, true).catch((e) => setStatus(explain(e), true)));
        li.append(b);
        results.append(li);
      }
      if (!body.users.length) results.append(el("li", { class: "hint" }, "no user matches"));
    } catch (err) {
      if (seq !== searchSeq) return;
      results.replaceChildren(el("li", { class: "hint", role: "alert" }, explain(err)));
    }
  }

  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(searchTimer);
    search($("search").value, true);
  });
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search($("search").value, false), 250);
  });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    if (state.key) sessionStorage.setItem("recloop.key", state.key);
    else sessionStorage.removeItem("recloop.key");
    if (state.user) $("status").textContent = state.key ? "Key set for this tab." : "Key cleared.";
    pollStats();
  });
  $("api-key").value = state.key;

  // ------------------------------------------------------------------ live panel
  function fmt(x, digits) {
    return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
  }

  function makeCharts() {
    if (typeof uPlot === "undefined") return null;
    const width = () => Math.max(240, ($("chart-activity").parentElement.clientWidth || 340) - 4);
    const base = (series, axes, scales) => ({
      width: width(),
      height: 160,
      // at least the last minute, at most the ten the server keeps
      scales: Object.assign({ x: { time: true, range: (u, lo, hi) => (hi == null ? [0, 60] : [Math.min(lo, hi - 60), hi]) } }, scales),
      series: [{}].concat(series),
      axes: [{ space: 70, values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString()) }].concat(axes),
      legend: { show: true, live: false },
      cursor: { show: true },
    });
    const activity = new uPlot(
      base(
        [
          { label: "events/s", scale: "rate", stroke: "#2b6cb0", width: 2 },
          { label: "hit rate %", scale: "pct", stroke: "#c05621", width: 2 },
        ],
        [{ scale: "rate", size: 44 }, { scale: "pct", side: 1, size: 44, grid: { show: false } }],
        { rate: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] }, pct: { range: [0, 100] } },
      ),
      [[], [], []],
      $("chart-activity"),
    );
    const latency = new uPlot(
      base(
        [
          { label: "p50 ms", scale: "ms", stroke: "#2f855a", width: 2 },
          { label: "p99 ms", scale: "ms", stroke: "#805ad5", width: 2 },
        ],
        [{ scale: "ms", size: 44 }],
        { ms: { range: (u, lo, hi) => [0, Math.max(0.1, (hi || 0) * 1.1)] } },
      ),
      [[], [], []],
      $("chart-latency"),
    );
    let lastWidth = width();
    new ResizeObserver(() => {
      const w = width();
      if (w === lastWidth) return;
      lastWidth = w;
      activity.setSize({ width: w, height: 160 });
      latency.setSize({ width: w, height: 160 });
    }).observe($("chart-activity").parentElement);
    return { activity, latency };
  }

  function renderStats(s) {
    state.writeNeedsKey = s.keys_required.write;
    $("model-name").textContent = s.model + " v" + s.model_version;
    $("f-eps").textContent = fmt(s.events_per_s, 1);
    $("f-total").textContent = String(s.events_total);
    $("f-applied").textContent = String(s.events_applied);
    $("f-hit").textContent = s.online_hit_rate === null ? "–" : (100 * s.online_hit_rate).toFixed(1) + " %";
    $("f-hit-window").textContent = String(s.hit_window_events);
    const l = s.update_latency_ms;
    $("f-latency").textContent = l.p50 === null ? "–" : fmt(l.p50, 2) + " / " + fmt(l.p99, 2) + " ms";
    $("f-version").textContent = String(s.model_version);
    $("f-size").textContent = s.n_users.toLocaleString() + " / " + s.n_items.toLocaleString();
    for (const [id, key] of [["f-log-offset", "log_offset"], ["f-log-lag", "log_lag"]]) {
      const present = s[key] !== undefined && s[key] !== null;
      $(id).parentElement.hidden = !present;
      if (present) $(id).textContent = String(s[key]);
    }
    if (state.charts === null) state.charts = makeCharts();
    if (state.charts) {
      const t = s.series.map((p) => p.t);
      state.charts.activity.setData([t, s.series.map((p) => p.events_per_s), s.series.map((p) => (p.hit_rate === null ? null : 100 * p.hit_rate))]);
      state.charts.latency.setData([t, s.series.map((p) => p.p50_ms), s.series.map((p) => p.p99_ms)]);
    }
  }

  let pollTimer = null;
  async function pollStats() {
    clearTimeout(pollTimer);
    try {
      renderStats(await api("/ui/api/stats"));
    } catch (err) {
      $("f-eps").textContent = "–";
      $("model-name").textContent = explain(err, false);
      if (err instanceof ApiError && err.status === 401) return; // until a key is given
    }
    pollTimer = setTimeout(pollStats, POLL_MS);
  }

  // ------------------------------------------------------------------ start
  const start = new URL(window.location.href).searchParams.get("user_id");
  const initial = $("initial-view");
  if (start) {
    $("search").value = start;
    if (initial) {
      showView(JSON.parse(initial.textContent), false); // the server put it in the page
    } else {
      openUser(start, false).catch((err) => {
        $("user").hidden = false;
        setStatus(explain(err), true);
      });
    }
  }
  pollStats();
})();

/* GolemBot gateway dashboard.
 *
 * Everything shown here comes from GET /api/dashboard (or the copy embedded in the page when the
 * API is open) and from the /api/events feed. Rules kept throughout: data is only ever put into
 * the page with textContent / DOM nodes (never innerHTML), handlers are bound with
 * addEventListener (no inline onclick), and the token lives only in sessionStorage and request
 * headers (plus ?token= for EventSource, which cannot send headers).
 */
(function () {
  "use strict";

  var boot = JSON.parse(document.getElementById("golem-data").textContent);
  var BASE = location.pathname.replace(/\/?$/, "/");
  var AUTH = !!boot.basics.authEnabled;
  var TOKEN_KEY = "golembot-token";
  var ENGINE_COLORS = { cursor: "#a855f7", "claude-code": "#f97316", opencode: "#22c55e", codex: "#3b82f6" };
  var TYPE_COLORS = { behavior: "#3b82f6", capability: "#8b5cf6", protocol: "#f59e0b", integration: "#10b981", other: "#6b7280" };
  var DOCS = "https://github.com/0xranx/golembot#readme";

  var data = null;          // last /api/dashboard body
  var editing = false;      // an inline config edit is open: do not re-render the config panel
  var feedStarted = false;  // initial feed rows rendered once; later rows come from SSE
  var memToken = "";        // used when sessionStorage is unavailable
  var stats = { total: 0, cost: 0, durTotal: 0, bySource: {} };
  // A refresh snapshot and the live event of the same message can race: remember which
  // entries the numbers already include and which rows are on screen.
  var counted = new Set(), shown = new Set();

  function entryKey(m) { return [m.ts, m.source, m.sender, m.messagePreview].join("\u0000"); }

  // -- small DOM helpers -------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  function el(tag, opts, children) {
    var node = document.createElement(tag);
    opts = opts || {};
    if (opts.cls) node.className = opts.cls;
    if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
    if (opts.title) node.title = String(opts.title);
    if (opts.attrs) Object.keys(opts.attrs).forEach(function (k) { node.setAttribute(k, opts.attrs[k]); });
    if (opts.bg) node.style.background = opts.bg;
    (children || []).forEach(function (c) { if (c) node.append(c); });
    return node;
  }

  function getPath(obj, path) {
    return path.split(".").reduce(function (o, k) {
      return o !== null && typeof o === "object" ? o[k] : undefined;
    }, obj);
  }

  function isSet(v) { return v !== undefined && v !== null && v !== ""; }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function money(v) { return "$" + Number(v || 0).toFixed(4); }
  function seconds(ms) { return ms ? (Number(ms) / 1000).toFixed(1) + " s" : "-"; }

  function fmtClock(ts) {
    var d = ts ? new Date(ts) : new Date();
    if (isNaN(d.getTime())) return String(ts || "");
    return d.toLocaleTimeString() + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function fmtDateTime(value) {
    if (!value) return "-";
    var d = new Date(value);
    if (isNaN(d.getTime())) return String(value);
    var p = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
      p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  function fmtUptime(ms) {
    var s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60);
    return (d > 0 ? d + "d " : "") + h + "h " + m + "m " + (s % 60) + "s";
  }

  // -- token and requests ------------------------------------------------------------------------
  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return memToken; }
  }

  function setToken(tok) {
    memToken = tok || "";
    try {
      if (tok) sessionStorage.setItem(TOKEN_KEY, tok); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* private mode: memory only */ }
  }

  function api(method, path, body) {
    var headers = {};
    var tok = getToken();
    if (tok) headers.Authorization = "Bearer " + tok;
    var init = { method: method, headers: headers };
    // Writes always carry a JSON body: without a token the server only accepts JSON writes.
    if (body === undefined && method !== "GET") body = {};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(BASE + path, init).then(function (resp) {
      if (resp.status === 401 && AUTH) onUnauthorized();
      return resp;
    });
  }

  function readJson(resp) { return resp.json().catch(function () { return null; }); }

  function errorOf(resp, body) {
    return (body && body.error) || ("HTTP " + resp.status + (resp.statusText ? " " + resp.statusText : ""));
  }

  function showUnlock(message) {
    $("unlock").hidden = false;
    $("lock-bar").hidden = true;
    var err = $("unlock-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("unlock-token").focus();
  }

  function onUnauthorized() {
    setToken("");
    closeFeed();
    showUnlock("Invalid token");
  }

  /* Actions need the token when auth is on; ask for it (one shared prompt) if it is missing. */
  function ensureToken() {
    if (!AUTH || getToken()) return true;
    showUnlock("Enter the gateway token first");
    return false;
  }

  function bindUnlock() {
    $("unlock-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var tok = $("unlock-token").value.trim();
      if (!tok) { showUnlock("Enter the gateway token"); return; }
      var btn = $("unlock-btn");
      btn.disabled = true;
      fetch(BASE + "api/dashboard", { headers: { Authorization: "Bearer " + tok } })
        .then(function (resp) {
          if (resp.status === 401) { showUnlock("Invalid token"); return null; }
          if (!resp.ok) { showUnlock("Unlock failed: HTTP " + resp.status); return null; }
          return resp.json();
        })
        .then(function (body) {
          if (!body) return;
          setToken(tok);
          $("unlock-token").value = "";
          $("unlock").hidden = true;
          $("lock-bar").hidden = false;
          renderAll(body);
          connectFeed();
        })
        .catch(function (err) { showUnlock("Request failed: " + err.message); })
        .finally(function () { btn.disabled = false; });
    });
    $("lock-btn").addEventListener("click", function () {
      setToken("");
      closeFeed();
      showUnlock("");
    });
  }

  function refresh() {
    if (AUTH && !getToken()) return Promise.resolve(false);
    return api("GET", "api/dashboard").then(function (resp) {
      if (!resp.ok) return false;
      return resp.json().then(function (body) { renderAll(body); return true; });
    }).catch(function () { return false; });
  }

  // -- header ------------------------------------------------------------------------------------
  var loadedAt = Date.now();
  var baseUptime = Number($("uptime").getAttribute("data-uptime")) || 0;

  function tickUptime() { $("uptime").textContent = fmtUptime(baseUptime + Date.now() - loadedAt); }

  function renderHeader(d) {
    var badge = $("engine-badge");
    badge.textContent = d.engine || "";
    badge.style.background = ENGINE_COLORS[d.engine] || "#58a6ff";
    var model = $("model-badge");
    model.hidden = !d.model;
    model.textContent = d.model || "";
    $("bot-name").textContent = d.name || "";
    var channels = d.channels || [];
    var connected = channels.filter(function (c) { return c.status === "connected"; }).length;
    $("channel-count").textContent = plural(connected, "channel") + " connected";
    $("skill-count").textContent = plural((d.skills || []).length, "skill") + " loaded";
    if (typeof d.uptime === "number") { baseUptime = d.uptime; loadedAt = Date.now(); tickUptime(); }
  }

  // -- persona -----------------------------------------------------------------------------------
  function renderPersona(persona) {
    persona = persona || {};
    var box = $("persona-rows");
    box.replaceChildren();
    var rows = [["Display Name", persona.displayName], ["Role", persona.role], ["Tone", persona.tone],
      ["Boundaries", Array.isArray(persona.boundaries) ? persona.boundaries.join(", ") : persona.boundaries]];
    rows.forEach(function (r) {
      if (isSet(r[1])) box.append(el("div", { cls: "key", text: r[0] }), el("div", { cls: "val", text: r[1] }));
    });
    $("persona-panel").hidden = !(isSet(persona.displayName) || isSet(persona.role));
  }

  // -- configuration -----------------------------------------------------------------------------
  function sectionPresent(cfg, section) {
    return String(section || "").split("|").some(function (s) { return isSet(getPath(cfg, s)); });
  }

  function currentValue(row, d) {
    if (row.path === "engine") return d.engine;
    if (row.path === "model") return d.model;
    return getPath(d.config || {}, row.path);
  }

  function unsetSpan(text) { return el("span", { cls: "unset", text: text }); }

  function badge(on) { return el("span", { cls: "pill " + (on ? "ok" : ""), text: on ? "Enabled" : "Disabled" }); }

  function displayValue(row, value) {
    var unit = row.unit ? " " + row.unit : "";
    switch (row.kind) {
      case "bool":
        return isSet(value) ? badge(!!value) : el("span", { cls: "unset" }, [badge(!!row["default"])]);
      case "secret":
        if (!isSet(value)) return row.unset ? el("span", { cls: "pill", text: row.unset }) : unsetSpan("not set");
        return el("code", { text: value });
      case "list":
        if (!Array.isArray(value) || !value.length) return unsetSpan("none");
        return el("span", {}, value.map(function (v) { return el("code", { cls: "chip", text: v }); }));
      case "prompt": {
        var text = String(value || "");
        return el("pre", { cls: "output", text: text.length > 200 ? text.slice(0, 200) + "..." : text });
      }
      case "mcp": {
        var box = el("div");
        Object.keys(value || {}).forEach(function (name) {
          var srv = value[name] || {};
          var cmd = [srv.command || ""].concat(Array.isArray(srv.args) ? srv.args : []).join(" ");
          box.append(el("div", {}, [el("code", { cls: "chip", text: name }), el("span", { cls: "dim", text: " " + cmd })]));
        });
        return box;
      }
      case "inbox":
        return el("span", {}, [badge(!!(value && value.enabled)),
          el("span", { cls: "dim", text: " retention: " + ((value && value.retentionDays) || 7) + " days" })]);
      case "historyFetch":
        return el("span", {}, [badge(!!(value && value.enabled)),
          el("span", { cls: "dim", text: " poll: " + ((value && value.pollIntervalMinutes) || 15) + " min" })]);
      case "escalation": {
        var t = value && value.target;
        var target = t && t.channel ? t.channel + ":" + (t.chatId ? String(t.chatId).slice(0, 16) : "all") : "no target";
        return el("span", {}, [badge(!!(value && value.enabled)), el("span", { cls: "dim", text: " " + target })]);
      }
      default:
        if (!isSet(value)) return isSet(row["default"]) ? unsetSpan(String(row["default"]) + unit) : unsetSpan("not set");
        return el("span", { text: String(value) + unit });
    }
  }

  var EDITABLE = { enum: 1, number: 1, text: 1, bool: 1 };

  function renderConfig(d) {
    if (editing) return;
    var cfg = d.config || {};
    var box = $("config-groups");
    box.replaceChildren();
    boot.configGroups.forEach(function (group) {
      if (!group.always && !sectionPresent(cfg, group.section)) return;
      var kv = el("div", { cls: "kv" });
      group.rows.forEach(function (row) {
        if (row.onlyIf && !isSet(getPath(cfg, row.onlyIf))) return;
        var value = currentValue(row, d);
        var cell = el("div", { cls: "val", attrs: { "data-path": row.path } }, [displayValue(row, value)]);
        if (EDITABLE[row.kind]) {
          var pencil = el("button", { cls: "btn small edit-btn", text: "✎", title: "Edit " + row.label,
            attrs: { type: "button", "data-action": "edit", "aria-label": "Edit " + row.label } });
          pencil.addEventListener("click", function () { startEdit(cell, row, value); });
          cell.append(pencil);
        }
        kv.append(el("div", { cls: "key", text: row.label }), cell);
      });
      var det = el("details", {}, [el("summary", { text: group.title }), kv]);
      if (group.open) det.open = true;
      box.append(det);
    });
    var err = $("config-error");
    err.hidden = !d.configError;
    err.textContent = d.configError ? "golem.yaml: " + d.configError : "";
    $("config-panel").hidden = false;
  }

  function makeInput(row, value) {
    var input;
    if (row.kind === "bool" || row.kind === "enum") {
      input = el("select");
      var options = row.kind === "bool" ? [["true", "Enabled"], ["false", "Disabled"]]
        : row.options.map(function (o) { return [o, o]; });
      var current = isSet(value) ? String(value) : isSet(row["default"]) ? String(row["default"]) : "";
      options.forEach(function (o) {
        var opt = el("option", { text: o[1], attrs: { value: o[0] } });
        if (o[0] === current) opt.selected = true;
        input.append(opt);
      });
    } else {
      input = el("input", { attrs: { type: row.kind === "number" ? "number" : "text" } });
      if (row.kind === "number") {
        if (isSet(row.min)) input.min = row.min;
        if (isSet(row.max)) input.max = row.max;
        input.required = true;
      }
      input.value = isSet(value) ? String(value) : (row.kind === "number" && isSet(row["default"]) ? String(row["default"]) : "");
    }
    input.setAttribute("aria-label", row.label);
    return input;
  }

  function parseInput(row, input) {
    if (row.kind === "bool") return { value: input.value === "true" };
    if (row.kind === "enum") return { value: input.value };
    if (row.kind === "number") {
      var raw = input.value.trim();
      if (raw === "") return { error: row.label + " needs a number" };
      var n = Number(raw);
      if (!Number.isFinite(n)) return { error: row.label + " needs a number" };
      if (isSet(row.min) && n < row.min) return { error: row.label + " must be at least " + row.min };
      if (isSet(row.max) && n > row.max) return { error: row.label + " must be at most " + row.max };
      return { value: n };
    }
    var text = input.value.trim();
    return { value: text === "" ? null : text };
  }

  function nested(path, value) {
    var keys = path.split("."), out = {}, node = out;
    keys.forEach(function (k, i) {
      if (i === keys.length - 1) node[k] = value; else { node[k] = {}; node = node[k]; }
    });
    return out;
  }

  function startEdit(cell, row, value) {
    if (!ensureToken()) return;
    editing = true;
    var input = makeInput(row, value);
    var save = el("button", { cls: "btn small primary", text: "Save", attrs: { type: "submit", "data-action": "save" } });
    var cancel = el("button", { cls: "btn small", text: "Cancel", attrs: { type: "button", "data-action": "cancel" } });
    var err = el("div", { cls: "error-text small", attrs: { role: "alert" } });
    var form = el("form", { cls: "row" }, [input, save, cancel]);
    form.noValidate = true;  // our own checks, with the message shown inline
    cell.replaceChildren(form, err);
    input.focus();
    cancel.addEventListener("click", function () { editing = false; renderConfig(data); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var parsed = parseInput(row, input);
      if (parsed.error) { err.textContent = parsed.error; return; }
      save.disabled = true;
      save.textContent = "Saving...";
      err.textContent = "";
      api("PATCH", "api/config", nested(row.path, parsed.value))
        .then(function (resp) {
          return readJson(resp).then(function (body) {
            if (resp.ok && body && body.ok) {
              editing = false;
              if (body.needsRestart) $("restart-banner").hidden = false;
              if (data) data.config = body.config;
              return refresh().then(function (ok) { if (!ok && data) renderConfig(data); });
            }
            err.textContent = "Save failed: " + errorOf(resp, body);
          });
        })
        .catch(function (e2) { err.textContent = "Request failed: " + e2.message; })
        .finally(function () { save.disabled = false; save.textContent = "Save"; });
    });
  }

  // -- channels ----------------------------------------------------------------------------------
  function renderChannels(channels) {
    var box = $("channel-list");
    box.replaceChildren();
    var byType = {};
    (channels || []).forEach(function (c) { byType[c.type] = c; });
    var rows = boot.knownChannels.map(function (k) { return { key: k.key, label: k.label }; });
    var known = {};
    rows.forEach(function (r) { known[r.key] = 1; });
    (channels || []).forEach(function (c) { if (!known[c.type]) rows.push({ key: c.type, label: c.type }); });
    rows.forEach(function (r) {
      var st = byType[r.key] || { status: "not_configured" };
      var dot = "dot", status;
      if (st.status === "connected") { dot += " green"; status = el("span", { cls: "ok-text", text: "Connected" }); }
      else if (st.status === "failed") {
        dot += " red";
        status = el("span", { cls: "error-text ellipsis", text: st.error || "Failed", title: st.error || "" });
      } else if (/^(starting|connecting|reconnecting)$/.test(st.status)) {
        status = el("span", { cls: "dim", text: st.status.charAt(0).toUpperCase() + st.status.slice(1) + "…" });
      } else if (st.status === "stopped") { status = el("span", { cls: "dim", text: "Stopped" }); }
      else {
        status = el("a", { text: "Setup Guide", attrs: { href: DOCS, target: "_blank", rel: "noopener" } });
      }
      var row = el("div", { cls: st.status === "not_configured" || !byType[r.key] ? "muted" : "",
        attrs: { "data-channel": r.key } },
      [el("span", { cls: dot }), el("strong", { cls: "ellipsis", text: r.label }), el("span", { cls: "spacer" }), status]);
      box.append(row);
    });
  }

  // -- fleet peers -------------------------------------------------------------------------------
  function renderPeers(peers) {
    peers = peers || [];
    var box = $("peer-list");
    box.replaceChildren();
    peers.forEach(function (p) {
      var kids = [el("span", { cls: "dot" + (p.alive ? " green" : "") }), el("strong", { text: p.name || "" })];
      if (p.role) kids.push(el("span", { cls: "dim", text: "(" + p.role + ")" }));
      if (p.engine) kids.push(el("span", { cls: "pill engine", text: p.engine, bg: ENGINE_COLORS[p.engine] || "#58a6ff" }));
      if (p.model) kids.push(el("span", { cls: "dim small", text: p.model }));
      if (p.alive && /^https?:\/\//.test(p.url || "")) {
        kids.push(el("a", { text: "Dashboard", attrs: { href: p.url, target: "_blank", rel: "noopener" } }));
      }
      box.append(el("div", {}, kids));
    });
    $("peers-count").textContent = peers.length ? "(" + peers.length + ")" : "";
    $("peers-empty").hidden = peers.length > 0;
  }

  // -- tasks -------------------------------------------------------------------------------------
  function renderTasks(tasks, history) {
    tasks = tasks || [];
    var box = $("task-rows");
    box.replaceChildren();
    tasks.forEach(function (t) {
      var dot = "dot" + (t.lastStatus === "success" ? " green" : t.lastStatus === "error" ? " red" : "");
      var target = t.target && t.target.channel
        ? t.target.channel + ":" + (t.target.chatId ? String(t.target.chatId).slice(0, 12) + "…" : "all") : "none";
      var run = el("button", { cls: "btn small", text: "Run", attrs: { type: "button", "data-action": "run-task", "data-task-id": t.id } });
      var toggle = el("button", { cls: "btn small", text: t.enabled ? "Disable" : "Enable",
        attrs: { type: "button", "data-action": "toggle-task", "data-task-id": t.id, "data-enabled": t.enabled ? "1" : "0" } });
      run.addEventListener("click", function () { runTask(t.id, run); });
      toggle.addEventListener("click", function () { toggleTask(t.id, !t.enabled, toggle); });
      box.append(el("div", { cls: "task-row", attrs: { "data-task-id": t.id } }, [
        el("span", { cls: dot }),
        el("strong", { cls: "ellipsis", text: t.name || t.id, title: t.id }),
        el("code", { cls: "chip ellipsis", text: t.schedule || "" }),
        el("span", { cls: "ellipsis", text: target }),
        el("span", { cls: "pill " + (t.enabled ? "ok" : ""), text: t.enabled ? "Enabled" : "Disabled" }),
        el("span", { cls: "small", text: fmtDateTime(t.lastRun) + " · " + (t.lastStatus || "never run") }),
        el("span", { cls: "row" }, [run, toggle]),
      ]));
      var runs = (history || {})[t.id] || [];
      if (runs.length) {
        box.append(el("div", { cls: "task-runs" }, runs.map(function (r) {
          var ok = r.status === "success";
          return el("div", {}, [
            el("span", { text: fmtDateTime(r.startedAt || r.completedAt) }),
            el("span", { cls: ok ? "ok-text" : "error-text ellipsis", text: ok ? "OK" : (r.error || "error") }),
            el("span", { text: r.durationMs ? (r.durationMs / 1000).toFixed(1) + "s" : "-" }),
            el("span", { text: r.costUsd ? money(r.costUsd) : "-" }),
          ]);
        })));
      }
    });
    $("tasks-count").textContent = "(" + tasks.length + ")";
    $("tasks-panel").hidden = tasks.length === 0;
  }

  function taskResult(text, isError) {
    var box = $("task-result");
    box.hidden = false;
    box.className = "output" + (isError ? " error-text" : "");
    box.textContent = text;
  }

  /* A 404 "Not found" (route absent) or 503 means the task REST routes are not mounted: fall back
     to the slash command, which works in every mode (decisions.md). */
  function routeMissing(resp, body) {
    return resp.status === 503 || (resp.status === 404 && body && body.error === "Not found");
  }

  function cronCommand(command) {
    return api("POST", "chat", { message: command, sessionKey: "dashboard-cron" }).then(function (resp) {
      return readJson(resp).then(function (body) {
        if (!resp.ok || !body) return { error: errorOf(resp, body) };
        return body.error ? { error: body.error } : { text: body.text || "" };
      });
    });
  }

  function runTask(id, btn) {
    if (!ensureToken()) return;
    btn.disabled = true;
    btn.textContent = "Running…";
    taskResult("Running task " + id + "…", false);
    api("POST", "api/tasks/" + encodeURIComponent(id) + "/run")
      .then(function (resp) {
        return readJson(resp).then(function (body) {
          if (routeMissing(resp, body)) return cronCommand("/cron run " + id);
          if (resp.ok && body && body.ok !== false) return { text: body.reply || "(empty reply)" };
          return { error: errorOf(resp, body) };
        });
      })
      .then(function (res) { taskResult(res.error ? "Error: " + res.error : res.text, !!res.error); refresh(); })
      .catch(function (e) { taskResult("Request failed: " + e.message, true); })
      .finally(function () { btn.disabled = false; btn.textContent = "Run"; });
  }

  function toggleTask(id, enable, btn) {
    if (!ensureToken()) return;
    btn.disabled = true;
    api("PATCH", "api/tasks/" + encodeURIComponent(id), { enabled: enable })
      .then(function (resp) {
        return readJson(resp).then(function (body) {
          if (routeMissing(resp, body)) return cronCommand("/cron " + (enable ? "enable " : "disable ") + id);
          return resp.ok ? { text: "Task " + id + (enable ? " enabled" : " disabled") } : { error: errorOf(resp, body) };
        });
      })
      .then(function (res) { taskResult(res.error ? "Error: " + res.error : res.text, !!res.error); refresh(); })
      .catch(function (e) { taskResult("Request failed: " + e.message, true); })
      .finally(function () { btn.disabled = false; });
  }

  // -- escalations, skills, sessions, memory --------------------------------------------------------
  function renderEscalations(items) {
    items = items || [];
    var box = $("escalation-rows");
    box.replaceChildren();
    items.forEach(function (e) {
      box.append(el("div", { cls: "esc-row" }, [
        el("span", { cls: "small", text: e.ts }),
        el("span", { cls: "ellipsis", text: e.reason, title: e.context || e.reason }),
        el("code", { cls: "ellipsis", text: e.sessionKey }),
        el("span", { cls: "pill " + (e.status === "resolved" ? "ok" : "bad"), text: e.status === "resolved" ? "resolved" : "open" }),
      ]));
    });
    $("escalations-count").textContent = "(" + items.length + ")";
    $("escalations-panel").hidden = items.length === 0;
  }

  function renderSkills(skills) {
    skills = skills || [];
    var box = $("skill-list");
    box.replaceChildren();
    var typed = skills.some(function (s) { return !!s.type; });
    var row = function (s) {
      return el("div", {}, [el("strong", { text: s.name }), el("span", { cls: "dim small ellipsis", text: s.description || "" })]);
    };
    if (!typed) {
      $("skills-title").textContent = "Skills (" + skills.length + ")";
      $("skills-subtitle").textContent = "";
      box.append(el("div", { cls: "list" }, skills.map(row)));
    } else {
      $("skills-title").textContent = "Skill Inventory";
      $("skills-subtitle").textContent = plural(skills.length, "skill") + " loaded, grouped by type";
      var order = [], groups = {};
      skills.forEach(function (s) {
        var t = s.type || "other";
        if (!groups[t]) { groups[t] = []; order.push(t); }
        groups[t].push(s);
      });
      order.forEach(function (t) {
        box.append(el("div", { cls: "skill-group" }, [
          el("span", { cls: "pill type-pill", text: t, bg: TYPE_COLORS[t] || TYPE_COLORS.other }),
          el("div", { cls: "list" }, groups[t].map(row)),
        ]));
      });
    }
    $("skills-panel").hidden = skills.length === 0;
  }

  function renderSessions(info) {
    info = info || { total: 0, sessions: [] };
    var box = $("session-list");
    box.replaceChildren();
    (info.sessions || []).forEach(function (s) {
      var kids = [el("code", { cls: "ellipsis", text: s.key, title: s.key }), el("span", { cls: "spacer" })];
      if (s.running) kids.push(el("span", { cls: "pill ok", text: "running" }));
      kids.push(el("span", { cls: "dim small", text: fmtDateTime(s.lastUsed) }));
      box.append(el("div", {}, kids));
    });
    $("sessions-count").textContent = "(" + (info.total || 0) + ")";
    $("sessions-panel").hidden = !(info.sessions || []).length;
  }

  function renderMemory(mem) {
    mem = mem || {};
    $("memory-notes").hidden = !mem.notesPreview;
    $("memory-notes-text").textContent = mem.notesPreview || "";
    var files = mem.files || [];
    var box = $("memory-files");
    box.replaceChildren();
    files.forEach(function (f) {
      box.append(el("div", {}, [el("code", { cls: "ellipsis", text: f.path, title: f.path }), el("span", { cls: "spacer" }),
        el("span", { cls: "dim small", text: (f.size || 0) + " B · " + fmtDateTime(f.mtime) })]));
    });
    if (mem.truncated) box.append(el("div", { cls: "dim small", text: "(list truncated)" }));
    $("memory-files-box").hidden = files.length === 0;
    $("memory-panel").hidden = !mem.notesPreview && files.length === 0;
  }

  // -- statistics --------------------------------------------------------------------------------
  function loadStats(metrics) {
    metrics = metrics || {};
    stats.total = metrics.totalMessages || 0;
    stats.cost = metrics.totalCostUsd || 0;
    stats.durTotal = (metrics.avgDurationMs || 0) * stats.total;
    stats.bySource = Object.assign({}, metrics.messagesBySource || {});
    drawStats();
  }

  function drawStats() {
    $("stat-messages").textContent = String(stats.total);
    $("stat-cost").textContent = money(stats.cost);
    var avg = stats.total ? stats.durTotal / stats.total : 0;
    $("stat-duration").textContent = avg ? (avg / 1000).toFixed(1) + "s" : "-";
    var box = $("source-bars");
    box.replaceChildren();
    var keys = Object.keys(stats.bySource);
    var max = keys.reduce(function (m, k) { return Math.max(m, stats.bySource[k]); }, 0);
    keys.forEach(function (k) {
      var n = stats.bySource[k];
      var fill = el("div", { cls: "fill" });
      fill.style.width = (max ? Math.round(n / max * 100) : 0) + "%";
      box.append(el("div", { cls: "bar" }, [el("span", { cls: "label", text: k, title: k }),
        el("div", { cls: "track" }, [fill]), el("span", { text: String(n) })]));
    });
    $("bars-empty").hidden = keys.length > 0;
  }

  function bumpStats(m) {
    stats.total += 1;
    if (m.costUsd) stats.cost += Number(m.costUsd) || 0;
    if (m.durationMs) stats.durTotal += Number(m.durationMs) || 0;
    var src = m.source || "unknown";
    stats.bySource[src] = (stats.bySource[src] || 0) + 1;
    drawStats();
  }

  // -- live activity -------------------------------------------------------------------------------
  function addFeedRow(m) {
    var feed = $("feed");
    var empty = $("feed-empty");
    if (empty) empty.remove();
    var message = (m.sender ? m.sender + ": " : "") + (m.messagePreview || "");
    var response = m.passed ? el("span", { cls: "pass", text: "[PASS]" })
      : el("span", { cls: "ellipsis", text: m.responsePreview || "", title: m.responsePreview || "" });
    response.classList.add("ellipsis");
    feed.append(el("div", { cls: "feed-row" }, [
      el("span", { cls: "small", text: fmtClock(m.ts) }),
      el("span", { cls: "pill ellipsis", text: m.source || "" }),
      el("span", { cls: "ellipsis", text: message, title: m.messagePreview || "" }),
      response,
      el("span", { text: seconds(m.durationMs) }),
      el("span", { text: m.costUsd ? money(m.costUsd) : "-" }),
    ]));
    feed.scrollTop = feed.scrollHeight;
  }

  var es = null, backoff = 3000, reconnectTimer = null;

  function setFeedState(state) {
    var node = $("feed-state");
    node.textContent = state;
    node.className = "pill " + (state === "live" ? "live" : "dim-pill");
  }

  function closeFeed() {
    clearTimeout(reconnectTimer);
    if (es) { es.close(); es = null; }
    setFeedState("offline");
  }

  function connectFeed() {
    closeFeed();
    var tok = getToken();
    if (AUTH && !tok) return;
    var url = BASE + "api/events" + (AUTH ? "?token=" + encodeURIComponent(tok) : "");
    var source = new EventSource(url);
    es = source;
    setFeedState("connecting…");
    source.onopen = function () { backoff = 3000; setFeedState("live"); };
    source.onmessage = function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (!m || typeof m !== "object" || m.type === "error") return;
      var key = entryKey(m);
      if (!shown.has(key)) { shown.add(key); addFeedRow(m); }
      if (!counted.has(key)) { counted.add(key); bumpStats(m); }
    };
    source.onerror = function () {
      if (source !== es) return;
      setFeedState("reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        es = null;
        source.close();
        reconnectTimer = setTimeout(function () {
          if (!AUTH) { connectFeed(); return; }
          // A refused token closes the stream for good: check before trying again.
          api("GET", "api/status").then(function (resp) { if (resp.status !== 401) connectFeed(); })
            .catch(function () { connectFeed(); });
        }, backoff);
        backoff = Math.min(backoff * 2, 30000);
      }
    };
  }

  // -- quick test ----------------------------------------------------------------------------------
  function parseFrame(frame) {
    var lines = frame.split("\n").filter(function (l) { return l.indexOf("data:") === 0; });
    if (!lines.length) return null;  // comment (keep-alive) or empty
    try { return JSON.parse(lines.map(function (l) { return l.slice(5).replace(/^ /, ""); }).join("\n")); }
    catch (e) { return null; }
  }

  function completionFooter(ev) {
    var parts = [ev.status];
    if (ev.durationMs) parts.push((ev.durationMs / 1000).toFixed(1) + " s");
    if (ev.costUsd) parts.push(money(ev.costUsd));
    if (ev.status !== "completed" && ev.status !== "silent" && (ev.message || ev.reason)) parts.push(ev.message || ev.reason);
    return "— " + parts.join(" · ");
  }

  function bindQuickTest() {
    var form = $("qt-form"), input = $("qt-input"), btn = $("qt-send"), out = $("qt-output"), foot = $("qt-footer");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (btn.disabled) return;
      var text = input.value.trim();
      if (!text || !ensureToken()) return;
      btn.disabled = true;
      btn.textContent = "Sending...";
      out.textContent = "";
      out.hidden = false;
      foot.hidden = true;
      var append = function (s) { out.textContent += s; out.scrollTop = out.scrollHeight; };
      api("POST", "chat", { message: text, sessionKey: "dashboard-test" })
        .then(function (resp) {
          var type = resp.headers.get("Content-Type") || "";
          if (!resp.ok) {
            return readJson(resp).then(function (body) { append("Error: " + errorOf(resp, body)); });
          }
          if (type.indexOf("application/json") >= 0) {
            return readJson(resp).then(function (body) {
              if (!body) { append("(empty response)"); return; }
              append(body.text || JSON.stringify(body, null, 2));
              if (body.error) append("\n[Error: " + body.error + "]");
            });
          }
          var reader = resp.body.getReader(), decoder = new TextDecoder(), buffer = "";
          var pump = function () {
            return reader.read().then(function (chunk) {
              if (chunk.done) return;
              buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
              var idx;
              while ((idx = buffer.indexOf("\n\n")) >= 0) {
                var ev = parseFrame(buffer.slice(0, idx));
                buffer = buffer.slice(idx + 2);
                if (!ev) continue;
                if (ev.type === "text") append(ev.content || "");
                else if (ev.type === "error") append("\n[Error: " + ev.message + "]");
                else if (ev.type === "completion") {
                  foot.textContent = completionFooter(ev);
                  foot.hidden = false;
                  reader.cancel().catch(function () {});
                  return;
                }
              }
              return pump();
            });
          };
          return pump();
        })
        .catch(function (err) { append("Request failed: " + err.message); })
        .finally(function () { btn.disabled = false; btn.textContent = "Send"; if (data) refresh(); });
    });
  }

  // -- copy buttons, shutdown -----------------------------------------------------------------------
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return legacyCopy(text); });
    }
    return legacyCopy(text);
  }

  function legacyCopy(text) {
    return new Promise(function (resolve, reject) {
      var area = el("textarea", { attrs: { readonly: "", "aria-hidden": "true" } });
      area.value = text;
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      if (ok) resolve(); else reject(new Error("copy failed"));
    });
  }

  function bindCopyButtons() {
    document.querySelectorAll(".copy-btn").forEach(function (btn) {
      btn.addEventListener("click", function () {
        copyText(btn.getAttribute("data-copy") || "")
          .then(function () { btn.textContent = "Copied!"; })
          .catch(function () { btn.textContent = "Copy failed"; })
          .finally(function () { setTimeout(function () { btn.textContent = "Copy"; }, 1500); });
      });
    });
  }

  function bindShutdown() {
    var btn = $("shutdown-btn");
    btn.addEventListener("click", function () {
      if (!ensureToken()) return;
      if (!window.confirm("Shutdown this gateway? The bot will stop serving requests.")) return;
      btn.disabled = true;
      btn.textContent = "Shutting down...";
      api("POST", "shutdown", {})
        .then(function (resp) {
          return readJson(resp).then(function (body) {
            if (resp.ok && body && body.ok) {
              closeFeed();
              document.body.replaceChildren(el("div", { cls: "stopped" }, [
                el("h1", { text: "Gateway Stopped" }), el("p", { cls: "dim", text: "This gateway has been shut down." })]));
              return;
            }
            window.alert(errorOf(resp, body) || "Shutdown failed");
            btn.disabled = false;
            btn.textContent = "Shutdown";
          });
        })
        .catch(function (e) {
          window.alert("Request failed: " + e.message);
          btn.disabled = false;
          btn.textContent = "Shutdown";
        });
    });
  }

  // -- everything -----------------------------------------------------------------------------------
  function renderAll(d) {
    data = d;
    $("load-error").hidden = true;
    renderHeader(d);
    renderPersona(d.persona);
    renderConfig(d);
    renderChannels(d.channels);
    renderPeers(d.fleetPeers);
    renderTasks(d.tasks, d.taskHistory);
    renderEscalations(d.escalations);
    renderSkills(d.skills);
    renderSessions(d.activeSessions);
    renderMemory(d.memoryOverview);
    loadStats(d.metrics);
    (d.recentMessages || []).forEach(function (m) {
      var key = entryKey(m);
      counted.add(key);
      if (!feedStarted) { shown.add(key); addFeedRow(m); }
    });
    feedStarted = true;
  }

  function start() {
    renderHeader(boot.basics);
    tickUptime();
    setInterval(tickUptime, 1000);
    bindUnlock();
    bindQuickTest();
    bindCopyButtons();
    bindShutdown();
    if (!AUTH) {
      if (boot.data) renderAll(boot.data);
      connectFeed();
    } else if (getToken()) {
      $("lock-bar").hidden = false;
      refresh().then(function (ok) { if (ok) connectFeed(); });
    } else {
      showUnlock("");
    }
    // Channels, tasks and sessions change without events: refresh them now and then.
    setInterval(function () {
      if (!editing && data && document.visibilityState === "visible") refresh();
    }, 30000);
  }

  start();
})();

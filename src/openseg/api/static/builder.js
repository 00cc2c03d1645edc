/*
 * openseg UI: the visual segment builder. Conditions (attributes, event counts in a window, sequences,
 * segments of segments) in and/or/not groups write PQL; the PQL can also be edited by hand. While editing,
 * the page asks the API for an estimate (POST /data/core/ups/preview) and, for a saved definition, a dry run
 * (POST .../definitions/{id}/dryRun); a PQL error is shown at its line and column from the 400 body's
 * `report`. Save writes the definition, Run starts a segment job, Explain shows why one profile is in or out.
 * Everything goes through the public API (ui.js's `api`), with the credentials of the page.
 */
"use strict";

(function () {
  const UI = window.OpensegUI;
  const el = UI.el;
  const SCHEMA = "/data/core/ups/segment/schema";
  const DEFINITIONS = "/data/core/ups/segment/definitions";
  const JOBS = "/data/core/ups/segment/jobs";
  const PREVIEW = "/data/core/ups/preview";
  const ESTIMATE = "/data/core/ups/estimate";
  const CHECK_DELAY_MS = 400;
  const JOB_POLL_MS = 500;
  const MAX_LISTED_FIELDS = 300;
  const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
  // Common XDM event types, offered while typing (any other value may be typed).
  const EVENT_TYPES = ["commerce.purchases", "commerce.productViews", "commerce.productListAdds", "commerce.checkouts",
    "web.webpagedetails.pageViews", "message.opened", "message.clicked", "application.launch"];
  const OPERATORS = {
    string: [["=", "equals"], ["!=", "does not equal"], ["in", "is one of"], ["contains", "contains"],
      ["startsWith", "starts with"], ["isNotNull", "exists"], ["isNull", "does not exist"]],
    number: [["=", "="], ["!=", "≠"], [">", ">"], [">=", "≥"], ["<", "<"], ["<=", "≤"],
      ["isNotNull", "exists"], ["isNull", "does not exist"]],
    boolean: [["true", "is true"], ["false", "is false"], ["isNotNull", "exists"], ["isNull", "does not exist"]],
    date: [["<", "is before"], [">=", "is on or after"], ["inLast", "is in the last N days"],
      ["isNotNull", "exists"], ["isNull", "does not exist"]],
    other: [["isNotNull", "exists"], ["isNull", "does not exist"]],
  };
  const COUNT_OPERATORS = [">=", ">", "=", "<=", "<"];

  const $ = (id) => document.getElementById(id);

  const builder = {
    fields: [], // {path, type, standard} of the profile
    eventFields: [],
    root: newGroup("and"),
    handEdited: false, // the PQL text was typed: the conditions no longer write it
    editingId: null, // the saved definition being edited, if any
    checkRequest: 0,
    checkTimer: null,
    definitionNames: "", // the definitions the "In segment" choices were drawn from
  };

  function newGroup(op) {
    return { kind: "group", op, not: false, items: [] };
  }

  // ---------------------------------------------------------------- PQL from the conditions

  function kindOfType(type) {
    if (type === "string") return "string";
    if (type === "integer" || type === "number") return "number";
    if (type === "boolean") return "boolean";
    if (type === "date" || type === "datetime") return "date";
    return "other";
  }

  function quote(text) {
    return JSON.stringify(String(text));
  }

  function literal(value, kind) {
    return kind === "number" ? String(Number(value)) : quote(value);
  }

  function attributePql(c) {
    if (!c.path) return "";
    const kind = kindOfType(c.type);
    if (c.op === "isNull" || c.op === "isNotNull") return `${c.path}.${c.op}()`;
    if (kind === "boolean") return `${c.path} = ${c.op}`;
    if (c.value === "" || (kind === "number" && !Number.isFinite(Number(c.value)))) return "";
    if (kind === "date") {
      if (c.op === "inLast") {
        const days = Number(c.value);
        return Number.isInteger(days) && days > 0 ? `${c.path} occurs <= ${days} days before now` : "";
      }
      // A date field compares with date("YYYY-MM-DD"), a date-time field with datetime("...Z").
      if (!/^\d{4}-\d{2}-\d{2}$/.test(c.value)) return "";
      const moment = c.type === "date" ? `date(${quote(c.value)})` : `datetime(${quote(`${c.value}T00:00:00Z`)})`;
      return `${c.path} ${c.op} ${moment}`;
    }
    if (c.op === "in") {
      const values = c.value.split(",").map((v) => v.trim()).filter(Boolean);
      return `${c.path} in [${values.map((v) => literal(v, kind)).join(", ")}]`;
    }
    if (c.op === "contains" || c.op === "startsWith") return `${c.path}.${c.op}(${quote(c.value)})`;
    return `${c.path} ${c.op} ${literal(c.value, kind)}`;
  }

  function eventsPql(c) {
    if (!c.eventType || !Number.isInteger(Number(c.count))) return "";
    const window = c.days ? ` and timestamp occurs <= ${Number(c.days)} days before now` : "";
    return `xEvent[eventType = ${quote(c.eventType)}${window}].count() ${c.cmp} ${Number(c.count)}`;
  }

  function sequencePql(c) {
    if (!c.first || !c.then) return "";
    const lookback = c.lookback ? ` WHEN(<= ${Number(c.lookback)} days before now)` : "";
    const within = c.within ? ` WHEN(<= ${Number(c.within)} days after C0)` : "";
    return `chain(xEvent, timestamp, [C0: WHAT(eventType = ${quote(c.first)})${lookback}, `
      + `C1: WHAT(eventType = ${quote(c.then)})${within}])`;
  }

  function nodePql(node) {
    switch (node.kind) {
      case "group": return groupPql(node);
      case "attribute": return attributePql(node);
      case "events": return eventsPql(node);
      case "sequence": return sequencePql(node);
      case "segment": return node.segmentId ? `inSegment(${quote(node.segmentId)})` : "";
      default: return "";
    }
  }

  /** A group's PQL: its parts joined by and/or, parts that are groups of several in parentheses. */
  function groupPql(group) {
    const parts = group.items.map((item) => {
      const text = nodePql(item);
      const several = item.kind === "group" && !item.not && item.items.filter((i) => nodePql(i)).length > 1;
      return text && several ? `(${text})` : text;
    }).filter(Boolean);
    if (!parts.length) return "";
    const joined = parts.join(` ${group.op} `);
    return group.not ? `not (${joined})` : joined;
  }

  // ---------------------------------------------------------------- the conditions, drawn

  function select(role, options, value) {
    const node = el("select", { "data-role": role, "aria-label": role });
    for (const [optionValue, label] of options) {
      node.append(el("option", { value: optionValue, selected: optionValue === value }, label));
    }
    return node;
  }

  function input(role, value, attrs) {
    return el("input", { "data-role": role, "aria-label": role, value: value === undefined ? "" : value,
      spellcheck: "false", ...(attrs || {}) });
  }

  /** Wire an input or select to one property of the condition. */
  function bind(node, item, key) {
    node.addEventListener(node.tagName === "SELECT" ? "change" : "input", () => {
      item[key] = node.value;
      if (key === "path") {
        // A field of another type has other operators: draw the row again.
        const field = builder.fields.find((f) => f.path === node.value);
        const type = field ? field.type : "string";
        if (type !== item.type) {
          item.type = type;
          render();
          focusPath(item);
          return;
        }
      }
      if (key === "op") {
        render(); // "exists" takes no value, "is one of" a list
        return;
      }
      changed();
    });
    return node;
  }

  function focusPath(item) {
    const row = document.querySelector(`[data-key="${item.key}"] [data-role=path]`);
    if (row) {
      row.focus();
      row.setSelectionRange(row.value.length, row.value.length);
    }
  }

  function removeButton(parent, item) {
    const button = el("button", { type: "button", className: "small secondary", "data-role": "remove",
      title: "Remove" }, "✕");
    button.addEventListener("click", () => {
      parent.items.splice(parent.items.indexOf(item), 1);
      render();
    });
    return button;
  }

  let keys = 0;

  function conditionRow(parent, item) {
    item.key = item.key || `c${++keys}`;
    const row = el("div", { className: `condition condition-${item.kind}`, "data-key": item.key });
    if (item.kind === "attribute") {
      const kind = kindOfType(item.type);
      if (!OPERATORS[kind].some(([op]) => op === item.op)) item.op = OPERATORS[kind][0][0];
      row.append(el("span", { className: "kind" }, "Attribute"),
        bind(input("path", item.path, { className: "path", list: "builder-profile-fields" }), item, "path"),
        el("span", { className: "muted" }, item.type || ""),
        bind(select("operator", OPERATORS[kind], item.op), item, "op"));
      if (!["isNull", "isNotNull", "true", "false"].includes(item.op)) {
        const placeholder = item.op === "in" ? "a, b, c" : item.op === "inLast" ? "days"
          : kind === "date" ? "YYYY-MM-DD" : "value";
        row.append(bind(input("value", item.value, { placeholder }), item, "value"));
      }
    } else if (item.kind === "events") {
      row.append(el("span", { className: "kind" }, "Events"),
        bind(input("event-type", item.eventType, { className: "event-type", list: "builder-event-types",
          placeholder: "event type" }),
          item, "eventType"),
        el("span", {}, "in the last"),
        bind(input("days", item.days, { className: "num", type: "number", min: "1", placeholder: "all" }), item, "days"),
        el("span", {}, "days, count"),
        bind(select("count-operator", COUNT_OPERATORS.map((op) => [op, op]), item.cmp), item, "cmp"),
        bind(input("count", item.count, { className: "num", type: "number", min: "0" }), item, "count"));
    } else if (item.kind === "sequence") {
      row.append(el("span", { className: "kind" }, "Sequence"),
        bind(input("first", item.first, { className: "event-type", list: "builder-event-types",
          placeholder: "first event type" }), item, "first"),
        el("span", {}, "in the last"),
        bind(input("lookback", item.lookback, { className: "num", type: "number", min: "1" }), item, "lookback"),
        el("span", {}, "days, then"),
        bind(input("then", item.then, { className: "event-type", list: "builder-event-types",
          placeholder: "then event type" }), item, "then"),
        el("span", {}, "within"),
        bind(input("within", item.within, { className: "num", type: "number", min: "1" }), item, "within"),
        el("span", {}, "days"));
    } else if (item.kind === "segment") {
      const options = [["", "choose a segment"], ...[...UI.state.definitions.values()]
        .filter((d) => d.id !== builder.editingId).map((d) => [d.id, d.name])];
      row.append(el("span", { className: "kind" }, "In segment"),
        bind(select("segment", options, item.segmentId), item, "segmentId"));
    }
    row.append(removeButton(parent, item));
    return row;
  }

  function addButton(group, label, make) {
    const button = el("button", { type: "button", className: "small", "data-role": `add-${make().kind}` }, label);
    button.addEventListener("click", () => {
      group.items.push(make());
      render();
    });
    return button;
  }

  function groupBox(group, parent) {
    const box = el("div", { className: `group${group.not ? " negated" : ""}` });
    const op = select("group-operator", [["and", "all of (and)"], ["or", "any of (or)"]], group.op);
    op.addEventListener("change", () => {
      group.op = op.value;
      render();
    });
    const not = el("input", { type: "checkbox", "data-role": "not", checked: group.not });
    not.addEventListener("change", () => {
      group.not = not.checked;
      render();
    });
    const head = el("div", { className: "group-head" }, el("label", {}, not, " not"), op,
      addButton(group, "+ Attribute", () => ({ kind: "attribute", path: "", type: "string", op: "=", value: "" })),
      addButton(group, "+ Event count", () => ({ kind: "events", eventType: "commerce.purchases", days: "30",
        cmp: ">=", count: "1" })),
      addButton(group, "+ Sequence", () => ({ kind: "sequence", first: "commerce.productViews", lookback: "90",
        then: "commerce.purchases", within: "7" })),
      addButton(group, "+ In segment", () => ({ kind: "segment", segmentId: "" })),
      addButton(group, "+ Group", () => newGroup(group.op === "and" ? "or" : "and")));
    if (parent) head.append(removeButton(parent, group));
    box.append(head);
    for (const item of group.items) {
      box.append(item.kind === "group" ? groupBox(item, group) : conditionRow(group, item));
    }
    if (!group.items.length) box.append(el("p", { className: "hint" }, "No conditions yet: add one, or pick a field on the left."));
    return box;
  }

  function render() {
    const tree = $("builder-tree");
    tree.replaceChildren(groupBox(builder.root, null),
      el("datalist", { id: "builder-profile-fields" }, ...builder.fields.map((f) => el("option", { value: f.path }))),
      el("datalist", { id: "builder-event-types" }, ...EVENT_TYPES.map((t) => el("option", { value: t }))));
    changed();
  }

  // ---------------------------------------------------------------- PQL text, estimate and dry run

  function changed() {
    if (!builder.handEdited) $("builder-pql").value = groupPql(builder.root);
    $("builder-pql-mode").textContent = builder.handEdited
      ? "Edited by hand: the conditions above no longer write the PQL (“New segment” starts over)."
      : "Written by the conditions above; type here to edit the PQL directly.";
    scheduleCheck();
  }

  function scheduleCheck() {
    window.clearTimeout(builder.checkTimer);
    builder.checkTimer = window.setTimeout(check, CHECK_DELAY_MS);
  }

  function showPqlError(error, pql) {
    const box = $("builder-pql-error");
    box.replaceChildren();
    $("builder-pql").classList.toggle("invalid", Boolean(error));
    box.hidden = !error;
    if (!error) return;
    box.append(el("div", { className: "pql-error-message" }, error.message));
    const report = error.body && error.body.report;
    if (report && Number.isInteger(report.line) && Number.isInteger(report.col)) {
      const line = pql.split("\n")[report.line - 1] || "";
      box.append(el("pre", { className: "pql-error-snippet" }, `${line}\n${" ".repeat(Math.max(0, report.col - 1))}^`));
      box.dataset.line = String(report.line);
      box.dataset.col = String(report.col);
    }
  }

  /** Delete a preview once read: one is made at every pause in typing. */
  function forget(previewId) {
    UI.api(`${PREVIEW}/${encodeURIComponent(previewId)}`, { method: "DELETE" }).catch(() => {});
  }

  /** Estimate the expression (a preview) and, for a saved definition, dry-run it; ignore stale answers. */
  async function check() {
    const pql = $("builder-pql").value.trim();
    const request = ++builder.checkRequest;
    const estimate = $("builder-estimate");
    const dryRun = $("builder-dryrun");
    if (!pql) {
      showPqlError(null, pql);
      estimate.replaceChildren(el("span", { className: "muted" }, "Add a condition to see how many profiles it selects."));
      dryRun.replaceChildren();
      return;
    }
    estimate.replaceChildren(el("span", { className: "muted" }, "Estimating…"));
    let preview;
    try {
      preview = await UI.api(PREVIEW, { method: "POST", body: {
        predicateExpression: pql, predicateType: "pql/text", predicateModel: "_xdm.context.profile" } });
      preview.estimate = await UI.api(`${ESTIMATE}/${encodeURIComponent(preview.previewId)}`);
      forget(preview.previewId);
    } catch (error) {
      if (request !== builder.checkRequest) return;
      showPqlError(error, pql);
      estimate.replaceChildren(el("span", { className: "muted" }, "No estimate: see the error above."));
      dryRun.replaceChildren();
      return;
    }
    if (request !== builder.checkRequest) return;
    showPqlError(null, pql);
    const e = preview.estimate;
    const bounds = e["openseg:confidenceBounds"];
    estimate.replaceChildren(el("div", {}, "Estimated size"),
      el("div", { className: "big", id: "builder-estimate-size" }, window.OpensegCharts.formatNumber(e.estimatedSize)),
      el("div", { className: "muted" }, e["openseg:exact"]
        ? `exact count of ${window.OpensegCharts.formatNumber(e.totalProfiles)} profiles`
        : `95% interval ${bounds.low}–${bounds.high}, from ${e.profilesReadSoFar} of ${e.totalProfiles} profiles`));
    if (!builder.editingId) {
      dryRun.replaceChildren(el("span", { className: "muted" },
        "Save the definition to see, on later edits, who would enter and exit (dry run)."));
      return;
    }
    try {
      const diff = await UI.api(`${DEFINITIONS}/${encodeURIComponent(builder.editingId)}/dryRun`, { method: "POST",
        body: { expression: { type: "PQL", format: "pql/text", value: pql } } });
      if (request !== builder.checkRequest) return;
      const fmt = window.OpensegCharts.formatNumber;
      dryRun.replaceChildren(el("div", {}, "If saved now (dry run)"),
        el("div", { className: "big", id: "builder-dryrun-counts" },
          `+${fmt(diff.wouldEnter)} / −${fmt(diff.wouldExit)}`),
        el("div", { className: "muted" }, `${fmt(diff.wouldEnter)} would enter, ${fmt(diff.wouldExit)} would exit, `
          + `${fmt(diff.wouldStay)} stay (now ${fmt(diff.current)}, then ${fmt(diff.proposed)})`),
        ...[["entering", diff.samples.enter], ["exiting", diff.samples.exit]].filter(([, ids]) => ids.length)
          .map(([what, ids]) => el("div", { className: "cell-note" }, `${what}: ${ids.join(", ")}`)));
    } catch (error) {
      if (request === builder.checkRequest) dryRun.replaceChildren(el("span", { className: "error" }, error.message));
    }
  }

  // ---------------------------------------------------------------- save, run

  function status(message) {
    $("builder-status").textContent = message;
  }

  async function save() {
    const name = $("builder-name").value.trim();
    const pql = $("builder-pql").value.trim();
    if (!name || !pql) {
      status("A segment needs a name and at least one condition.");
      return;
    }
    const expression = { type: "PQL", format: "pql/text", value: pql };
    try {
      const saved = builder.editingId
        ? await UI.api(`${DEFINITIONS}/${encodeURIComponent(builder.editingId)}`, { method: "PATCH",
          body: { name, expression } })
        : await UI.api(DEFINITIONS, { method: "POST",
          body: { name, schema: { name: "_xdm.context.profile" }, expression } });
      builder.editingId = saved.id;
      status(`Saved “${saved.name}” (${saved.id}), version ${saved.version}.`);
      await UI.loadAll();
      scheduleCheck();
    } catch (error) {
      showPqlError(error, pql);
      status(error.message);
    }
  }

  async function run() {
    if (!builder.editingId) {
      status("Save the definition first: a job evaluates saved definitions.");
      return;
    }
    try {
      let job = await UI.api(JOBS, { method: "POST", body: [{ segmentId: builder.editingId }] });
      status(`Job ${job.id}: ${job.status}…`);
      while (!TERMINAL.has(job.status)) {
        await new Promise((resolve) => window.setTimeout(resolve, JOB_POLL_MS));
        job = await UI.api(`${JOBS}/${encodeURIComponent(job.id)}`);
        status(`Job ${job.id}: ${job.status}…`);
      }
      const counts = (job.metrics && job.metrics.segmentedProfileByStatusCounter || {})[builder.editingId];
      const members = (job.metrics && job.metrics.segmentedProfileCounter || {})[builder.editingId];
      status(job.status === "SUCCEEDED" && counts
        ? `Job ${job.id}: SUCCEEDED, ${members} members (${counts.realized} entered, ${counts.existing} stayed, `
          + `${counts.exited} exited).`
        : `Job ${job.id}: ${job.status}.`);
      await UI.loadAll();
      scheduleCheck();
    } catch (error) {
      status(error.message);
    }
  }

  function startOver(definition) {
    builder.root = newGroup("and");
    builder.editingId = definition ? definition.id : null;
    builder.handEdited = Boolean(definition);
    $("builder-name").value = definition ? definition.name : "";
    $("builder-pql").value = definition ? (definition.expression && definition.expression.value) || "" : "";
    $("explain-result").replaceChildren();
    status(definition ? `Editing “${definition.name}”: its PQL is below.` : "");
    render();
  }

  function renderLoadOptions() {
    const load = $("builder-load");
    const options = [["", "a new segment"], ...[...UI.state.definitions.values()].map((d) => [d.id, d.name])];
    load.replaceChildren(...options.map(([id, name]) => el("option", { value: id, selected: id === (builder.editingId || "") }, name)));
  }

  // ---------------------------------------------------------------- explain

  function explainNode(node) {
    const verdict = node.value ? "true" : "false";
    const item = el("li", { className: `explain-node is-${verdict}`, "data-value": verdict });
    const found = node.events ? ` · ${node.events.matched} events matched${node.events.sample.length
      ? ` (${node.events.sample.join(", ")})` : ""}` : node.found !== undefined ? ` · found ${JSON.stringify(node.found)}` : "";
    const line = el("div", { className: "line" }, el("span", { className: "verdict" }, node.value ? "✓ true" : "✗ false"),
      el("code", { className: "pql" }, node.pql), el("span", { className: "muted" }, found));
    if (node.segmentId && node._links && node._links.explanation) {
      const follow = el("button", { type: "button", className: "small" }, "explain that segment");
      follow.addEventListener("click", () => explainAt(node._links.explanation.href));
      line.append(" ", follow);
    }
    item.append(line, el("div", { className: "describe" }, node.description));
    if (node.children && node.children.length) item.append(el("ul", {}, ...node.children.map(explainNode)));
    return item;
  }

  async function explainAt(path) {
    const box = $("explain-result");
    try {
      const body = await UI.api(path);
      const membership = body.membership
        ? `${body.membership.status} since ${body.membership.lastQualificationTime}` : "not a member";
      box.replaceChildren(
        el("p", { className: "explain-summary" }, el("strong", {}, body.qualifies ? "Qualifies" : "Does not qualify"),
          ` — profile ${body.profileId}, segment ${UI.segmentName(body.segmentId)}; last job: ${membership}`,
          body.reason ? el("div", { className: "cell-note" }, body.reason) : null),
        el("ul", {}, explainNode(body.explanation)));
    } catch (error) {
      box.replaceChildren(el("p", { className: "error" }, error.message));
    }
  }

  function explain(event) {
    event.preventDefault();
    const id = $("explain-id").value.trim();
    const ns = $("explain-ns").value.trim() || "email";
    if (!builder.editingId || !id) {
      $("explain-result").replaceChildren(el("p", { className: "hint" },
        "Save (or choose) a segment and type a profile's identity to explain it."));
      return;
    }
    const query = new URLSearchParams({ entityId: id, entityIdNS: ns });
    explainAt(`${DEFINITIONS}/${encodeURIComponent(builder.editingId)}/explain?${query}`);
  }

  // ---------------------------------------------------------------- the union schema

  function renderFields() {
    const words = $("schema-search").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const matching = builder.fields.filter((f) => words.every((w) => f.path.toLowerCase().includes(w)));
    // Tenant fields (the sandbox's own) first: they are what a user most likely looks for.
    matching.sort((a, b) => Number(a.standard) - Number(b.standard) || a.path.localeCompare(b.path));
    const shown = matching.slice(0, MAX_LISTED_FIELDS);
    $("schema-fields").replaceChildren(...shown.map((field) => {
      const button = el("button", { type: "button", "data-path": field.path, title: `Add a condition on ${field.path}` },
        el("span", {}, field.path),
        el("span", { className: `field-type${field.standard ? "" : " tenant"}` },
          field.standard ? field.type : `${field.type} · tenant`));
      button.addEventListener("click", () => {
        builder.handEdited = false;
        const item = { kind: "attribute", path: field.path, type: field.type, op: "", value: "" };
        builder.root.items.push(item);
        render();
        const value = document.querySelector(`[data-key="${item.key}"] [data-role=value]`);
        if (value) value.focus();
      });
      return el("li", {}, button);
    }));
    const tenant = builder.fields.filter((f) => !f.standard).length;
    $("schema-caption").textContent = `${matching.length} of ${builder.fields.length} profile fields`
      + ` (${tenant} tenant fields from the sandbox's data)${matching.length > shown.length
        ? `; the first ${shown.length} listed, type to narrow` : ""}. Click one to add a condition.`;
  }

  async function loadSchema() {
    try {
      const body = await UI.api(SCHEMA);
      builder.fields = body.profile;
      builder.eventFields = body.event;
    } catch (error) {
      builder.fields = [];
      $("schema-caption").textContent = error.message;
      return;
    }
    renderFields();
    render();
  }

  // ---------------------------------------------------------------- start

  function start() {
    $("schema-search").addEventListener("input", renderFields);
    $("builder-pql").addEventListener("input", () => {
      builder.handEdited = true;
      changed();
    });
    $("builder-save").addEventListener("click", save);
    $("builder-run").addEventListener("click", run);
    $("builder-new").addEventListener("click", () => startOver(null));
    $("builder-load").addEventListener("change", (event) => startOver(UI.state.definitions.get(event.target.value)));
    $("explain-form").addEventListener("submit", explain);
    UI.onLoaded(() => {
      renderLoadOptions();
      if (!builder.fields.length) loadSchema();
      // The "In segment" choices follow the definitions: draw again when they changed.
      const names = [...UI.state.definitions.values()].map((d) => `${d.id}:${d.name}`).join("\n");
      if (builder.fields.length && names !== builder.definitionNames) render();
      builder.definitionNames = names;
    });
    render();
  }

  start();
})();

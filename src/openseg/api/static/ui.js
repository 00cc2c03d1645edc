/*
 * openseg UI: reads one sandbox through the AEP API with the user's credentials and draws its segment
 * definitions, segment jobs (with charts) and export jobs.
 *
 * Credentials come from the form, kept in localStorage. For a ready-made link (the demo prints one) they may
 * also arrive as `#token=…&key=…&org=…&sandbox=…` (preferred: a fragment never reaches the server's logs)
 * or as the same query parameters; either way they are saved and removed from the address bar at once.
 */
"use strict";

(function () {
  const Charts = window.OpensegCharts;
  const STORAGE_KEY = "openseg.credentials";
  const CREDENTIAL_FIELDS = ["token", "key", "org", "sandbox"];
  const DEFINITIONS = "/data/core/ups/segment/definitions?limit=1000";
  const JOBS = "/data/core/ups/segment/jobs?limit=20";
  const SUCCEEDED_JOBS = "/data/core/ups/segment/jobs?status=SUCCEEDED&limit=100";
  const EXPORTS = "/data/core/ups/export/jobs?limit=20";
  // Membership history (openseg extension): ".../definitions/{id}/members?at=T" counts the members at T.
  const DEFINITION = "/data/core/ups/segment/definitions";
  const PREVIEW = "/data/core/ups/preview";
  const MAX_TREND_JOBS = 20;
  const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
  const REFRESH_WHILE_RUNNING_MS = 5000;
  // Streaming segments change with no job: their member counts are read again this often while the page is open.
  const LIVE_REFRESH_MS = 3000;
  const STATUS_SERIES = [
    { key: "realized", label: "Realized (entered)", className: "series-realized" },
    { key: "existing", label: "Existing (stayed)", className: "series-existing" },
    { key: "exited", label: "Exited (left)", className: "series-exited" },
  ];
  // openseg's extension of a job's metrics: per segment, its share of the one-pass plan's stages.
  const SEGMENT_COST = "openseg:segmentCost";
  // The plan's final stage, which evaluates every segment over all profiles: shared by all of them.
  const FINAL_STAGE = "segments";
  const MAX_COST_ROWS = 25;
  const COST_SERIES = [
    { key: "own", label: "Stages it reads alone", className: "series-own" },
    { key: "shared", label: "Its share of shared stages", className: "series-shared" },
  ];

  const state = {
    definitions: new Map(), // id -> definition
    jobs: [], // the last 20, newest first
    succeeded: [], // succeeded jobs, newest first: the history the trend chart draws
    selectedJobId: null,
    trendSegmentId: null,
    refreshTimer: null,
    // Streaming (continuous) segments' members now: id -> {count, at (epoch ms)}, read every LIVE_REFRESH_MS.
    live: new Map(),
    liveTimer: null,
    liveRequest: 0,
    // Which lists the last load actually read: an unread list must not claim the sandbox is empty.
    loaded: { definitions: false, jobs: false, exports: false },
    rendered: false, // whether the page has drawn a load (or the lack of credentials) once
  };
  const NOT_LOADED = "Not loaded: see the message above.";

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- credentials

  function loadCredentials() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
      return saved && typeof saved === "object" ? saved : {};
    } catch (_) {
      return {}; // an unreadable entry is as good as none
    }
  }

  function saveCredentials(credentials) {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(credentials));
  }

  /** Take credentials from the URL fragment or query, save them, and clean them out of the address bar. */
  function adoptCredentialsFromUrl() {
    const url = new URL(window.location.href);
    const fromHash = new URLSearchParams(url.hash.replace(/^#/, ""));
    const found = {};
    for (const name of CREDENTIAL_FIELDS) {
      const value = fromHash.get(name) || url.searchParams.get(name);
      if (value) found[name] = value;
      url.searchParams.delete(name);
    }
    if (!Object.keys(found).length) return;
    saveCredentials({ ...loadCredentials(), ...found });
    url.hash = "";
    window.history.replaceState(null, "", url.pathname + url.search);
  }

  function fillForm(credentials) {
    $("cred-token").value = credentials.token || "";
    $("cred-key").value = credentials.key || "";
    $("cred-org").value = credentials.org || "";
    $("cred-sandbox").value = credentials.sandbox || "prod";
  }

  function readForm() {
    return {
      token: $("cred-token").value.trim(),
      key: $("cred-key").value.trim(),
      org: $("cred-org").value.trim(),
      sandbox: $("cred-sandbox").value.trim() || "prod",
    };
  }

  function complete(credentials) {
    return Boolean(credentials.token && credentials.key && credentials.org);
  }

  // ---------------------------------------------------------------- the API

  /** A refused request: the plain-words message, plus the status and AEP error body (its `report` holds a PQL
   * error's line and column). */
  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  /** What a failed answer means, in plain words, followed by the server's own detail. */
  function explain(status, body) {
    const reason = {
      400: "The request was refused as invalid",
      401: "The credentials were not accepted",
      403: "These credentials may not read this sandbox",
      404: "Not found",
      429: "Too many requests",
    }[status] || (status >= 500 ? "The server failed" : `The server answered ${status}`);
    // AEP's error bodies carry `detail`; the gateway's auth errors carry `message`.
    const detail = body && typeof body === "object" ? body.detail || body.message || body.title : "";
    return detail ? `${reason} (HTTP ${status}): ${detail}` : `${reason} (HTTP ${status}).`;
  }

  /** Call the API: GET by default; `options.method` and `options.body` (sent as JSON) for the others. */
  async function api(path, options) {
    const credentials = loadCredentials();
    const method = (options && options.method) || "GET";
    const headers = {
      Accept: "application/json",
      Authorization: `Bearer ${credentials.token || ""}`,
      "x-api-key": credentials.key || "",
      "x-gw-ims-org-id": credentials.org || "",
      "x-sandbox-name": credentials.sandbox || "prod",
    };
    const init = { method, headers, cache: "no-store" };
    if (options && options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError("Could not reach the openseg server. Is it still running?");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) throw new ApiError(explain(response.status, body), response.status, body);
    return body;
  }

  // ---------------------------------------------------------------- formatting and DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function formatDuration(ms) {
    if (ms === undefined || ms === null || Number.isNaN(ms)) return "—";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    const minutes = Math.floor(ms / 60000);
    const seconds = Math.round((ms % 60000) / 1000);
    return `${minutes} min ${String(seconds).padStart(2, "0")} s`;
  }

  /** Seconds as people read them: 0.42 ms, 12 ms, 1.25 s, 2 min 05 s. */
  function formatSeconds(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
    const ms = seconds * 1000;
    if (ms === 0) return "0 s";
    if (ms < 0.01) return "< 0.01 ms";
    if (ms < 9.995) return `${+ms.toFixed(2)} ms`;
    if (ms < 999.5) return `${Math.round(ms)} ms`;
    if (seconds < 59.995) return `${+seconds.toFixed(2)} s`;
    return formatDuration(ms);
  }

  function formatTime(ms) {
    if (!ms) return "—";
    return new Date(ms).toLocaleString("en-US", {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
      hour12: false,
    });
  }

  function shortId(id) {
    const text = String(id);
    return text.length > 12 ? `${text.slice(0, 8)}…` : text;
  }

  function idCell(id) {
    return el("code", { title: String(id) }, shortId(id));
  }

  function statusBadge(status) {
    return el("span", { className: `badge status-${String(status).toLowerCase()}` }, status);
  }

  function segmentName(id) {
    const definition = state.definitions.get(id);
    return definition ? definition.name : id;
  }

  function jobDuration(job) {
    const total = job.metrics && job.metrics.totalTime;
    if (total && typeof total.totalTimeInMs === "number") return total.totalTimeInMs;
    if (!TERMINAL.has(job.status) && job.creationTime) return Date.now() - job.creationTime;
    return null;
  }

  function errorText(errors) {
    if (!Array.isArray(errors) || !errors.length) return "";
    return errors.map((e) => (e && (e.message || e.msg || e.detail || e.code)) || JSON.stringify(e)).join("; ");
  }

  function showError(id, message) {
    const node = $(id);
    node.textContent = message || "";
    node.hidden = !message;
  }

  function setStatus(message) {
    $("status").textContent = message;
  }

  function fillBody(table, rows, emptyText, columns) {
    const body = table.querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { colspan: columns, className: "empty" }, emptyText)));
      return;
    }
    body.append(...rows);
  }

  // ---------------------------------------------------------------- segment jobs

  function renderJobs() {
    chartedJob(); // settle which job is charted before marking its row
    const rows = state.jobs.map((job) => {
      const selected = job.id === state.selectedJobId;
      const button = el("button", {
        type: "button", className: "small", "aria-pressed": selected ? "true" : "false",
        disabled: !job.metrics || !job.metrics.segmentedProfileCounter,
      }, selected ? "Shown" : "Chart");
      button.addEventListener("click", () => selectJob(job.id));
      const segments = (job.segments || []).map((s) => segmentName(s.segmentId));
      const segmentText = segments.length > 2 ? `${segments.length} segments` : segments.join(", ");
      const failure = errorText(job.errors);
      const progress = progressText(job);
      return el("tr", { className: selected ? "selected" : "" },
        el("td", {}, idCell(job.id)),
        el("td", {}, statusBadge(job.status), failure ? el("div", { className: "cell-note" }, failure) : null,
          progress ? el("div", { className: "cell-note" }, progress) : null),
        el("td", {}, formatTime(job.creationTime)),
        el("td", { className: "num" }, formatDuration(jobDuration(job))),
        el("td", { title: segments.join("\n") }, segmentText),
        el("td", { className: "num" },
          job.metrics && typeof job.metrics.totalProfiles === "number"
            ? Charts.formatNumber(job.metrics.totalProfiles) : "—"),
        el("td", {}, button));
    });
    fillBody($("jobs-table"), rows, state.loaded.jobs
      ? "No segment jobs yet: POST /data/core/ups/segment/jobs starts one." : NOT_LOADED, 7);
    renderDurations();
  }

  function renderDurations() {
    const timed = state.jobs.filter((job) => job.metrics && job.metrics.totalTime
      && typeof job.metrics.totalTime.totalTimeInMs === "number").slice().reverse();
    Charts.columns($("chart-durations"), {
      title: "Duration of the last jobs",
      description: `Total time of each of the last ${timed.length} finished segment jobs, oldest first.`,
      xLabel: "Job (oldest → newest)",
      yLabel: "Total time",
      emptyText: state.loaded.jobs ? "No finished job yet." : NOT_LOADED,
      format: (ms) => formatDuration(ms),
      // Colour alone must not carry the meaning: say what the red bars are when there are any.
      legend: timed.some((job) => job.status !== "SUCCEEDED")
        ? [{ label: "Succeeded", className: "series-0" }, { label: "Failed or cancelled", className: "series-failed" }]
        : [],
      // Ticks in the unit the values need (ms for quick jobs): 0.05 s must not print as "0.1".
      tickFormat: (ms) => (ms === 0 ? "0" : formatSeconds(ms / 1000)),
      bars: timed.map((job) => ({
        label: shortId(job.id).slice(0, 6),
        value: job.metrics.totalTime.totalTimeInMs,
        className: job.status === "SUCCEEDED" ? "series-0" : "series-failed",
        tooltip: `${job.id} (${job.status}, ${formatTime(job.creationTime)}): ${formatDuration(
          job.metrics.totalTime.totalTimeInMs)}`,
      })),
    });
  }

  /** "step 2 of 4: ev1" while a job runs (openseg:progress), else "". */
  function progressText(job) {
    const progress = job.metrics && job.metrics["openseg:progress"];
    if (!progress || TERMINAL.has(job.status)) return "";
    const policies = progress.mergePolicies > 1
      ? ` (merge policy ${progress.mergePolicy} of ${progress.mergePolicies})` : "";
    return `step ${progress.stepsDone} of ${progress.stepsTotal}: ${progress.step}${policies}`;
  }

  function selectJob(jobId) {
    state.selectedJobId = jobId;
    renderJobs();
    renderMembers();
    renderCost();
  }

  /** The job to chart: the user's choice while it is listed, else the latest succeeded one. */
  function chartedJob() {
    const chosen = state.jobs.find((job) => job.id === state.selectedJobId);
    if (chosen) return chosen;
    const latest = state.jobs.find((job) => job.status === "SUCCEEDED") || state.succeeded[0] || null;
    state.selectedJobId = latest ? latest.id : null;
    return latest;
  }

  function renderMembers() {
    const job = chartedJob();
    const counter = (job && job.metrics && job.metrics.segmentedProfileCounter) || {};
    const byStatus = (job && job.metrics && job.metrics.segmentedProfileByStatusCounter) || {};
    const rows = Object.keys(counter).map((id) => {
      const statuses = byStatus[id];
      const members = counter[id];
      const values = statuses
        ? { realized: statuses.realized || 0, existing: statuses.existing || 0, exited: statuses.exited || 0 }
        : { realized: members, existing: 0, exited: 0 };
      const exited = values.exited ? ` · ${Charts.formatNumber(values.exited)} exited` : "";
      return { label: segmentName(id), values, members,
        valueText: `${Charts.formatNumber(members)} members${exited}` };
    }).sort((a, b) => b.members - a.members || a.label.localeCompare(b.label));
    $("members-caption").textContent = job
      ? `Job ${job.id}, created ${formatTime(job.creationTime)}. Members are realized + existing profiles;`
        + " exited profiles left the segment in this job."
      : "";
    Charts.stackedBars($("chart-members"), {
      title: job ? `Members per segment, job ${shortId(job.id)}` : "Members per segment",
      description: rows.map((r) => `${r.label}: ${r.valueText}`).join(". ") || "No succeeded job yet.",
      xLabel: "Profiles",
      series: STATUS_SERIES,
      rows,
      emptyText: job ? "This job has no segment counts."
        : state.loaded.jobs ? "No succeeded segment job yet." : NOT_LOADED,
    });
  }

  // ---------------------------------------------------------------- cost per segment

  /** One stage as a segment pays for it: `ev0 (events, 763,968 rows scanned): 920 ms ÷ 8 = 115 ms`. */
  function stageText(stage) {
    const scanned = typeof stage.rowsScanned === "number"
      ? `, ${Charts.formatNumber(stage.rowsScanned)} rows scanned` : "";
    const share = stage.sharedBy > 1 ? ` ÷ ${stage.sharedBy} = ${formatSeconds(stage.seconds / stage.sharedBy)}` : "";
    return `${stage.name} (${stage.relation}${scanned}): ${formatSeconds(stage.seconds)}${share}`;
  }

  /** A segment's stages split as the chart stacks them: the ones only it reads, and the shared ones. */
  function costParts(cost) {
    const stages = Array.isArray(cost.stages) ? cost.stages.filter((s) => s && typeof s === "object") : [];
    // The final stage counts as shared even when a job has one segment: it is the plan's, not the segment's.
    const own = stages.filter((s) => s.sharedBy === 1 && s.name !== FINAL_STAGE);
    const shared = stages.filter((s) => !own.includes(s));
    const seconds = (list) => list.reduce((sum, s) => sum + (s.seconds || 0) / Math.max(1, s.sharedBy || 1), 0);
    return {
      stages, own, shared,
      // Without its stages, a segment's time is only known as a whole: draw it as shared.
      values: { own: seconds(own), shared: stages.length ? seconds(shared) : cost.seconds },
    };
  }

  function renderCost() {
    const job = chartedJob();
    const costs = (job && job.metrics && job.metrics[SEGMENT_COST]) || {};
    const all = Object.entries(costs)
      .filter(([, cost]) => cost && typeof cost === "object" && typeof cost.seconds === "number")
      .map(([id, cost]) => {
        const label = String(segmentName(id));
        const parts = costParts(cost);
        const scanned = typeof cost.rowsScanned === "number"
          ? ` · ${Charts.formatNumber(cost.rowsScanned)} rows scanned` : "";
        const list = (stages) => stages.map((s) => `\n${stageText(s)}`).join("");
        return {
          label, seconds: cost.seconds, values: parts.values, stages: parts.stages,
          valueText: `${formatSeconds(cost.seconds)}${scanned}`,
          tooltips: {
            own: `${label}: ${formatSeconds(parts.values.own)} in stages only it reads:${list(parts.own)}`,
            shared: `${label}: ${formatSeconds(parts.values.shared)}, its share of shared stages:${list(parts.shared)}`,
          },
        };
      })
      .sort((a, b) => b.seconds - a.seconds || a.label.localeCompare(b.label));
    const rows = all.slice(0, MAX_COST_ROWS);
    // Say when segments were left out: a chart of 25 bars must not pass for the whole job.
    const shown = all.length > rows.length ? `Showing the ${rows.length} costliest of ${all.length} segments. ` : "";
    const total = all.reduce((sum, row) => sum + row.seconds, 0);
    $("cost-caption").textContent = job && all.length
      ? `Job ${job.id}: ${formatSeconds(total)} of plan time over ${all.length} segments. ${shown}`
        + "Each stage's time is split evenly among the segments reading it; the final"
        + ` “${FINAL_STAGE}” stage, which evaluates every segment over all profiles, is shared by all of them.`
      : "";
    const emptyText = job ? "This job has no cost report (older jobs and jobs that did not succeed have none)."
      : state.loaded.jobs ? "No succeeded segment job yet." : NOT_LOADED;
    Charts.stackedBars($("chart-cost"), {
      title: job ? `Cost per segment, job ${shortId(job.id)}` : "Cost per segment",
      description: rows.length
        ? shown + rows.map((r) => `${r.label}: ${r.valueText} (${r.stages.map(stageText).join("; ")})`).join(". ")
        : emptyText,
      xLabel: "Share of the plan's time",
      series: COST_SERIES,
      rows,
      format: formatSeconds,
      tickFormat: (seconds) => (seconds === 0 ? "0" : formatSeconds(seconds)),
      emptyText,
    });
  }

  // ---------------------------------------------------------------- segment size over time

  function renderTrendOptions() {
    const select = $("trend-segment");
    const evaluated = new Set(state.succeeded.flatMap((job) =>
      Object.keys((job.metrics && job.metrics.segmentedProfileCounter) || {})));
    const ids = [...new Set([...state.definitions.keys(), ...evaluated])];
    if (!ids.includes(state.trendSegmentId)) {
      const latest = chartedJob();
      const first = Object.keys(latest?.metrics?.segmentedProfileCounter || {})[0];
      state.trendSegmentId = first || ids[0] || null;
    }
    select.replaceChildren(...ids.map((id) => el("option", {
      value: id, selected: id === state.trendSegmentId,
    }, evaluated.has(id) ? segmentName(id) : `${segmentName(id)} (not evaluated yet)`)));
    select.disabled = !ids.length;
  }

  /** The succeeded jobs (oldest first, the last 20) that evaluated segment `id`. */
  function jobsOf(id) {
    return state.succeeded
      .filter((job) => job.metrics && job.metrics.segmentedProfileCounter
        && typeof job.metrics.segmentedProfileCounter[id] === "number")
      .slice(0, MAX_TREND_JOBS).reverse();
  }

  /** Members of segment `id` at `ms`, from the membership history. */
  async function membersAt(id, ms) {
    const at = new Date(ms).toISOString();
    const body = await api(`${DEFINITION}/${encodeURIComponent(id)}/members?limit=1&at=${encodeURIComponent(at)}`);
    return body._page.totalCount;
  }

  let trendRequest = 0;

  /** Size of the segment after each succeeded job (membership history at the job's end), with the profiles
   * each job added (realized) and removed (exited). */
  async function renderTrend() {
    const id = state.trendSegmentId;
    const request = ++trendRequest;
    const jobs = id ? jobsOf(id) : [];
    const name = id ? segmentName(id) : "";
    const spec = {
      title: id ? `Members of “${name}” over time` : "Audience size over time",
      xLabel: "Job end time",
      yLabel: "Members",
      emptyText: id ? "No succeeded job evaluated this segment yet."
        : state.loaded.definitions ? "No segment defined yet." : NOT_LOADED,
      points: [],
    };
    $("trend-caption").textContent = "";
    const now = id ? state.live.get(id) : null;
    if (!jobs.length && !now) {
      Charts.sizeOverTime($("chart-size"), spec);
      return;
    }
    let sizes;
    try {
      sizes = await Promise.all(jobs.map((job) => membersAt(id, job.updateTime || job.creationTime)));
    } catch (error) {
      if (request !== trendRequest) return;
      Charts.sizeOverTime($("chart-size"), { ...spec, emptyText: error.message });
      return;
    }
    if (request !== trendRequest) return; // another segment was chosen meanwhile
    spec.points = jobs.map((job, i) => {
      const statuses = (job.metrics.segmentedProfileByStatusCounter || {})[id] || {};
      const when = job.updateTime || job.creationTime;
      const point = { x: when, y: sizes[i], entered: statuses.realized || 0, exited: statuses.exited || 0 };
      point.tooltip = `Job ${job.id}, ${formatTime(when)}: ${Charts.formatNumber(point.y)} members, `
        + `${Charts.formatNumber(point.entered)} entered, ${Charts.formatNumber(point.exited)} exited`;
      return point;
    });
    let caption = "Members after each succeeded job that evaluated the segment, read from the membership history; "
      + "below, the profiles each job added (entered) and removed (exited).";
    if (now) {
      // A streaming segment moves between jobs: its last point is its members now, with no bars (no job).
      spec.points.push({ x: now.at, y: now.count, live: true,
        tooltip: `Now, ${formatTime(now.at)}: ${Charts.formatNumber(now.count)} members (streaming)` });
      spec.xLabel = "Job end time, then now";
      caption += " The hollow point is now: the segment streams, so its members change as events arrive "
        + "(read again every few seconds).";
    }
    spec.description = spec.points.map((p) => p.tooltip).join(". ");
    $("trend-caption").textContent = caption;
    Charts.sizeOverTime($("chart-size"), spec);
  }

  // ---------------------------------------------------------------- overlap of two segments

  function renderOverlapOptions() {
    const ids = [...state.definitions.keys()];
    for (const [select, fallback] of [[$("overlap-a"), ids[0]], [$("overlap-b"), ids[1] || ids[0]]]) {
      const chosen = ids.includes(select.value) ? select.value : fallback;
      select.replaceChildren(...ids.map((id) => el("option", { value: id, selected: id === chosen }, segmentName(id))));
      select.disabled = !ids.length;
    }
  }

  /** How many profiles a PQL predicate selects now (a preview; `exact` false when sampled). */
  async function previewCount(pql) {
    const body = await api(PREVIEW, {
      method: "POST",
      body: { predicateExpression: pql, predicateType: "pql/text", predicateModel: "_xdm.context.profile" },
    });
    // Read once: delete it rather than leave a preview behind at every redraw.
    api(`${PREVIEW}/${encodeURIComponent(body.previewId)}`, { method: "DELETE" }).catch(() => {});
    return { size: body.page.totalCount, exact: body["openseg:exact"] !== false };
  }

  let overlapRequest = 0;

  async function renderOverlap() {
    const a = $("overlap-a").value;
    const b = $("overlap-b").value;
    const request = ++overlapRequest;
    const spec = { title: "Overlap", emptyText: state.loaded.definitions ? "Define two segments to compare them."
      : NOT_LOADED };
    if (!a || !b) {
      Charts.overlap($("chart-overlap"), spec);
      return;
    }
    const inA = `inSegment(${JSON.stringify(a)})`;
    const inB = `inSegment(${JSON.stringify(b)})`;
    let counts;
    try {
      counts = await Promise.all([previewCount(inA), previewCount(inB), previewCount(`${inA} and ${inB}`)]);
    } catch (error) {
      if (request === overlapRequest) Charts.overlap($("chart-overlap"), { ...spec, emptyText: error.message });
      return;
    }
    if (request !== overlapRequest) return;
    const [sizeA, sizeB, both] = counts;
    const exact = counts.every((c) => c.exact);
    $("overlap-caption").textContent = "Current members of each segment and of both (previews of inSegment(A), "
      + `inSegment(B) and both${exact ? "" : "; sampled estimates"}).`;
    Charts.overlap($("chart-overlap"), {
      title: `Overlap of “${segmentName(a)}” and “${segmentName(b)}”`,
      a: { label: segmentName(a), size: sizeA.size },
      b: { label: segmentName(b), size: sizeB.size },
      both: both.size,
    });
  }

  // ---------------------------------------------------------------- definitions

  function evaluationBadges(info) {
    const names = { batch: "batch", continuous: "streaming", synchronous: "edge" };
    const enabled = Object.keys(names).filter((kind) => info && info[kind] && info[kind].enabled);
    if (!enabled.length) return el("span", { className: "muted" }, "none");
    const wrap = el("span");
    for (const kind of enabled) wrap.append(el("span", { className: "badge eval" }, names[kind]), " ");
    return wrap;
  }

  function latestCount(id) {
    const job = state.succeeded.find((j) => j.metrics && j.metrics.segmentedProfileCounter
      && typeof j.metrics.segmentedProfileCounter[id] === "number");
    return job ? Charts.formatNumber(job.metrics.segmentedProfileCounter[id]) : "—";
  }

  /** openseg's opt-in streams a definition AEP would not (its evaluationInfo says continuous: false). */
  function optInBadge(definition) {
    const info = definition.evaluationInfo;
    if (definition["openseg:streamingOptIn"] !== true || (info && info.continuous && info.continuous.enabled)) return null;
    return el("span", { className: "badge eval", title: "openseg:streamingOptIn" }, "streaming (opt-in)");
  }

  function isStreaming(definition) {
    const info = definition.evaluationInfo;
    return Boolean(info && info.continuous && info.continuous.enabled) || definition["openseg:streamingOptIn"] === true;
  }

  /** A streaming segment's members now (read every LIVE_REFRESH_MS), else the latest job's count. */
  function membersCell(definition) {
    const now = state.live.get(definition.id);
    if (!now) return el("td", { className: "num" }, latestCount(definition.id));
    return el("td", { className: "num live-members" },
      el("span", { className: "live-count" }, Charts.formatNumber(now.count)),
      el("div", { className: "cell-note" }, `now (streaming), ${formatTime(now.at)}`));
  }

  function renderDefinitions() {
    const rows = [...state.definitions.values()].map((d) => el("tr", { "data-segment-id": d.id },
      el("td", {}, el("strong", {}, d.name), el("div", { className: "cell-note" }, idCell(d.id))),
      el("td", {}, el("code", { className: "pql" }, (d.expression && d.expression.value) || "")),
      el("td", {}, evaluationBadges(d.evaluationInfo), optInBadge(d)),
      membersCell(d),
      el("td", {}, formatTime(d.updateTime))));
    fillBody($("definitions-table"), rows, state.loaded.definitions
      ? "No segment definitions yet: POST /data/core/ups/segment/definitions creates one." : NOT_LOADED, 5);
  }

  // ---------------------------------------------------------------- exports

  function exportBatches(job) {
    const destination = job.destination || {};
    if (Array.isArray(destination.batches)) return destination.batches.map((b) => b.batchId);
    return destination.batchId ? [destination.batchId] : [];
  }

  function renderExports(records) {
    const rows = records.map((job) => {
      const segments = ((job.filter && job.filter.segments) || []).map((s) => segmentName(s.segmentId));
      const batches = exportBatches(job);
      const failure = errorText(job.errors);
      const progress = progressText(job);
      const total = job.metrics && job.metrics.totalTime;
      const exported = job.metrics && job.metrics["openseg:exportedProfiles"];
      return el("tr", {},
        el("td", {}, el("code", {}, String(job.id))),
        el("td", {}, statusBadge(job.status), failure ? el("div", { className: "cell-note" }, failure) : null,
          progress ? el("div", { className: "cell-note" }, progress) : null),
        el("td", {}, formatTime(job.creationTime)),
        el("td", { className: "num" }, formatDuration(total ? total.totalTimeInMs : null)),
        el("td", {}, segments.join(", ") || "—"),
        el("td", {}, (job.destination && job.destination.datasetId) ? idCell(job.destination.datasetId) : "—"),
        el("td", {}, ...batches.flatMap((id, i) => (i ? [el("br"), el("code", {}, id)] : [el("code", {}, id)]))),
        el("td", { className: "num" }, typeof exported === "number" ? Charts.formatNumber(exported) : "—"));
    });
    fillBody($("exports-table"), rows, state.loaded.exports
      ? "No export jobs yet: POST /data/core/ups/export/jobs starts one." : NOT_LOADED, 8);
  }

  // ---------------------------------------------------------------- loading

  function clearAll() {
    window.clearTimeout(state.liveTimer);
    state.liveRequest += 1; // a round of live counts still waiting for answers draws nothing
    state.live = new Map();
    state.definitions = new Map();
    state.jobs = [];
    state.succeeded = [];
    state.selectedJobId = null;
    state.loaded = { definitions: false, jobs: false, exports: false };
    renderEverything();
    renderExports([]);
  }

  /** Charts are drawn at their container's pixel width: draw them again when the window changes size. */
  function redrawChartsOnResize() {
    let pending = null;
    let lastWidth = window.innerWidth;
    window.addEventListener("resize", () => {
      if (window.innerWidth === lastWidth) return;
      lastWidth = window.innerWidth;
      window.clearTimeout(pending);
      pending = window.setTimeout(() => {
        renderDurations();
        renderMembers();
        renderCost();
        renderTrend();
      }, 150);
    });
  }

  function renderEverything() {
    renderJobs();
    renderMembers();
    renderCost();
    renderTrendOptions();
    renderTrend();
    renderDefinitions();
    renderOverlapOptions();
    renderOverlap();
    state.rendered = true;
    for (const listener of loadedListeners) listener();
  }

  /** Called after every (re)load, so the builder sees the current definitions. */
  const loadedListeners = [];

  /** Call ``listener`` after every (re)load, and now if the page has loaded already: a deferred script that
   * arrives after the first load has answered (a busy server, a slow link) must not miss it. */
  function onLoaded(listener) {
    loadedListeners.push(listener);
    if (state.rendered) listener();
  }

  async function loadAll() {
    window.clearTimeout(state.refreshTimer);
    if (!complete(loadCredentials())) {
      setStatus("Enter an access token, API key and IMS org to read a sandbox.");
      clearAll();
      return;
    }
    setStatus("Loading…");
    const [definitions, jobs, succeeded, exports] = await Promise.allSettled(
      [api(DEFINITIONS), api(JOBS), api(SUCCEEDED_JOBS), api(EXPORTS)]);

    state.loaded = {
      definitions: definitions.status === "fulfilled",
      jobs: jobs.status === "fulfilled" && succeeded.status === "fulfilled",
      exports: exports.status === "fulfilled",
    };
    showError("definitions-error", definitions.status === "rejected" ? definitions.reason.message : "");
    state.definitions = new Map(definitions.status === "fulfilled"
      ? (definitions.value.segments || []).map((d) => [d.id, d]) : []);
    const jobsFailure = [jobs, succeeded].find((r) => r.status === "rejected");
    showError("jobs-error", jobsFailure ? jobsFailure.reason.message : "");
    state.jobs = jobs.status === "fulfilled" ? jobs.value.children || [] : [];
    state.succeeded = succeeded.status === "fulfilled" ? succeeded.value.children || [] : [];
    renderEverything();
    showError("exports-error", exports.status === "rejected" ? exports.reason.message : "");
    renderExports(exports.status === "fulfilled" ? exports.value.records || [] : []);

    const failures = [definitions, jobs, succeeded, exports].filter((r) => r.status === "rejected");
    const credentials = loadCredentials();
    setStatus(failures.length
      ? failures[0].reason.message
      : `Sandbox “${credentials.sandbox || "prod"}” of ${credentials.org}, loaded ${formatTime(Date.now())}.`);
    // Keep an eye on jobs that are still queued or running, so their end shows without a manual refresh.
    const running = state.jobs.some((job) => !TERMINAL.has(job.status));
    if (running && !failures.length) state.refreshTimer = window.setTimeout(loadAll, REFRESH_WHILE_RUNNING_MS);
    loadLive();
  }

  /** The members now of every streaming segment (``.../members?limit=1``: its count, at the server's time), drawn
   * in the definitions table and as the trend's last point; read again every LIVE_REFRESH_MS while some segment
   * streams, or after four times as long as the round took, whichever is later (a sandbox of many streaming
   * segments over a large store is not read without pause). One round at a time: a reload starts a new one and a
   * round it superseded draws nothing. */
  async function loadLive() {
    window.clearTimeout(state.liveTimer);
    const request = ++state.liveRequest;
    const streaming = [...state.definitions.values()].filter(isStreaming);
    if (!streaming.length) {
      if (state.live.size) {
        state.live = new Map();
        renderDefinitions();
        renderTrend();
      }
      return;
    }
    const started = performance.now();
    const answers = await Promise.allSettled(streaming.map((d) =>
      api(`${DEFINITION}/${encodeURIComponent(d.id)}/members?limit=1`)));
    if (request !== state.liveRequest) return;
    const previous = state.live;
    state.live = new Map();
    answers.forEach((answer, i) => {
      if (answer.status !== "fulfilled") return; // a definition deleted meanwhile, a server restarting
      const at = Date.parse(answer.value.at);
      state.live.set(streaming[i].id, { count: answer.value._page.totalCount, at: Number.isNaN(at) ? Date.now() : at });
    });
    renderDefinitions();
    const trend = state.trendSegmentId;
    if (trend && (previous.get(trend) || {}).count !== (state.live.get(trend) || {}).count) renderTrend();
    state.liveTimer = window.setTimeout(loadLive, Math.max(LIVE_REFRESH_MS, 4 * (performance.now() - started)));
  }

  // ---------------------------------------------------------------- start

  function start() {
    adoptCredentialsFromUrl();
    fillForm(loadCredentials());
    $("credentials").addEventListener("submit", (event) => {
      event.preventDefault();
      saveCredentials(readForm());
      state.selectedJobId = null;
      loadAll();
    });
    $("refresh").addEventListener("click", () => loadAll());
    $("forget").addEventListener("click", () => {
      localStorage.removeItem(STORAGE_KEY);
      fillForm({});
      loadAll();
    });
    $("trend-segment").addEventListener("change", (event) => {
      state.trendSegmentId = event.target.value;
      renderTrend();
    });
    $("overlap-a").addEventListener("change", () => renderOverlap());
    $("overlap-b").addEventListener("change", () => renderOverlap());
    redrawChartsOnResize();
    loadAll();
  }

  // What the builder (builder.js) shares with this page.
  window.OpensegUI = {
    api, el, state, loadAll, formatTime, segmentName, onLoaded,
  };

  start();
})();

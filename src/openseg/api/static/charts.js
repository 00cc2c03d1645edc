/*
 * openseg UI charts: small inline-SVG charts drawn without any library (the UI loads nothing from the network).
 *
 * Every chart has a visible title, axis labels and its numbers printed next to the marks, plus an SVG <title>
 * and <desc> so screen readers announce it. Text always goes in through textContent, never as markup, so a
 * segment named "<script>" is just text.
 */
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";

  /** Create an SVG element with attributes; `text` (optional) becomes its text content. */
  function svgEl(tag, attrs, text) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) el.setAttribute(name, String(value));
    }
    if (text !== undefined) el.textContent = text;
    return el;
  }

  /** 1,234,567 in the reader's locale-independent form used across the UI. */
  function formatNumber(value) {
    return Number(value).toLocaleString("en-US");
  }

  /** Axis steps of 1, 2 or 5 times a power of ten, at most about `count` of them up to `max`. */
  function niceTicks(max, count) {
    if (!(max > 0)) return [0, 1];
    const rough = max / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
    const ticks = [];
    for (let t = 0; t < max + step / 2; t += step) ticks.push(t);
    if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }

  /** Short tick label for large counts: 12k, 1.5M. */
  function compact(value) {
    const abs = Math.abs(value);
    if (abs >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
    if (abs >= 1e4) return `${+(value / 1e3).toFixed(0)}k`;
    if (abs >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
    return String(+value.toFixed(2));
  }

  /** Cut long labels so they fit beside a bar; the full text stays in the mark's tooltip. */
  function truncate(text, length) {
    return text.length > length ? `${text.slice(0, length - 1)}…` : text;
  }

  /** Draw at the container's own pixel width, so text keeps its CSS size whatever the layout. */
  function measure(container, fallback) {
    return Math.max(320, Math.round(container.clientWidth || fallback));
  }

  /** Ticks for a value axis, with headroom above the largest value for the number printed on its mark. */
  function valueTicks(max, count) {
    return niceTicks(max * 1.12, count);
  }

  let chartCount = 0;

  /** Start a chart: clear the container and add an accessible <svg> with a visible title. */
  function frame(container, spec, width, height) {
    container.replaceChildren();
    chartCount += 1;
    const titleId = `chart-title-${chartCount}`;
    const descId = `chart-desc-${chartCount}`;
    const svg = svgEl("svg", {
      viewBox: `0 0 ${width} ${height}`, width: width, height: height, role: "img", class: "chart",
      "aria-labelledby": titleId, "aria-describedby": descId, preserveAspectRatio: "xMinYMin meet",
    });
    svg.appendChild(svgEl("title", { id: titleId }, spec.title));
    svg.appendChild(svgEl("desc", { id: descId }, spec.description || spec.title));
    svg.appendChild(svgEl("text", { x: 0, y: 18, class: "chart-title" }, spec.title));
    container.appendChild(svg);
    return svg;
  }

  /** A chart with no data: keep the title, say why there is nothing to draw. */
  function empty(container, spec) {
    const svg = frame(container, spec, measure(container, 640), 80);
    svg.appendChild(svgEl("text", { x: 0, y: 52, class: "chart-empty" }, spec.emptyText || "No data yet."));
    return svg;
  }

  /** A row of colour keys under the title. */
  function legend(svg, series, x, y) {
    let offset = x;
    for (const s of series) {
      const key = svgEl("g", { class: "legend-item" });
      key.appendChild(svgEl("rect", { x: offset, y: y - 10, width: 12, height: 12, class: s.className }));
      const label = svgEl("text", { x: offset + 17, y: y, class: "legend-label" }, s.label);
      key.appendChild(label);
      svg.appendChild(key);
      offset += 30 + s.label.length * 7;
    }
  }

  /**
   * Horizontal bars, each a stack of series (for example realized / existing / exited profiles).
   *
   * spec: {title, description, xLabel, emptyText, format(value) -> text, tickFormat(value) -> text,
   *        series: [{key, label, className}],
   *        rows: [{label, values: {key: number}, valueText, tooltips: {key: text}}]}
   * `valueText` is printed right of the bar (defaults to the stack's total); `tooltips` (optional) replace
   * the default tooltip of a series' part of the bar. `format` (default: a count) writes values in the
   * tooltips and the default `valueText`, `tickFormat` (default: 12k, 1.5M) the value axis.
   */
  function stackedBars(container, spec) {
    if (!spec.rows.length) return empty(container, spec);
    const format = spec.format || formatNumber;
    const tickFormat = spec.tickFormat || compact;
    const width = measure(container, 900);
    const labelWidth = Math.round(Math.min(260, width * 0.26));
    const valueWidth = 200;
    const plotWidth = width - labelWidth - valueWidth;
    const top = 58;
    const rowHeight = 34;
    const barHeight = 20;
    const height = top + spec.rows.length * rowHeight + 48;
    const svg = frame(container, spec, width, height);
    legend(svg, spec.series, labelWidth, 42);

    const totals = spec.rows.map((row) => spec.series.reduce((sum, s) => sum + (row.values[s.key] || 0), 0));
    const ticks = niceTicks(Math.max(...totals), Math.max(3, Math.floor(plotWidth / 90)));
    const max = ticks[ticks.length - 1];
    const scale = (v) => (v / max) * plotWidth;
    const bottom = top + spec.rows.length * rowHeight;

    for (const tick of ticks) {
      const x = labelWidth + scale(tick);
      svg.appendChild(svgEl("line", { x1: x, x2: x, y1: top - 4, y2: bottom, class: "grid" }));
      svg.appendChild(svgEl("text", { x: x, y: bottom + 16, class: "tick", "text-anchor": "middle" },
        tickFormat(tick)));
    }
    svg.appendChild(svgEl("text", {
      x: labelWidth + plotWidth / 2, y: bottom + 38, class: "axis-label", "text-anchor": "middle",
    }, spec.xLabel));

    spec.rows.forEach((row, i) => {
      const y = top + i * rowHeight + (rowHeight - barHeight) / 2;
      const label = svgEl("text", {
        x: labelWidth - 8, y: y + barHeight / 2 + 4, class: "bar-label", "text-anchor": "end",
      }, truncate(row.label, Math.floor(labelWidth / 7.5)));
      label.appendChild(svgEl("title", {}, row.label));
      svg.appendChild(label);
      let x = labelWidth;
      for (const s of spec.series) {
        const value = row.values[s.key] || 0;
        if (value <= 0) continue;
        const rect = svgEl("rect", {
          x: x, y: y, width: Math.max(1, scale(value)), height: barHeight, class: `bar ${s.className}`,
        });
        const tooltip = row.tooltips && row.tooltips[s.key];
        rect.appendChild(svgEl("title", {}, tooltip || `${row.label}: ${format(value)} ${s.label.toLowerCase()}`));
        svg.appendChild(rect);
        x += scale(value);
      }
      svg.appendChild(svgEl("text", {
        x: x + 6, y: y + barHeight / 2 + 4, class: "bar-value",
      }, row.valueText || format(totals[i])));
    });
    svg.appendChild(svgEl("line", { x1: labelWidth, x2: labelWidth, y1: top - 4, y2: bottom, class: "axis" }));
    return svg;
  }

  /**
   * Vertical columns with their value printed on top (for example the duration of the last jobs).
   *
   * spec: {title, description, xLabel, yLabel, emptyText, format(value) -> text, tickFormat(value) -> text,
   *        legend: [{label, className}] (optional), bars: [{label, value, className, tooltip}]}
   */
  function columns(container, spec) {
    if (!spec.bars.length) return empty(container, spec);
    const width = measure(container, 640);
    const height = 300;
    const format = spec.format || formatNumber;
    const tickFormat = spec.tickFormat || compact;
    const ticks = valueTicks(Math.max(...spec.bars.map((b) => b.value)), 4);
    // Room for the widest tick label (about 7 px a character) beside the rotated axis title.
    const left = 30 + 7 * Math.max(...ticks.map((tick) => String(tickFormat(tick)).length));
    const right = 12;
    const top = spec.legend && spec.legend.length ? 64 : 44;
    const bottom = 62;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const svg = frame(container, spec, width, height);
    if (spec.legend && spec.legend.length) legend(svg, spec.legend, left, 42);

    const max = ticks[ticks.length - 1];
    const y = (v) => top + plotHeight - (v / max) * plotHeight;
    for (const tick of ticks) {
      svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }));
      svg.appendChild(svgEl("text", { x: left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" },
        tickFormat(tick)));
    }
    const slot = plotWidth / spec.bars.length;
    const barWidth = Math.min(48, slot * 0.7);
    spec.bars.forEach((bar, i) => {
      const cx = left + slot * i + slot / 2;
      const rect = svgEl("rect", {
        x: cx - barWidth / 2, y: y(bar.value), width: barWidth,
        height: Math.max(1, top + plotHeight - y(bar.value)), class: `bar ${bar.className || "series-0"}`,
      });
      rect.appendChild(svgEl("title", {}, bar.tooltip || `${bar.label}: ${format(bar.value)}`));
      svg.appendChild(rect);
      svg.appendChild(svgEl("text", { x: cx, y: y(bar.value) - 5, class: "bar-value", "text-anchor": "middle" },
        format(bar.value)));
      svg.appendChild(svgEl("text", { x: cx, y: top + plotHeight + 16, class: "tick", "text-anchor": "middle" },
        bar.label));
    });
    svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight,
      class: "axis" }));
    axisLabels(svg, spec, left, top, plotWidth, plotHeight, height);
    return svg;
  }

  function axisLabels(svg, spec, left, top, plotWidth, plotHeight, height) {
    svg.appendChild(svgEl("text", { x: left + plotWidth / 2, y: height - 10, class: "axis-label",
      "text-anchor": "middle" }, spec.xLabel));
    const cy = top + plotHeight / 2;
    svg.appendChild(svgEl("text", { x: 14, y: cy, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 14 ${cy})` }, spec.yLabel));
  }

  /** Ticks along a time axis: evenly spaced, labelled with the date (and the time when the span is short). */
  function timeTicks(first, last) {
    if (first === last) return [first];
    const step = (last - first) / 4;
    return [0, 1, 2, 3, 4].map((i) => first + step * i);
  }

  function formatTime(ms, span) {
    const date = new Date(ms);
    const options = span > 3 * 86400000
      ? { month: "short", day: "numeric" }
      : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false };
    if (span < 600000) options.second = "2-digit";
    return date.toLocaleString("en-US", options);
  }

  /**
   * A line over time with each point's value printed beside it (for example a segment's size per job).
   *
   * spec: {title, description, xLabel, yLabel, emptyText, points: [{x: epochMs, y: number, tooltip}]}
   */
  function line(container, spec) {
    if (!spec.points.length) return empty(container, spec);
    const width = measure(container, 640);
    const height = 300;
    // Wide side margins: the first and last time labels are centred on the first and last points.
    const left = 80;
    const right = 80;
    const top = 44;
    const bottom = 62;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const svg = frame(container, spec, width, height);

    const points = [...spec.points].sort((a, b) => a.x - b.x);
    const first = points[0].x;
    const last = points[points.length - 1].x;
    const span = last - first;
    // Keep points off the value axis so the first point's number does not sit on the axis labels.
    const inset = 28;
    const x = (t) => (span === 0
      ? left + plotWidth / 2
      : left + inset + ((t - first) / span) * (plotWidth - 2 * inset));
    const ticks = valueTicks(Math.max(...points.map((p) => p.y)), 5);
    const max = ticks[ticks.length - 1];
    const y = (v) => top + plotHeight - (v / max) * plotHeight;

    for (const tick of ticks) {
      svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }));
      svg.appendChild(svgEl("text", { x: left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" },
        compact(tick)));
    }
    for (const tick of timeTicks(first, last)) {
      svg.appendChild(svgEl("text", { x: x(tick), y: top + plotHeight + 16, class: "tick", "text-anchor": "middle" },
        formatTime(tick, span)));
    }
    svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight,
      class: "axis" }));
    if (points.length > 1) {
      const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
      svg.appendChild(svgEl("path", { d: path, class: "line series-0-stroke" }));
    }
    // Print values from the newest point back, skipping any that would overlap the one printed after it;
    // every value stays in its point's tooltip.
    let lastLabelX = Infinity;
    for (let i = points.length - 1; i >= 0; i -= 1) {
      const p = points[i];
      const dot = svgEl("circle", { cx: x(p.x), cy: y(p.y), r: 4, class: "dot series-0" });
      dot.appendChild(svgEl("title", {}, p.tooltip || `${formatTime(p.x, 0)}: ${formatNumber(p.y)}`));
      svg.appendChild(dot);
      const text = formatNumber(p.y);
      if (lastLabelX - x(p.x) >= text.length * 7.5 + 8) {
        svg.appendChild(svgEl("text", { x: x(p.x), y: y(p.y) - 9, class: "point-value", "text-anchor": "middle" },
          text));
        lastLabelX = x(p.x);
      }
    }
    axisLabels(svg, spec, left, top, plotWidth, plotHeight, height);
    return svg;
  }

  /**
   * A segment's size over time (a line, each point's value printed) above the profiles that entered (columns
   * up) and exited (columns down) at each point.
   *
   * spec: {title, description, xLabel, yLabel, emptyText, points: [{x: epochMs, y, entered, exited, tooltip, live}]}
   * A ``live`` point (a streaming segment's members now, no job) is drawn hollow, with no columns.
   */
  function sizeOverTime(container, spec) {
    if (!spec.points.length) return empty(container, spec);
    const width = measure(container, 640);
    const left = 80;
    const right = 80;
    const top = 64;
    const sizeHeight = 190;
    const gap = 34;
    const flowHeight = 120;
    const bottom = 62;
    const height = top + sizeHeight + gap + flowHeight + bottom;
    const plotWidth = width - left - right;
    const svg = frame(container, spec, width, height);
    legend(svg, [{ label: "Members", className: "series-0" }, { label: "Entered", className: "series-entered" },
      { label: "Exited", className: "series-exited" }], left, 42);

    const points = [...spec.points].sort((a, b) => a.x - b.x);
    const first = points[0].x;
    const last = points[points.length - 1].x;
    const span = last - first;
    const inset = 28;
    const x = (t) => (span === 0 ? left + plotWidth / 2
      : left + inset + ((t - first) / span) * (plotWidth - 2 * inset));

    // The size line.
    const ticks = valueTicks(Math.max(...points.map((p) => p.y)), 4);
    const max = ticks[ticks.length - 1];
    const y = (v) => top + sizeHeight - (v / max) * sizeHeight;
    for (const tick of ticks) {
      svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }));
      svg.appendChild(svgEl("text", { x: left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" },
        compact(tick)));
    }
    // Jobs' points joined by a line; a live point (no job) by a dashed one from the point before it.
    const line = (from, to, className) => {
      const path = points.slice(from, to).map((p, i) => `${i ? "L" : "M"}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`);
      if (path.length > 1) svg.appendChild(svgEl("path", { d: path.join(" "), class: className }));
    };
    const firstLive = points.findIndex((p) => p.live);
    const jobsEnd = firstLive < 0 ? points.length : firstLive;
    line(0, jobsEnd, "line series-0-stroke");
    if (firstLive >= 0) line(Math.max(0, firstLive - 1), points.length, "line live-line series-0-stroke");
    for (const p of points) {
      const dot = svgEl("circle", { cx: x(p.x), cy: y(p.y), r: 4,
        class: p.live ? "dot size-point live-point series-0-stroke" : "dot series-0 size-point" });
      dot.appendChild(svgEl("title", {}, p.tooltip || `${formatTime(p.x, 0)}: ${formatNumber(p.y)}`));
      svg.appendChild(dot);
      svg.appendChild(svgEl("text", { x: x(p.x), y: y(p.y) - 9, class: "point-value size-value",
        "text-anchor": "middle" }, formatNumber(p.y)));
    }
    svg.appendChild(svgEl("text", { x: 14, y: top + sizeHeight / 2, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 14 ${top + sizeHeight / 2})` }, spec.yLabel));

    // Entries above and exits below a zero line.
    const flowTop = top + sizeHeight + gap;
    const zero = flowTop + flowHeight / 2;
    const flows = points.filter((p) => !p.live);
    const flowMax = Math.max(1, ...flows.map((p) => Math.max(p.entered, p.exited)));
    const h = (v) => (v / flowMax) * (flowHeight / 2 - 14);
    const slot = points.length > 1 ? (plotWidth - 2 * inset) / (points.length - 1) : plotWidth;
    const barWidth = Math.max(6, Math.min(28, slot * 0.35));
    svg.appendChild(svgEl("text", { x: 14, y: zero, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 14 ${zero})` }, "Changes"));
    for (const p of flows) {
      for (const [value, sign, className] of [[p.entered, -1, "series-entered"], [p.exited, 1, "series-exited"]]) {
        const rect = svgEl("rect", {
          x: x(p.x) - barWidth / 2, y: sign < 0 ? zero - h(value) : zero, width: barWidth,
          height: Math.max(value ? 1 : 0, h(value)), class: `bar ${className} flow-bar`,
        });
        rect.appendChild(svgEl("title", {}, p.tooltip || ""));
        svg.appendChild(rect);
        if (!value) continue; // a job that moved nobody either way prints nothing there
        svg.appendChild(svgEl("text", {
          x: x(p.x), y: sign < 0 ? zero - h(value) - 4 : zero + h(value) + 13, class: `flow-value ${className}-text`,
          "text-anchor": "middle",
        }, sign < 0 ? `+${formatNumber(value)}` : `−${formatNumber(value)}`));
      }
    }
    svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: zero, y2: zero, class: "axis" }));
    for (const tick of timeTicks(first, last)) {
      svg.appendChild(svgEl("text", { x: x(tick), y: flowTop + flowHeight + 16, class: "tick", "text-anchor": "middle" },
        formatTime(tick, span)));
    }
    svg.appendChild(svgEl("text", { x: left + plotWidth / 2, y: height - 10, class: "axis-label",
      "text-anchor": "middle" }, spec.xLabel));
    return svg;
  }

  /**
   * The overlap of two audiences: two bars on one scale, placed so that their shared part lines up, with the
   * profiles only in A, in both and only in B printed.
   *
   * spec: {title, description, emptyText, a: {label, size}, b: {label, size}, both}
   */
  function overlap(container, spec) {
    if (!spec.a || !spec.b) return empty(container, spec);
    const onlyA = spec.a.size - spec.both;
    const onlyB = spec.b.size - spec.both;
    const union = onlyA + spec.both + onlyB;
    const jaccard = union ? spec.both / union : 0;
    const description = `${spec.a.label}: ${formatNumber(spec.a.size)} members; ${spec.b.label}: `
      + `${formatNumber(spec.b.size)}; in both: ${formatNumber(spec.both)} (${(jaccard * 100).toFixed(1)}% of either)`;
    const width = measure(container, 640);
    const labelWidth = Math.round(Math.min(240, width * 0.25));
    const plotWidth = width - labelWidth - 40;
    const top = 66;
    const barHeight = 26;
    const rowGap = 12;
    const height = top + 2 * barHeight + rowGap + 78;
    const svg = frame(container, { ...spec, description: spec.description || description }, width, height);
    legend(svg, [{ label: "Only A", className: "series-only-a" }, { label: "Both", className: "series-both" },
      { label: "Only B", className: "series-only-b" }], labelWidth, 42);
    const scale = (v) => (union ? (v / union) * plotWidth : 0);
    const rows = [
      { label: spec.a.label, size: spec.a.size, parts: [[0, onlyA, "series-only-a", "only A"], [onlyA, spec.both, "series-both", "both"]] },
      { label: spec.b.label, size: spec.b.size, parts: [[onlyA, spec.both, "series-both", "both"], [onlyA + spec.both, onlyB, "series-only-b", "only B"]] },
    ];
    rows.forEach((row, i) => {
      const y = top + i * (barHeight + rowGap);
      const label = svgEl("text", { x: labelWidth - 8, y: y + barHeight / 2 + 4, class: "bar-label",
        "text-anchor": "end" }, truncate(row.label, Math.floor(labelWidth / 7.5)));
      label.appendChild(svgEl("title", {}, `${row.label}: ${formatNumber(row.size)} members`));
      svg.appendChild(label);
      for (const [start, size, className, name] of row.parts) {
        if (size <= 0) continue;
        const rect = svgEl("rect", { x: labelWidth + scale(start), y, width: Math.max(1, scale(size)),
          height: barHeight, class: `bar ${className}` });
        rect.appendChild(svgEl("title", {}, `${formatNumber(size)} profiles ${name}`));
        svg.appendChild(rect);
      }
    });
    // The numbers under the bars, each centred on its part.
    const numbersY = top + 2 * barHeight + rowGap + 24;
    const parts = [[0, onlyA, "only A"], [onlyA, spec.both, "both"], [onlyA + spec.both, onlyB, "only B"]];
    let lastEnd = -Infinity;
    for (const [start, size, name] of parts) {
      const text = `${formatNumber(size)} ${name}`;
      const cx = Math.max(labelWidth + scale(start + size / 2), lastEnd + text.length * 3.8 + 6);
      svg.appendChild(svgEl("text", { x: cx, y: numbersY, class: "bar-value overlap-value", "text-anchor": "middle" },
        text));
      lastEnd = cx + text.length * 3.8;
    }
    svg.appendChild(svgEl("text", { x: labelWidth, y: numbersY + 26, class: "axis-label overlap-summary" },
      `${formatNumber(union)} profiles in either; ${(jaccard * 100).toFixed(1)}% of them in both (Jaccard index).`));
    return svg;
  }

  window.OpensegCharts = { stackedBars, columns, line, sizeOverTime, overlap, formatNumber, niceTicks };
})();

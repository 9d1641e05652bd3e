// The Usage panel: figures, charts and recent requests over the chosen window.
import { $, $$, api, h, kpi, ms, num, pct, s, state, t, timeOf } from "./core.js"
import { renderModels } from "./models.js"

/** Stacked bars per bucket (succeeded, failed, other requests) with the p95 latency as a line on its own scale. */
export const requestsChart = (summary) => {
  const points = summary.series
  const total = points.reduce((sum, point) => sum + point.requests, 0)
  if (total === 0) return h("p", { class: "empty" }, t("noData"))
  const width = 720
  const height = 220
  const pad = { left: 40, right: 52, top: 10, bottom: 26 }
  const plotW = width - pad.left - pad.right
  const plotH = height - pad.top - pad.bottom
  const maxRequests = Math.max(1, ...points.map((point) => point.requests))
  const maxLatency = Math.max(1, ...points.map((point) => point.p95Ms ?? 0))
  const step = plotW / points.length
  const barW = Math.max(1, step * 0.75)
  const y = (value) => pad.top + plotH - (value / maxRequests) * plotH
  const yLatency = (value) => pad.top + plotH - (value / maxLatency) * plotH
  const label = (ts) =>
    new Date(ts).toLocaleString(
      state.lang === "zh" ? "zh-CN" : "en",
      summary.bucketMs >= 86_400_000 ? { month: "short", day: "numeric" } : { hour: "2-digit", minute: "2-digit" }
    )
  const bars = points.map((point, i) => {
    const x = pad.left + i * step + (step - barW) / 2
    const other = Math.max(0, point.requests - point.succeeded - point.failed)
    const segments = []
    let base = 0
    for (const [value, color] of [
      [point.succeeded, "var(--ok)"],
      [point.failed, "var(--bad)"],
      [other, "var(--muted)"]
    ]) {
      if (value > 0)
        segments.push(s("rect", { x, y: y(base + value), width: barW, height: y(base) - y(base + value), fill: color }))
      base += value
    }
    return s(
      "g",
      {},
      s(
        "title",
        {},
        `${label(point.t)}: ${point.requests} (${point.succeeded} ok, ${point.failed} failed), p95 ${ms(point.p95Ms)}`
      ),
      segments
    )
  })
  const line = points
    .map((point, i) => (point.p95Ms === null ? null : `${pad.left + i * step + step / 2},${yLatency(point.p95Ms)}`))
    .filter((value) => value !== null)
  const ticks = [0, Math.floor(points.length / 2), points.length - 1].map((i) =>
    s(
      "text",
      { x: pad.left + i * step + step / 2, y: height - 6, "text-anchor": "middle", "font-size": 11, fill: "var(--muted)" },
      label(points[i].t)
    )
  )
  return s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${t("kRequests")}: ${total}; p95 max ${ms(maxLatency)}` },
    s("line", { x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH, stroke: "var(--line)" }),
    s(
      "text",
      { x: pad.left - 6, y: pad.top + 10, "text-anchor": "end", "font-size": 11, fill: "var(--muted)" },
      String(maxRequests)
    ),
    s("text", { x: pad.left - 6, y: pad.top + plotH, "text-anchor": "end", "font-size": 11, fill: "var(--muted)" }, "0"),
    s("text", { x: width - pad.right + 6, y: pad.top + 10, "font-size": 11, fill: "var(--accent)" }, ms(maxLatency)),
    bars,
    line.length > 1
      ? s("polyline", { points: line.join(" "), fill: "none", stroke: "var(--accent)", "stroke-width": 2 })
      : line.map((point) => {
          const [cx, cy] = point.split(",")
          return s("circle", { cx, cy, r: 3, fill: "var(--accent)" })
        }),
    ticks
  )
}

// Widths are set through CSSOM: the page's CSP forbids inline style attributes.
export const fill = (tone, share) => {
  const element = h("span", { class: `fill ${tone}` })
  element.style.width = `${share * 100}%`
  return element
}

export const barList = (rows, tone) => {
  if (rows.length === 0) return null
  const max = Math.max(1, ...rows.map((row) => row.value))
  return h(
    "div",
    { class: "bars" },
    rows.map((row) =>
      h(
        "div",
        { class: "bar" },
        h("span", { class: "label", title: row.label }, row.label),
        h("span", { class: "track", "aria-hidden": "true" }, fill(tone, row.value / max)),
        h("span", { class: "value" }, num(row.value))
      )
    )
  )
}

export const renderUsage = () => {
  for (const button of $$("button.window")) button.setAttribute("aria-pressed", String(button.dataset.window === state.window))
  const summary = state.summary
  if (summary?.error) {
    $("#kpis").replaceChildren(h("p", { class: "needs-key" }, `${t("statsOff")}: ${summary.error}`))
    for (const id of ["#chart-requests", "#chart-errors", "#chart-models", "#window-models-body"]) $(id).replaceChildren()
  } else if (summary) {
    $("#kpis").replaceChildren(
      kpi(t("kRequests"), num(summary.requests)),
      kpi(t("kGenerations"), num(summary.generations)),
      kpi(t("kImages"), num(summary.images)),
      kpi(t("kSuccess"), pct(summary.successRate)),
      kpi(t("kP50"), ms(summary.latencyMs.p50)),
      kpi(t("kP95"), ms(summary.latencyMs.p95)),
      kpi(t("kAttempts"), num(summary.attempts))
    )
    $("#chart-requests").replaceChildren(requestsChart(summary))
    $("#chart-errors").replaceChildren(
      barList(
        summary.errors.map((row) => ({ label: row.error, value: row.count })),
        "bad"
      ) ?? h("p", { class: "empty" }, t("noErrors"))
    )
    $("#chart-models").replaceChildren(
      barList(
        summary.models.map((row) => ({ label: row.model, value: row.requests })),
        ""
      ) ?? h("p", { class: "empty" }, t("noData"))
    )
    $("#window-models-body").replaceChildren(
      ...summary.models.map((row) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, h("code", {}, row.model)),
          h("td", { class: "num" }, num(row.requests)),
          h("td", { class: "num" }, pct(row.successRate)),
          h("td", { class: "num" }, num(row.images)),
          h("td", { class: "num" }, ms(row.latencyMs.p50)),
          h("td", { class: "num" }, ms(row.latencyMs.p95))
        )
      )
    )
  }
  $("#recent-body").replaceChildren(
    ...state.recent.map((event) =>
      h(
        "tr",
        {},
        h("td", {}, timeOf(event.ts)),
        h("td", {}, event.key ?? "—"),
        h("td", {}, event.endpoint + (event.stream ? " (stream)" : "")),
        h("td", {}, event.model ?? "—"),
        h("td", { class: "num" }, event.error ? `${event.status} ${event.error}` : String(event.status)),
        h("td", { class: "num" }, ms(event.latencyMs)),
        h("td", { class: "num" }, String(event.attempts)),
        h(
          "td",
          { class: "num" },
          event.failedImages > 0 ? `${event.images}/${event.images + event.failedImages}` : String(event.images)
        ),
        h("td", {}, h("code", {}, event.requestId)),
        h("td", {}, event.prompt ?? "")
      )
    )
  )
}

export const loadUsage = async () => {
  const [summary, recent] = await Promise.allSettled([
    api(`/v1/gateway/stats?window=${state.window}`),
    api("/v1/gateway/requests?limit=50")
  ])
  state.summary = summary.status === "fulfilled" ? summary.value : { error: summary.reason.message }
  state.recent = recent.status === "fulfilled" ? recent.value.data : []
  if (state.window === "24h" && summary.status === "fulfilled") state.day = summary.value
  else state.day = await api("/v1/gateway/stats?window=24h").catch(() => state.day)
  renderUsage()
  renderModels()
}

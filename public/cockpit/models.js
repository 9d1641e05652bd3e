// The Models panel: the catalogue with the last 24 hours per model.
import { $, h, ms, num, pct, state } from "./core.js"

export const renderModels = () => {
  const status = state.status
  if (!status) return
  const usage = new Map((state.day?.models ?? []).map((model) => [model.model, model]))
  $("#models-body").replaceChildren(
    ...status.models.map((model) => {
      const stats = usage.get(model.id)
      return h(
        "tr",
        {},
        h("th", { scope: "row" }, h("code", {}, model.id)),
        h("td", {}, model.provider),
        h("td", {}, h("code", {}, model.upstreamModelId)),
        h("td", {}, [...model.aliases, ...model.fallbacks.map((id) => `→ ${id}`)].join(", ")),
        h("td", { class: "num" }, num(stats?.requests ?? 0)),
        h("td", { class: "num" }, pct(stats?.successRate ?? null)),
        h("td", { class: "num" }, ms(stats?.latencyMs.p50)),
        h("td", { class: "num" }, ms(stats?.latencyMs.p95))
      )
    })
  )
}

// The Keys panel: each key by name with its rights, limits, usage over the window and today's quota.
// An admin key sees every key (/v1/gateway/keys); a user key sees only itself (/v1/me).
import { $, $$, api, h, ms, num, state, t } from "./core.js"

const limitsText = (limits) => {
  const parts = []
  if (limits.rpm !== null) parts.push(t("perMinute", { n: num(limits.rpm) }))
  if (limits.imagesPerDay !== null) parts.push(t("perDay", { n: num(limits.imagesPerDay) }))
  return parts.length === 0 ? t("noLimits") : parts.join(" · ")
}

const todayText = (today) => {
  if (today.limit === null) return "—"
  return today.images === null ? `? / ${num(today.limit)}` : `${num(today.images)} / ${num(today.limit)}`
}

/** A quota's use as a bar, so a key near its limit stands out. */
const quotaCell = (today) => {
  const cell = h("td", { class: "num" }, todayText(today))
  if (today.limit !== null && today.images !== null) {
    const share = Math.min(1, today.images / today.limit)
    const bar = h("span", { class: `fill ${share >= 0.9 ? "bad" : ""}` })
    bar.style.width = `${share * 100}%`
    cell.append(h("span", { class: "track quota", "aria-hidden": "true" }, bar))
  }
  return cell
}

const keyRow = (key) => {
  const usage = key.usage
  return h(
    "tr",
    { "data-key": key.name },
    h("th", { scope: "row" }, key.name),
    h("td", {}, key.role),
    h("td", {}, key.models === null ? t("allModels") : key.models.join(", ")),
    h("td", { class: "num" }, usage ? num(usage.requests) : "—"),
    h("td", { class: "num" }, usage ? num(usage.images) : "—"),
    h("td", { class: "num" }, usage ? num(usage.errors) : "—"),
    h("td", { class: "num" }, usage ? ms(usage.latencyMs.p50) : "—"),
    h("td", { class: "num" }, usage ? ms(usage.latencyMs.p95) : "—"),
    quotaCell(key.today),
    h("td", {}, limitsText(key.limits))
  )
}

export const renderKeys = () => {
  // A user key chooses the window here (the Usage panel, where admins choose it, is not shown to it).
  for (const button of $$("button.window")) button.setAttribute("aria-pressed", String(button.dataset.window === state.window))
  $("#keys-window").textContent = t(`w${state.window}`)
  $("#keys-body").replaceChildren(...state.keys.map(keyRow))
}

/** Every key for an admin, the key itself for a user key. */
export const loadKeys = async () => {
  if (state.role === "admin") {
    state.keys = await api(`/v1/gateway/keys?window=${state.window}`)
      .then((answer) => answer.data)
      .catch(() => state.keys)
  } else if (state.role === "user") {
    state.keys = await api(`/v1/me?window=${state.window}`)
      .then((me) => [me])
      .catch(() => state.keys)
  }
  renderKeys()
}

// What every panel uses: the page's state, DOM and SVG builders, formatting, and the API client.
import { STRINGS } from "./strings.js"

export const $ = (selector) => document.querySelector(selector)
export const $$ = (selector) => [...document.querySelectorAll(selector)]

export const state = {
  lang: "en",
  key: "",
  /** What the key may see: "admin" (every panel), "user" (its own key, the playground), or null before a key works. */
  role: null,
  /** Keys and their usage (admin), or the user key's own report. */
  keys: [],
  /** The models a user key may use (`/v1/models` with that key). */
  userModels: [],
  window: "24h",
  status: null,
  day: null,
  summary: null,
  recent: [],
  health: null,
  /** The example the playground's prompt was filled with (replaced when the language changes, if untouched). */
  examplePrompt: ""
}

export const t = (name, values = {}) => {
  const text = STRINGS[state.lang][name] ?? STRINGS.en[name] ?? name
  return text.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""))
}

/** Builds an element; text is always set as text, never parsed as HTML (prompts and error messages are user data). */
export const h = (tag, attributes = {}, ...children) => {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value)
    else element.setAttribute(name, value === true ? "" : String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    element.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return element
}

export const SVG = "http://www.w3.org/2000/svg"
export const s = (tag, attributes = {}, ...children) => {
  const element = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value))
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue
    element.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return element
}

export const ms = (value) =>
  value === null || value === undefined ? "—" : value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${value} ms`
export const pct = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(value === 1 ? 0 : 1)}%`)
export const num = (value) => new Intl.NumberFormat(state.lang === "zh" ? "zh-CN" : "en").format(value ?? 0)
export const timeOf = (ts) =>
  new Date(ts).toLocaleString(state.lang === "zh" ? "zh-CN" : "en", {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit"
  })
export const ago = (ts) => {
  const seconds = Math.max(0, Math.round((Date.now() - ts) / 1000))
  const [value, unit] =
    seconds < 90 ? [seconds, "s"] : seconds < 5400 ? [Math.round(seconds / 60), "min"] : [Math.round(seconds / 3600), "h"]
  if (state.lang === "zh") return `${value} ${{ s: "秒", min: "分钟", h: "小时" }[unit]}前`
  return `${value} ${unit} ago`
}

// ---------------------------------------------------------------- API calls

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`)
    this.status = status
    this.body = body
  }
}

export const api = async (path, init = {}) => {
  const headers = new Headers(init.headers)
  if (state.key) headers.set("authorization", `Bearer ${state.key}`)
  if (init.body !== undefined) headers.set("content-type", "application/json")
  const response = await fetch(path, { ...init, headers })
  const text = await response.text()
  let body = null
  try {
    body = text === "" ? null : JSON.parse(text)
  } catch {
    body = { error: { message: text.slice(0, 500) } }
  }
  if (!response.ok) throw new ApiError(response.status, body)
  return body
}

// ---------------------------------------------------------------- key handling

export const KEY_NAME = "ai-image-gateway.key"
export const REFRESH_MS = 30_000
export const LANG_NAME = "ai-image-gateway.lang"

export const loadKey = () => sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME) ?? ""
export const saveKey = (key, remember) => {
  sessionStorage.setItem(KEY_NAME, key)
  if (remember) localStorage.setItem(KEY_NAME, key)
  else localStorage.removeItem(KEY_NAME)
}
export const forgetKey = () => {
  sessionStorage.removeItem(KEY_NAME)
  localStorage.removeItem(KEY_NAME)
}

export const notice = (message, kind = "error") => {
  const element = $("#notice")
  element.textContent = message ?? ""
  element.className = kind === "info" ? "notice info" : "notice"
  element.hidden = !message
}

/** Shows what the key's role may see: `.keyed` for admins, `.any-key` for every working key, `.admin-panel` sections hidden from user keys. */
export const setKeyed = (role) => {
  state.role = role
  for (const element of $$(".keyed")) element.hidden = role !== "admin"
  for (const element of $$(".any-key")) element.hidden = role === null
  for (const element of $$(".needs-key")) element.hidden = role !== null
  for (const element of $$(".admin-panel")) element.hidden = role === "user"
  for (const element of $$(".user-view")) element.hidden = role !== "user"
}

export const copyButton = (getText) =>
  h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: async (event) => {
        const button = event.currentTarget
        try {
          await navigator.clipboard.writeText(getText())
          button.textContent = t("copied")
        } catch {
          button.textContent = "×"
        }
        setTimeout(() => (button.textContent = t("copy")), 1500)
      }
    },
    t("copy")
  )

export const describeError = (error) => {
  if (!(error instanceof ApiError)) return `${t("requestFailed")}: ${error.message}`
  if (error.status === 401) return `${t("keyRejected")} (401): ${error.message}`
  if (error.body?.error?.code === "api_keys_not_configured") return `${t("keysNotConfigured")}: ${error.message}`
  return `${t("requestFailed")} (${error.status}): ${error.message}`
}

export const kpi = (label, value) => h("div", { class: "kpi" }, h("b", {}, value), h("span", {}, label))

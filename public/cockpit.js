// The status cockpit. Plain DOM and SVG, no build step: everything it shows
// comes from the gateway's own API, called with the key the operator types.
// The key lives in sessionStorage (or localStorage when "remember" is ticked)
// and is never written into the page.
//
// One module per panel under cockpit/, the translations in cockpit/strings.js; this one connects
// them: language, the key, and loading.

import { renderSnippets } from "./cockpit/clients.js"
import {
  $,
  $$,
  api,
  describeError,
  forgetKey,
  h,
  KEY_NAME,
  LANG_NAME,
  loadKey,
  notice,
  REFRESH_MS,
  saveKey,
  setKeyed,
  state,
  t
} from "./cockpit/core.js"
import { loadKeys, renderKeys } from "./cockpit/keys.js"
import { renderModels } from "./cockpit/models.js"
import { play } from "./cockpit/playground.js"
import { loadHealth, probe, renderHealth, renderStatus } from "./cockpit/status.js"
import { loadUsage, renderUsage } from "./cockpit/usage.js"

// ---------------------------------------------------------------- language

const applyLanguage = (lang) => {
  state.lang = lang
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en"
  for (const element of $$("[data-i18n]")) element.textContent = t(element.dataset.i18n)
  // An example prompt, so a first Generate works with no typing; a prompt the user wrote is left alone.
  const prompt = $("#play-prompt")
  if (prompt.value === "" || prompt.value === state.examplePrompt) prompt.value = state.examplePrompt = t("examplePrompt")
  for (const button of $$("[data-lang]")) button.setAttribute("aria-pressed", String(button.dataset.lang === lang))
  renderAll()
}

const renderAll = () => {
  renderHealth()
  renderStatus()
  renderModels()
  renderUsage()
  renderKeys()
  renderSnippets()
}

/** A user key: its own report and the models it may use, for the Keys panel and the playground. */
const connectAsUser = async () => {
  setKeyed("user")
  const models = await api("/v1/models").catch(() => ({ data: [] }))
  state.userModels = models.data.map((model) => model.id)
  const select = $("#play-model")
  const previous = select.value
  select.replaceChildren(...models.data.map((model) => h("option", { value: model.id }, model.id)))
  if (models.data.some((model) => model.id === previous)) select.value = previous
  renderKeys()
  renderSnippets()
}

const connect = async () => {
  if (!state.key) {
    setKeyed(null)
    return
  }
  try {
    // Any key may read itself: its role says which panels it may see.
    const me = await api(`/v1/me?window=${state.window}`)
    notice(null)
    if (me.role !== "admin") {
      state.status = null
      state.keys = [me]
      await connectAsUser()
      return
    }
    state.status = await api("/v1/gateway/status")
    setKeyed("admin")
    renderHealth()
    renderStatus()
    renderModels()
    renderSnippets()
    await Promise.all([loadUsage(), loadKeys()])
  } catch (error) {
    state.status = null
    setKeyed(null)
    notice(describeError(error))
  }
}

/** Status (upstream health) and statistics again, after the page itself made a request. */
const refresh = async () => {
  if (state.role === "user") return loadKeys()
  state.status = await api("/v1/gateway/status").catch(() => state.status)
  renderStatus()
  await Promise.all([loadUsage(), loadKeys()])
}

// ---------------------------------------------------------------- start

const start = () => {
  const stored = localStorage.getItem(LANG_NAME)
  const preferred = stored ?? ((navigator.languages ?? [navigator.language]).some((lang) => /^zh\b/i.test(lang)) ? "zh" : "en")
  state.key = loadKey()
  $("#remember").checked = localStorage.getItem(KEY_NAME) !== null
  applyLanguage(preferred)
  setKeyed(null)

  for (const button of $$("[data-lang]")) {
    button.addEventListener("click", () => {
      localStorage.setItem(LANG_NAME, button.dataset.lang)
      applyLanguage(button.dataset.lang)
    })
  }
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault()
    const key = $("#api-key").value.trim()
    if (!key) return
    state.key = key
    saveKey(key, $("#remember").checked)
    $("#api-key").value = ""
    connect()
  })
  $("#forget").addEventListener("click", () => {
    forgetKey()
    state.key = ""
    state.status = null
    state.keys = []
    state.userModels = []
    setKeyed(null)
    notice(null)
    renderAll()
  })
  for (const button of $$("button.window")) {
    button.addEventListener("click", () => {
      state.window = button.dataset.window
      if (state.role === "admin") loadUsage()
      loadKeys()
    })
  }
  $("#refresh").addEventListener("click", () => connect())
  // After the page's own request, status and statistics again.
  $("#probe-form").addEventListener("submit", (event) => probe(event).then(refresh))
  $("#play-form").addEventListener("submit", (event) => play(event).then(refresh))

  loadHealth()
  connect()
  // Keeps the panels current while the page is open and visible; the cockpit's reads are not recorded as usage.
  setInterval(() => {
    if (state.role !== null && document.visibilityState === "visible") refresh()
  }, REFRESH_MS)
}

start()

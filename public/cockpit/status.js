// The Status panel: health, upstreams with their circuits, the probe, and the configuration.
import { $, ago, api, describeError, h, ms, num, pct, state, t } from "./core.js"

export const renderHealth = () => {
  const pill = $("#health")
  const facts = $("#status-public")
  facts.replaceChildren()
  if (state.health === null) {
    pill.textContent = "…"
    return
  }
  if (state.health === false) {
    pill.textContent = t("healthDown")
    pill.className = "pill bad"
    return
  }
  pill.textContent = `${t("healthOk")} · v${state.health.version}`
  pill.className = "pill ok"
  facts.append(
    h("div", {}, h("span", { class: "name" }, t("version")), state.health.version),
    h("div", {}, h("span", { class: "name" }, t("models")), state.health.models)
  )
  // `npm start` serves on localhost, the only place the development key works; a deployed gateway never says its environment.
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname) || location.hostname.endsWith(".localhost")
  if (local && !state.key) facts.append(h("div", {}, t("devKeyHint")))
}

export const circuitText = (circuit) =>
  circuit.state === "open"
    ? `${t("circuitOpen")} ${ms(circuit.retryAfterMs)}`
    : circuit.state === "half-open"
      ? t("circuitHalfOpen")
      : circuit.failures > 0
        ? `${t("circuitClosed")} (${circuit.failures})`
        : t("circuitClosed")

export const upstreamCard = (upstream) => {
  const health = upstream.health
  const hour = health?.lastHour
  const last = health?.last
  const tone = !last ? "" : last.status < 400 ? "ok" : "bad"
  return h(
    "article",
    { class: "card" },
    h(
      "h3",
      {},
      h("span", {}, h("span", { class: `dot ${tone}`, "aria-hidden": "true" }), upstream.id),
      h("small", {}, `${t("models")}: ${upstream.models}`)
    ),
    h(
      "p",
      {},
      `${t("kind")}: `,
      h("code", {}, upstream.kind),
      upstream.baseUrl ? " · " : "",
      upstream.baseUrl ? h("code", {}, upstream.baseUrl) : null
    ),
    h(
      "p",
      { class: `circuit ${upstream.circuit.state}` },
      `${t("circuit")} (${t("circuitNote")}): ${circuitText(upstream.circuit)}`
    ),
    hour && hour.requests > 0
      ? h(
          "p",
          {},
          `${t("lastHour")}: ${num(hour.requests)} · ${pct(hour.successRate)} · p50 ${ms(hour.latencyMs.p50)} · p95 ${ms(hour.latencyMs.p95)}`
        )
      : h("p", {}, `${t("lastHour")}: ${t("noRequests")}`),
    last
      ? h(
          "p",
          {},
          `${t("lastRequest")}: ${last.status}${last.error ? ` ${last.error}` : ""} · ${ms(last.latencyMs)} · ${last.model ?? ""} · ${ago(last.ts)}`
        )
      : null
  )
}

export const renderStatus = () => {
  const status = state.status
  if (!status) return
  $("#upstreams").replaceChildren(...status.upstreams.map(upstreamCard))
  if (status.statsError) $("#upstreams").append(h("p", { class: "needs-key" }, `${t("statsOff")}: ${status.statsError}`))
  const c = status.config
  const onOff = (value) => (value ? t("on") : t("off"))
  const rows = [
    [t("cfgDefaultModel"), c.defaultModel],
    [t("cfgRetry"), t("cfgRetryValue", { n: c.retry.maxAttempts, base: c.retry.backoffMs, cap: c.retry.backoffMaxMs })],
    [t("cfgTimeout"), ms(c.upstreamTimeoutMs)],
    [t("cfgConcurrency"), c.maxConcurrentUpstream],
    [t("cfgCircuit"), `${c.circuit.failures} × · ${ms(c.circuit.cooldownMs)}`],
    [t("cfgHosted"), c.hostedImages.enabled ? `${t("on")} · ${c.hostedImages.ttlHours} ${t("hours")}` : t("off")],
    [t("cfgCache"), c.cache.enabled ? `${t("on")} · ${c.cache.ttlSeconds} s` : t("off")],
    [t("cfgStats"), onOff(c.usageStats)],
    [t("cfgCors"), c.corsOrigins.join(", ") || t("none")],
    [t("cfgKeepAlive"), ms(c.keepAliveMs)],
    [t("cfgPrompts"), onOff(c.logPrompts)],
    [t("cfgLocal"), onOff(c.localModel)],
    [t("cfgBody"), `${num(c.maxBodyBytes)} B`],
    [
      t("cfgKeys"),
      t("cfgKeysValue", {
        api: c.keys.apiKeys,
        named: c.keys.named,
        limited: c.keys.limited,
        fail: c.keys.limitsFailOpen ? t("failOpen") : t("failClosed")
      })
    ]
  ]
  $("#config").replaceChildren(...rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))]))
  const fill = (select) => {
    const previous = select.value
    select.replaceChildren(...status.models.map((model) => h("option", { value: model.id }, model.id)))
    select.value = status.models.some((model) => model.id === previous) ? previous : c.defaultModel
  }
  fill($("#probe-model"))
  fill($("#play-model"))
}

export const loadHealth = async () => {
  try {
    state.health = await api("/health")
  } catch {
    state.health = false
  }
  renderHealth()
}

export const probe = async (event) => {
  event.preventDefault()
  const button = event.submitter ?? $("#probe-form button")
  const output = $("#probe-result")
  button.disabled = true
  output.textContent = t("probing")
  try {
    const result = await api("/v1/gateway/probe", { method: "POST", body: JSON.stringify({ model: $("#probe-model").value }) })
    output.textContent = result.ok
      ? t("probeOk", { ms: result.latencyMs, attempts: result.attempts, format: result.outputFormat })
      : t("probeFailed", { ms: result.latencyMs, message: `${result.error.status} ${result.error.message}` })
    output.className = result.ok ? "ok" : "bad"
  } catch (error) {
    output.textContent = describeError(error)
  } finally {
    button.disabled = false
  }
}

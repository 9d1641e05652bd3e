// The status cockpit. Plain DOM and SVG, no build step: everything it shows
// comes from the gateway's own API, called with the key the operator types.
// The key lives in sessionStorage (or localStorage when "remember" is ticked)
// and is never written into the page.

const STRINGS = {
  en: {
    skip: "Skip to content",
    apiKey: "API key",
    remember: "Remember on this device",
    connect: "Connect",
    forget: "Forget",
    navStatus: "Status",
    navModels: "Models",
    navUsage: "Usage",
    navPlayground: "Playground",
    navClients: "Client set-up",
    navDocs: "API docs",
    statusTitle: "Status",
    needsKey: "Enter an API key above to see this panel.",
    probeModel: "Probe model",
    probeNow: "Probe now",
    probing: "Probing…",
    configTitle: "Configuration",
    modelsTitle: "Models",
    modelsCaption: "The catalogue, with the last 24 hours of requests per model",
    colModel: "Model",
    colProvider: "Provider",
    colUpstreamId: "Upstream id",
    colAliases: "Aliases, → fallbacks",
    colRequests: "Requests",
    colSuccess: "Success",
    usageTitle: "Usage statistics",
    window: "Time window",
    w1h: "Last hour",
    w24h: "24 hours",
    w7d: "7 days",
    w30d: "30 days",
    refresh: "Refresh",
    chartRequests: "Requests over time (succeeded, failed, other) and p95 latency",
    chartErrors: "Errors by type",
    chartModels: "Requests per model",
    perModelTitle: "Per model in this window",
    recentTitle: "Recent requests",
    colTime: "Time",
    colEndpoint: "Endpoint",
    colStatus: "Status",
    colLatency: "Latency",
    colAttempts: "Attempts",
    colImages: "Images",
    colRequestId: "Request id",
    colPrompt: "Prompt",
    playgroundTitle: "Playground",
    prompt: "Prompt",
    examplePrompt: "a lighthouse on a cliff at dusk, watercolour",
    model: "Model",
    size: "Size",
    format: "Response format",
    stream: "Stream",
    generate: "Generate",
    editImage: "Image to edit (optional)",
    editMask: "Mask (optional, PNG)",
    generating: "Generating…",
    clientsTitle: "Client set-up",
    clientsIntro: "Replace YOUR_API_KEY with one of this gateway's keys.",
    copy: "Copy",
    copied: "Copied",
    download: "Download",
    healthOk: "running",
    healthDown: "unreachable",
    version: "Version",
    environment: "Environment",
    models: "Models",
    devKeyHint: "Local development: use the development key from the README.",
    keyRejected: "The key was rejected",
    keysNotConfigured: "This gateway has no API keys configured",
    requestFailed: "Request failed",
    lastHour: "last hour",
    noRequests: "no generations yet",
    lastRequest: "last",
    noData: "No requests in this window yet.",
    noErrors: "No errors in this window.",
    kRequests: "Requests",
    kGenerations: "Generations",
    kImages: "Images",
    kSuccess: "Success rate",
    kP50: "p50 latency",
    kP95: "p95 latency",
    kAttempts: "Upstream attempts",
    statsOff: "Statistics unavailable",
    kind: "Kind",
    circuit: "Circuit",
    circuitClosed: "closed",
    circuitOpen: "open: no calls for",
    circuitHalfOpen: "half-open: one trial call",
    circuitNote: "per isolate",
    cfgCircuit: "Circuit breaker",
    fallbacks: "Fallbacks",
    latency: "latency",
    attempts: "attempts",
    requestId: "request id",
    imageAlt: "Generated image {n} for: {prompt}",
    probeOk: "OK in {ms} ms, {attempts} attempt(s), {format}",
    probeFailed: "Failed after {ms} ms: {message}",
    cfgDefaultModel: "Default model",
    cfgRetry: "Retries",
    cfgRetryValue: "up to {n} attempts, backoff {base} ms (cap {cap} ms), jittered",
    cfgTimeout: "Upstream timeout",
    cfgConcurrency: "Concurrent upstream calls",
    cfgHosted: "Hosted image URLs (R2)",
    cfgCache: "Cache",
    cfgStats: "Usage statistics",
    cfgCors: "CORS origins",
    cfgKeepAlive: "Stream keep-alive",
    cfgPrompts: "Prompts in statistics",
    cfgLocal: "Offline model local/preview",
    cfgBody: "Request body limit",
    on: "on",
    off: "off",
    hours: "h",
    none: "none",
    snippetCurl: "cURL",
    snippetPython: "Python (openai)",
    snippetNode: "Node (openai)",
    snippetAiSdk: "Vercel AI SDK",
    snippetLobe: "LobeChat",
    snippetNext: "NextChat",
    snippetOpenWebUI: "Open WebUI",
    lobeText:
      "Settings → Language Model → OpenAI: API Key = YOUR_API_KEY, API proxy address = {base}. Add image models to the model list; each chat reply is an image.",
    openWebUIText:
      "Admin → Settings → Connections → OpenAI: URL {base}, key YOUR_API_KEY. For the image button: Admin → Settings → Images → engine OpenAI, same URL and key, model {model}."
  },
  zh: {
    skip: "跳到正文",
    apiKey: "API 密钥",
    remember: "在此设备上记住",
    connect: "连接",
    forget: "清除",
    navStatus: "状态",
    navModels: "模型",
    navUsage: "用量",
    navPlayground: "试用",
    navClients: "客户端配置",
    navDocs: "API 文档",
    statusTitle: "状态",
    needsKey: "请先在上方输入 API 密钥以查看此面板。",
    probeModel: "探测模型",
    probeNow: "立即探测",
    probing: "探测中…",
    configTitle: "配置",
    modelsTitle: "模型",
    modelsCaption: "模型目录及每个模型最近 24 小时的请求",
    colModel: "模型",
    colProvider: "提供方",
    colUpstreamId: "上游模型 ID",
    colAliases: "别名、→ 回退模型",
    colRequests: "请求数",
    colSuccess: "成功率",
    usageTitle: "用量统计",
    window: "时间范围",
    w1h: "最近 1 小时",
    w24h: "24 小时",
    w7d: "7 天",
    w30d: "30 天",
    refresh: "刷新",
    chartRequests: "请求随时间变化（成功、失败、其他）及 p95 延迟",
    chartErrors: "按类型的错误",
    chartModels: "各模型请求数",
    perModelTitle: "此时间段内各模型",
    recentTitle: "最近请求",
    colTime: "时间",
    colEndpoint: "端点",
    colStatus: "状态码",
    colLatency: "延迟",
    colAttempts: "尝试次数",
    colImages: "图片",
    colRequestId: "请求 ID",
    colPrompt: "提示词",
    playgroundTitle: "试用",
    prompt: "提示词",
    examplePrompt: "黄昏时分悬崖上的灯塔，水彩画",
    model: "模型",
    size: "尺寸",
    format: "返回格式",
    stream: "流式",
    generate: "生成",
    editImage: "要编辑的图片(可选)",
    editMask: "蒙版(可选,PNG)",
    generating: "生成中…",
    clientsTitle: "客户端配置",
    clientsIntro: "将 YOUR_API_KEY 替换为本网关的任一密钥。",
    copy: "复制",
    copied: "已复制",
    download: "下载",
    healthOk: "运行中",
    healthDown: "无法访问",
    version: "版本",
    environment: "环境",
    models: "模型数",
    devKeyHint: "本地开发：请使用 README 中的开发密钥。",
    keyRejected: "密钥被拒绝",
    keysNotConfigured: "此网关尚未配置 API 密钥",
    requestFailed: "请求失败",
    lastHour: "最近 1 小时",
    noRequests: "暂无生成请求",
    lastRequest: "最近一次",
    noData: "此时间段内暂无请求。",
    noErrors: "此时间段内没有错误。",
    kRequests: "请求数",
    kGenerations: "生成请求",
    kImages: "图片数",
    kSuccess: "成功率",
    kP50: "p50 延迟",
    kP95: "p95 延迟",
    kAttempts: "上游尝试次数",
    statsOff: "统计不可用",
    kind: "类型",
    circuit: "熔断器",
    circuitClosed: "闭合",
    circuitOpen: "断开：暂停调用",
    circuitHalfOpen: "半开：放行一次试探调用",
    circuitNote: "每个 isolate 各自计数",
    cfgCircuit: "熔断器",
    fallbacks: "回退模型",
    latency: "延迟",
    attempts: "尝试",
    requestId: "请求 ID",
    imageAlt: "为“{prompt}”生成的第 {n} 张图片",
    probeOk: "成功，用时 {ms} 毫秒，尝试 {attempts} 次，格式 {format}",
    probeFailed: "失败，用时 {ms} 毫秒：{message}",
    cfgDefaultModel: "默认模型",
    cfgRetry: "重试",
    cfgRetryValue: "最多 {n} 次尝试，退避 {base} 毫秒（上限 {cap} 毫秒），带抖动",
    cfgTimeout: "上游超时",
    cfgConcurrency: "上游并发数",
    cfgHosted: "托管图片链接（R2）",
    cfgCache: "缓存",
    cfgStats: "用量统计",
    cfgCors: "CORS 来源",
    cfgKeepAlive: "流式保活间隔",
    cfgPrompts: "统计中记录提示词",
    cfgLocal: "离线模型 local/preview",
    cfgBody: "请求体上限",
    on: "开",
    off: "关",
    hours: "小时",
    none: "无",
    snippetCurl: "cURL",
    snippetPython: "Python（openai）",
    snippetNode: "Node（openai）",
    snippetAiSdk: "Vercel AI SDK",
    snippetLobe: "LobeChat",
    snippetNext: "NextChat",
    snippetOpenWebUI: "Open WebUI",
    lobeText:
      "设置 → 语言模型 → OpenAI：API Key = YOUR_API_KEY，API 代理地址 = {base}。把图片模型加入模型列表，每条聊天回复就是图片。",
    openWebUIText:
      "管理员 → 设置 → 外部连接 → OpenAI：URL {base}，密钥 YOUR_API_KEY。图片按钮：管理员 → 设置 → 图像 → 引擎 OpenAI，同一 URL 和密钥，模型 {model}。"
  }
}

const $ = (selector) => document.querySelector(selector)
const $$ = (selector) => [...document.querySelectorAll(selector)]

const state = {
  lang: "en",
  key: "",
  window: "24h",
  status: null,
  day: null,
  summary: null,
  recent: [],
  health: null,
  /** The example the playground's prompt was filled with (replaced when the language changes, if untouched). */
  examplePrompt: ""
}

const t = (name, values = {}) => {
  const text = STRINGS[state.lang][name] ?? STRINGS.en[name] ?? name
  return text.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""))
}

/** Builds an element; text is always set as text, never parsed as HTML (prompts and error messages are user data). */
const h = (tag, attributes = {}, ...children) => {
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

const SVG = "http://www.w3.org/2000/svg"
const s = (tag, attributes = {}, ...children) => {
  const element = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value))
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue
    element.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return element
}

const ms = (value) =>
  value === null || value === undefined ? "—" : value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${value} ms`
const pct = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(value === 1 ? 0 : 1)}%`)
const num = (value) => new Intl.NumberFormat(state.lang === "zh" ? "zh-CN" : "en").format(value ?? 0)
const timeOf = (ts) =>
  new Date(ts).toLocaleString(state.lang === "zh" ? "zh-CN" : "en", {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit"
  })
const ago = (ts) => {
  const seconds = Math.max(0, Math.round((Date.now() - ts) / 1000))
  const [value, unit] =
    seconds < 90 ? [seconds, "s"] : seconds < 5400 ? [Math.round(seconds / 60), "min"] : [Math.round(seconds / 3600), "h"]
  if (state.lang === "zh") return `${value} ${{ s: "秒", min: "分钟", h: "小时" }[unit]}前`
  return `${value} ${unit} ago`
}

// ---------------------------------------------------------------- API calls

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`)
    this.status = status
    this.body = body
  }
}

const api = async (path, init = {}) => {
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

const KEY_NAME = "ai-image-gateway.key"
const REFRESH_MS = 30_000
const LANG_NAME = "ai-image-gateway.lang"

const loadKey = () => sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME) ?? ""
const saveKey = (key, remember) => {
  sessionStorage.setItem(KEY_NAME, key)
  if (remember) localStorage.setItem(KEY_NAME, key)
  else localStorage.removeItem(KEY_NAME)
}
const forgetKey = () => {
  sessionStorage.removeItem(KEY_NAME)
  localStorage.removeItem(KEY_NAME)
}

const notice = (message, kind = "error") => {
  const element = $("#notice")
  element.textContent = message ?? ""
  element.className = kind === "info" ? "notice info" : "notice"
  element.hidden = !message
}

const setKeyed = (on) => {
  for (const element of $$(".keyed")) element.hidden = !on
  for (const element of $$(".needs-key")) element.hidden = on
}

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

// ---------------------------------------------------------------- rendering

const renderHealth = () => {
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

const circuitText = (circuit) =>
  circuit.state === "open"
    ? `${t("circuitOpen")} ${ms(circuit.retryAfterMs)}`
    : circuit.state === "half-open"
      ? t("circuitHalfOpen")
      : circuit.failures > 0
        ? `${t("circuitClosed")} (${circuit.failures})`
        : t("circuitClosed")

const upstreamCard = (upstream) => {
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

const renderStatus = () => {
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
    [t("cfgBody"), `${num(c.maxBodyBytes)} B`]
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

const renderModels = () => {
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

const kpi = (label, value) => h("div", { class: "kpi" }, h("b", {}, value), h("span", {}, label))

/** Stacked bars per bucket (succeeded, failed, other requests) with the p95 latency as a line on its own scale. */
const requestsChart = (summary) => {
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
const fill = (tone, share) => {
  const element = h("span", { class: `fill ${tone}` })
  element.style.width = `${share * 100}%`
  return element
}

const barList = (rows, tone) => {
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

const renderUsage = () => {
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

/** `editor`: a model that edits images, when this gateway has one: the snippets then show an edit too. */
const snippetsFor = (origin, model, editor) => {
  const base = `${origin}/v1`
  const pythonEdit = editor
    ? `\n\nedited = client.images.edit(model="${editor}", prompt="make it night", image=open("fox.png", "rb"))\nopen("night.png", "wb").write(base64.b64decode(edited.data[0].b64_json))`
    : ""
  const nodeEdit = editor
    ? `\nawait writeFile("fox.png", Buffer.from(result.data[0].b64_json, "base64"))\n\nconst edited = await client.images.edit({ model: "${editor}", prompt: "make it night", image: new File([await readFile("fox.png")], "fox.png", { type: "image/png" }) })\nconsole.log(edited.data[0].b64_json.length)`
    : ""
  return [
    [
      "snippetCurl",
      `curl ${base}/images/generations \\\n  -H "Authorization: Bearer YOUR_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '{"model": "${model}", "prompt": "a red fox in snow", "n": 1, "size": "1024x1024"}'`
    ],
    [
      "snippetPython",
      `from openai import OpenAI\nimport base64\n\nclient = OpenAI(base_url="${base}", api_key="YOUR_API_KEY")\nresult = client.images.generate(model="${model}", prompt="a red fox in snow")\nopen("fox.png", "wb").write(base64.b64decode(result.data[0].b64_json))${pythonEdit}`
    ],
    [
      "snippetNode",
      `import OpenAI from "openai"\n${editor ? 'import { readFile, writeFile } from "node:fs/promises"\n' : ""}\nconst client = new OpenAI({ baseURL: "${base}", apiKey: "YOUR_API_KEY" })\nconst result = await client.images.generate({ model: "${model}", prompt: "a red fox in snow" })\nconsole.log(result.data[0].b64_json.length)${nodeEdit}`
    ],
    [
      "snippetAiSdk",
      `import { createOpenAICompatible } from "@ai-sdk/openai-compatible"\nimport { streamText } from "ai"\n\nconst gateway = createOpenAICompatible({ name: "gateway", baseURL: "${base}", apiKey: "YOUR_API_KEY" })\nconst result = streamText({ model: gateway.chatModel("${model}"), prompt: "a red fox in snow" })\nfor await (const text of result.textStream) process.stdout.write(text)`
    ],
    ["snippetLobe", t("lobeText", { base })],
    ["snippetNext", `BASE_URL=${origin}\nOPENAI_API_KEY=YOUR_API_KEY\nCUSTOM_MODELS=+${model},+dall-e-3`],
    ["snippetOpenWebUI", t("openWebUIText", { base, model })]
  ]
}

const copyButton = (getText) =>
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

/** Set-up steps written as sentences wrap; code keeps its lines. */
const PROSE = new Set(["snippetLobe", "snippetOpenWebUI"])

const renderSnippets = () => {
  const model = state.status?.config.defaultModel ?? "replicate/flux-schnell"
  const editor = state.status?.models.find((entry) => entry.edits)?.id
  $("#snippets").replaceChildren(
    ...snippetsFor(location.origin, model, editor).map(([name, text]) =>
      h(
        "div",
        { class: "snippet" },
        h(
          "h3",
          {},
          t(name),
          copyButton(() => text)
        ),
        h("pre", { class: PROSE.has(name) ? "prose" : undefined }, h("code", {}, text))
      )
    )
  )
}

const renderAll = () => {
  renderHealth()
  renderStatus()
  renderModels()
  renderUsage()
  renderSnippets()
}

// ---------------------------------------------------------------- loading

const loadHealth = async () => {
  try {
    state.health = await api("/health")
  } catch {
    state.health = false
  }
  renderHealth()
}

const describeError = (error) => {
  if (!(error instanceof ApiError)) return `${t("requestFailed")}: ${error.message}`
  if (error.status === 401) return `${t("keyRejected")} (401): ${error.message}`
  if (error.body?.error?.code === "api_keys_not_configured") return `${t("keysNotConfigured")}: ${error.message}`
  return `${t("requestFailed")} (${error.status}): ${error.message}`
}

const loadUsage = async () => {
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

const connect = async () => {
  if (!state.key) {
    setKeyed(false)
    return
  }
  try {
    state.status = await api("/v1/gateway/status")
    notice(null)
    setKeyed(true)
    renderHealth()
    renderStatus()
    renderModels()
    renderSnippets()
    await loadUsage()
  } catch (error) {
    state.status = null
    setKeyed(false)
    notice(describeError(error))
  }
}

// ---------------------------------------------------------------- probe and playground

const probe = async (event) => {
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
    await refresh()
  } catch (error) {
    output.textContent = describeError(error)
  } finally {
    button.disabled = false
  }
}

const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" }

const imageFigure = (src, index, prompt, format) => {
  const extension = format === "jpeg" ? "jpg" : (format ?? "png")
  return h(
    "figure",
    {},
    h("img", { src, alt: t("imageAlt", { n: index + 1, prompt }), loading: "lazy" }),
    h(
      "figcaption",
      {},
      h("a", { href: src, download: `image-${index + 1}.${extension}` }, t("download")),
      copyButton(() => (src.startsWith("data:") ? src : new URL(src, location.href).href))
    )
  )
}

/** Reads `image_generation.completed` / `error` events from an SSE body as they arrive. */
const readEvents = async (response, onEvent) => {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ""
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    buffer += value
    let end = buffer.indexOf("\n\n")
    while (end !== -1) {
      const frame = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const name = /^event: (.*)$/m.exec(frame)?.[1]
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n")
      if (name && data) onEvent(name, JSON.parse(data))
      end = buffer.indexOf("\n\n")
    }
  }
}

/** The recorded event of a request, for its attempt count; written just after the response, so it is polled briefly. */
const recordedEvent = async (requestId) => {
  for (let i = 0; i < 15 && requestId; i++) {
    const recent = await api("/v1/gateway/requests?limit=20").catch(() => null)
    const found = recent?.data.find((event) => event.requestId === requestId)
    if (found) return found
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return null
}

const play = async (event) => {
  event.preventDefault()
  const button = $("#play-go")
  const meta = $("#play-meta")
  const errorBox = $("#play-error")
  const images = $("#play-images")
  const prompt = $("#play-prompt").value
  const body = {
    prompt,
    model: $("#play-model").value,
    n: Number($("#play-n").value),
    size: $("#play-size").value,
    response_format: $("#play-format").value,
    stream: $("#play-stream").checked
  }
  // An image attached makes the request an edit of it (multipart, as the SDKs send it; edits are not streamed).
  const image = $("#play-image").files?.[0]
  const mask = $("#play-mask").files?.[0]
  let request
  if (image) {
    body.stream = false
    const form = new FormData()
    for (const [name, value] of Object.entries(body)) if (name !== "stream") form.append(name, String(value))
    form.append("image", image)
    if (mask) form.append("mask", mask)
    request = { url: "/v1/images/edits", headers: { authorization: `Bearer ${state.key}` }, body: form }
  } else {
    request = {
      url: "/v1/images/generations",
      headers: { authorization: `Bearer ${state.key}`, "content-type": "application/json" },
      body: JSON.stringify(body)
    }
  }
  button.disabled = true
  button.textContent = t("generating")
  errorBox.hidden = true
  images.replaceChildren()
  meta.textContent = ""
  const started = performance.now()
  let requestId = null
  try {
    const response = await fetch(request.url, { method: "POST", headers: request.headers, body: request.body })
    requestId = response.headers.get("x-request-id")
    if (!response.ok) {
      const text = await response.text()
      let shown = text
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2)
      } catch {}
      errorBox.textContent = `HTTP ${response.status}\n${shown}`
      errorBox.hidden = false
    } else if (body.stream) {
      let index = 0
      await readEvents(response, (name, data) => {
        if (name === "image_generation.completed") {
          images.append(
            imageFigure(
              `data:${MIME[data.output_format] ?? "image/png"};base64,${data.b64_json}`,
              index++,
              prompt,
              data.output_format
            )
          )
        } else if (name === "error") {
          errorBox.textContent = JSON.stringify(data, null, 2)
          errorBox.hidden = false
        }
      })
    } else {
      const result = await response.json()
      const format = result.output_format
      result.data.forEach((item, index) => {
        const src = item.url ?? `data:${MIME[format] ?? "image/png"};base64,${item.b64_json}`
        images.append(imageFigure(src, index, prompt, format))
      })
      // Images that failed after the answer began are counted at its end; the header has those failed before.
      const failed = result.images_failed ?? response.headers.get("x-images-failed")
      if (failed) {
        errorBox.textContent = `${failed} of ${body.n} images failed`
        errorBox.hidden = false
      }
    }
  } catch (error) {
    errorBox.textContent = `${t("requestFailed")}: ${error.message}`
    errorBox.hidden = false
  } finally {
    button.disabled = false
    button.textContent = t("generate")
  }
  const latency = Math.round(performance.now() - started)
  const parts = [`${t("latency")} ${ms(latency)}`]
  if (requestId) parts.push(`${t("requestId")} ${requestId}`)
  meta.textContent = parts.join(" · ")
  const recorded = await recordedEvent(requestId)
  if (recorded)
    meta.textContent = [
      `${t("latency")} ${ms(latency)}`,
      `${t("attempts")} ${recorded.attempts}`,
      `${t("requestId")} ${requestId}`
    ].join(" · ")
  await refresh()
}

/** Status (upstream health) and statistics again, after the page itself made a request. */
const refresh = async () => {
  state.status = await api("/v1/gateway/status").catch(() => state.status)
  renderStatus()
  await loadUsage()
}

// ---------------------------------------------------------------- start

const start = () => {
  const stored = localStorage.getItem(LANG_NAME)
  const preferred = stored ?? ((navigator.languages ?? [navigator.language]).some((lang) => /^zh\b/i.test(lang)) ? "zh" : "en")
  state.key = loadKey()
  $("#remember").checked = localStorage.getItem(KEY_NAME) !== null
  applyLanguage(preferred)
  setKeyed(false)

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
    setKeyed(false)
    notice(null)
    renderAll()
  })
  for (const button of $$("button.window")) {
    button.addEventListener("click", () => {
      state.window = button.dataset.window
      loadUsage()
    })
  }
  $("#refresh").addEventListener("click", () => connect())
  $("#probe-form").addEventListener("submit", probe)
  $("#play-form").addEventListener("submit", play)

  loadHealth()
  connect()
  // Keeps the panels current while the page is open and visible; the cockpit's reads are not recorded as usage.
  setInterval(() => {
    if (state.status && document.visibilityState === "visible") refresh()
  }, REFRESH_MS)
}

start()

import { ConfigProvider, Context, Redacted } from "effect"
import { afterAll, afterEach, describe, expect, it, vi } from "vitest"
import { type Bindings, makeHandler } from "../../src/App.ts"
import { keyMatcher } from "../../src/http/AuthorizationLive.ts"
import { DEVELOPMENT_API_KEY } from "../../src/services/GatewayConfig.ts"
import { WorkerContext } from "../../src/services/WorkerContext.ts"

/** The whole gateway in Node, under configurations that a single workerd run cannot vary. */
const handlers: Array<{ dispose: () => Promise<void> }> = []
const gateway = (env: Record<string, string>) => {
  const app = makeHandler(ConfigProvider.fromUnknown(env))
  handlers.push(app)
  return (path: string, init: RequestInit = {}) => app.handler(new Request(`http://gateway.test${path}`, init))
}
afterAll(async () => {
  for (const app of handlers) await app.dispose()
})

const bearer = (key: string) => ({ headers: { authorization: `Bearer ${key}` } })
const errorOf = async (response: Response) => ((await response.json()) as { error: Record<string, unknown> }).error

describe("configuration", () => {
  it("production without API_KEYS refuses every /v1 call and tells the operator what to set", async () => {
    const call = gateway({ ENVIRONMENT: "production" })
    const response = await call("/v1/models", bearer(DEVELOPMENT_API_KEY))
    expect(response.status).toBe(500)
    expect(response.headers.get("x-should-retry")).toBe("false")
    const error = await errorOf(response)
    expect(error.code).toBe("api_keys_not_configured")
    expect(error.message).toContain("wrangler secret put API_KEYS")
    expect((await call("/health")).status).toBe(200)
  })

  it("the development key works only in development, and only while API_KEYS is empty", async () => {
    expect((await gateway({ ENVIRONMENT: "development" })("/v1/models", bearer(DEVELOPMENT_API_KEY))).status).toBe(200)
    const withKeys = gateway({ ENVIRONMENT: "development", API_KEYS: "mine" })
    expect((await withKeys("/v1/models", bearer(DEVELOPMENT_API_KEY))).status).toBe(401)
    expect((await withKeys("/v1/models", bearer("mine"))).status).toBe(200)
  })

  it("the offline model is listed in development and hidden in production unless enabled", async () => {
    const list = async (env: Record<string, string>, key: string) =>
      ((await (await gateway(env)("/v1/models", bearer(key))).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)
    expect(await list({ ENVIRONMENT: "development" }, DEVELOPMENT_API_KEY)).toContain("local/preview")
    expect(await list({ API_KEYS: "k" }, "k")).not.toContain("local/preview")
    expect(await list({ API_KEYS: "k", ENABLE_LOCAL_MODEL: "true" }, "k")).toContain("local/preview")
  })

  it.each([
    [{ UPSTREAM_MAX_ATTEMPTS: "many" }, "UPSTREAM_MAX_ATTEMPTS"],
    [{ UPSTREAM_TIMEOUT_MS: "0" }, "UPSTREAM_TIMEOUT_MS"],
    [{ UPSTREAM_URL: "not a url" }, "UPSTREAM_URL"],
    [{ MODELS: "[{bad json" }, "MODELS"],
    [{ DEFAULT_MODEL: "acme/none" }, "DEFAULT_MODEL"],
    [{ ENVIRONMENT: "staging" }, "ENVIRONMENT"]
  ])("an invalid value (%j) answers every request with a configuration error naming %s", async (env, name) => {
    const call = gateway({ API_KEYS: "super-secret-key", ...env })
    for (const path of ["/health", "/v1/models", "/anything"]) {
      const response = await call(path, bearer("super-secret-key"))
      expect(response.status).toBe(500)
      expect(response.headers.get("content-type")).toMatch(/^application\/json/)
      const error = await errorOf(response)
      expect(error.code).toBe("gateway_misconfigured")
      expect(error.message).toContain(name)
      expect(error.message).not.toContain("super-secret-key")
    }
  })
})

describe("keyMatcher", () => {
  it("accepts any configured key and nothing else", () => {
    const matches = keyMatcher([Redacted.make("alpha"), Redacted.make("beta")])
    expect(matches("alpha")).toBe(true)
    expect(matches("beta")).toBe(true)
    expect(matches("alph")).toBe(false)
    expect(matches("alphaa")).toBe(false)
    expect(matches("")).toBe(false)
    expect(keyMatcher([])("alpha")).toBe(false)
  })
})

describe("without the IMAGES bucket", () => {
  it("response_format url keeps returning data: URLs", async () => {
    const call = gateway({ API_KEYS: "k", ENABLE_LOCAL_MODEL: "true" })
    const response = await call("/v1/images/generations", {
      method: "POST",
      headers: { authorization: "Bearer k", "content-type": "application/json" },
      body: JSON.stringify({ model: "local/preview", prompt: "a kite", size: "32x32", response_format: "url" })
    })
    const body = (await response.json()) as { data: Array<{ url: string }> }
    expect(body.data[0]?.url).toMatch(/^data:image\/png;base64,iVBORw0KGgo/)
  })

  it("chat replies, streamed or not, carry data: URLs", async () => {
    const call = gateway({ API_KEYS: "k", ENABLE_LOCAL_MODEL: "true", CHAT_PROGRESS: "off" })
    const chat = (stream: boolean) =>
      call("/v1/chat/completions", {
        method: "POST",
        headers: { authorization: "Bearer k", "content-type": "application/json" },
        body: JSON.stringify({
          model: "local/preview",
          stream,
          messages: [{ role: "user", content: "a kite --size 32x32 --n 2" }]
        })
      })
    const completion = (await (await chat(false)).json()) as { choices: Array<{ message: { content: string } }> }
    expect(completion.choices[0]?.message.content).toMatch(
      /^!\[image 1\]\(data:image\/png;base64,[A-Za-z0-9+/=]+\)\n\n!\[image 2\]\(data:image\/png;base64,[A-Za-z0-9+/=]+\)$/
    )
    const events = (await (await chat(true)).text()).split("\n").filter((line) => line.startsWith("data: {"))
    const content = events
      .map(
        (line) =>
          (JSON.parse(line.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? ""
      )
      .join("")
    expect(content).toMatch(/^!\[image 1\]\(data:image\/png;base64,[A-Za-z0-9+/=]+\)\n\n!\[image 2\]\(data:image\/png;base64,/)
  })
})

describe("usage statistics never cost a request", () => {
  /** A Durable Object namespace whose store fails (or never answers) every call. */
  const brokenStore = (behaviour: "reject" | "hang") => {
    const calls: Array<string> = []
    const answer = (name: string) => () => {
      calls.push(name)
      return behaviour === "reject" ? Promise.reject(new Error("storage exploded")) : new Promise(() => {})
    }
    const stub = {
      record: answer("record"),
      summary: answer("summary"),
      recent: answer("recent"),
      upstreams: answer("upstreams")
    }
    return { calls, namespace: { getByName: () => stub } as unknown as NonNullable<Bindings["usage"]> }
  }

  const withStore = (store: ReturnType<typeof brokenStore>) => {
    const app = makeHandler(ConfigProvider.fromUnknown({ API_KEYS: "k", ENABLE_LOCAL_MODEL: "true", LOG_LEVEL: "None" }), {
      usage: store.namespace
    })
    handlers.push(app)
    const pending: Array<Promise<unknown>> = []
    const context = Context.make(WorkerContext, { waitUntil: (promise) => pending.push(promise) })
    const call = (path: string, init: RequestInit = {}) =>
      app.handler(new Request(`http://gateway.test${path}`, init), context as Context.Context<never>)
    return { call, pending }
  }

  const generateLocal = {
    method: "POST",
    headers: { authorization: "Bearer k", "content-type": "application/json" },
    body: JSON.stringify({ model: "local/preview", prompt: "a kite", size: "64x64" })
  }

  it("answers a generation when the store rejects the write, which happens after the response via waitUntil", async () => {
    const store = brokenStore("reject")
    const { call, pending } = withStore(store)
    const response = await call("/v1/images/generations", generateLocal)
    expect(response.status).toBe(200)
    expect(((await response.json()) as { data: Array<unknown> }).data).toHaveLength(1)
    expect(pending).toHaveLength(1)
    await expect(pending[0]).resolves.toBeUndefined() // the failure is logged, not thrown
    expect(store.calls).toEqual(["record"])
  })

  it("answers a generation while the store hangs, and the cockpit's reads fail with a clear 503", async () => {
    const store = brokenStore("hang")
    const { call, pending } = withStore(store)
    const response = await call("/v1/images/generations", generateLocal)
    expect(response.status).toBe(200)
    expect(pending).toHaveLength(1)
    const status = await call("/v1/gateway/status", { headers: { authorization: "Bearer k" } })
    expect(status.status).toBe(200) // status still answers; it says why health is missing
    expect(((await status.json()) as { statsError: string }).statsError).toContain("within 10 s")
  }, 20_000)

  it("without the binding, status says statistics are off and stats answer 503 naming the binding", async () => {
    const call = gateway({ API_KEYS: "k" })
    const stats = await call("/v1/gateway/stats", bearer("k"))
    expect(stats.status).toBe(503)
    const error = await errorOf(stats)
    expect(error.code).toBe("usage_stats_unavailable")
    expect(error.message).toContain("USAGE_STATS")
    const status = (await (await call("/v1/gateway/status", bearer("k"))).json()) as { config: { usageStats: boolean } }
    expect(status.config.usageStats).toBe(false)
  })
})

describe("logs", () => {
  const KEY = "log-test-secret-key"
  const levels = ["debug", "info", "log", "warn", "error"] as const
  const capture = () => {
    const lines: Array<{ method: (typeof levels)[number]; text: string }> = []
    for (const method of levels) {
      vi.spyOn(console, method).mockImplementation((...args: Array<unknown>) => {
        lines.push({ method, text: args.map(String).join(" ") })
      })
    }
    return lines
  }
  afterEach(() => vi.restoreAllMocks())

  const generate = (env: Record<string, string>) =>
    gateway({ API_KEYS: KEY, ENABLE_LOCAL_MODEL: "true", ...env })("/v1/images/generations", {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "local/preview", prompt: "a lighthouse at dusk", size: "64x64" })
    })

  it("writes one JSON line per entry, at the console level of its Effect level, with the request id and never the key", async () => {
    const lines = capture()
    const response = await generate({})
    expect(response.status).toBe(200)
    const entries = lines.map((line) => ({ ...line, entry: JSON.parse(line.text) as Record<string, unknown> }))
    const named = (name: string) => entries.find((line) => Array.isArray(line.entry.message) && line.entry.message[0] === name)
    const request = named("request")
    expect(request?.method).toBe("info")
    expect(request?.entry).toMatchObject({
      level: "INFO",
      message: ["request", { method: "POST", path: "/v1/images/generations", status: 200 }],
      annotations: { requestId: response.headers.get("x-request-id") }
    })
    const finished = named("generation finished")
    expect(finished?.entry.message).toEqual([
      "generation finished",
      expect.objectContaining({ model: "local/preview", requested: 1, succeeded: 1, failed: 0 })
    ])
    const all = lines.map((line) => line.text).join("\n")
    expect(all).not.toContain(KEY)
    expect(all).not.toContain("a lighthouse at dusk") // prompts only at Debug
  })

  it("logs the prompt at Debug, and nothing below Warn when LOG_LEVEL=Warn", async () => {
    const debug = capture()
    expect((await generate({ LOG_LEVEL: "Debug" })).status).toBe(200)
    const generating = debug.find((line) => line.text.includes('"generating"'))
    expect(generating?.method).toBe("debug")
    expect(generating?.text).toContain("a lighthouse at dusk")
    vi.restoreAllMocks()

    const quiet = capture()
    expect((await generate({ LOG_LEVEL: "Warn" })).status).toBe(200)
    expect(quiet).toEqual([])
  })
})

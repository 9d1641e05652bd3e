import { ConfigProvider, Context, Redacted } from "effect"
import { afterAll, afterEach, describe, expect, it, vi } from "vitest"
import { type Bindings, makeHandler } from "../../src/App.ts"
import { isLoopbackHost, keyMatcher } from "../../src/http/AuthorizationLive.ts"
import { DEVELOPMENT_API_KEY } from "../../src/services/GatewayConfig.ts"
import { WorkerContext } from "../../src/services/WorkerContext.ts"
import { brokenBody } from "../support/brokenBody.ts"

/** The whole gateway in Node, under configurations that a single workerd run cannot vary. */
const handlers: Array<{ dispose: () => Promise<void> }> = []
const gateway = (env: Record<string, string>, bindings: Bindings = {}, origin = "http://gateway.test") => {
  const app = makeHandler(ConfigProvider.fromUnknown(env), bindings)
  handlers.push(app)
  return (path: string, init: RequestInit = {}) => app.handler(new Request(`${origin}${path}`, init))
}
/** As `npm start` is reached: on a loopback host. */
const local = (env: Record<string, string>) => gateway(env, {}, "http://localhost:8787")
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
    expect((await local({ ENVIRONMENT: "development" })("/v1/models", bearer(DEVELOPMENT_API_KEY))).status).toBe(200)
    expect((await local({ ENVIRONMENT: "production" })("/v1/models", bearer(DEVELOPMENT_API_KEY))).status).toBe(500)
    const withKeys = local({ ENVIRONMENT: "development", API_KEYS: "mine" })
    expect((await withKeys("/v1/models", bearer(DEVELOPMENT_API_KEY))).status).toBe(401)
    expect((await withKeys("/v1/models", bearer("mine"))).status).toBe(200)
  })

  it("a wrong key is told what works in this mode, and never sees a key it did not send", async () => {
    const presented = "sk-typo-1234"
    const messageOf = async (call: ReturnType<typeof gateway>) =>
      String((await errorOf(await call("/v1/models", bearer(presented)))).message)
    const development = await messageOf(local({ ENVIRONMENT: "development" }))
    expect(development).toContain("development mode without API_KEYS")
    expect(development).toContain(DEVELOPMENT_API_KEY)
    expect(development).not.toContain("API_KEYS secret")
    const production = await messageOf(gateway({ API_KEYS: "sk-secret-a,sk-secret-b" }))
    expect(production).toContain("API_KEYS")
    expect(production).not.toContain(DEVELOPMENT_API_KEY)
    // A development gateway given keys of its own is answered as production is: its keys are the ones that work.
    const withKeys = await messageOf(local({ ENVIRONMENT: "development", API_KEYS: "sk-secret-a" }))
    expect(withKeys).toBe(production)
    for (const message of [development, production, withKeys]) {
      expect(message).not.toContain(presented)
      expect(message).not.toContain("sk-secret")
    }
  })

  it("the offline model is listed in development and hidden in production unless enabled", async () => {
    const list = async (call: ReturnType<typeof gateway>, key: string) =>
      ((await (await call("/v1/models", bearer(key))).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)
    expect(await list(local({ ENVIRONMENT: "development" }), DEVELOPMENT_API_KEY)).toContain("local/preview")
    expect(await list(gateway({ API_KEYS: "k" }), "k")).not.toContain("local/preview")
    expect(await list(gateway({ API_KEYS: "k", ENABLE_LOCAL_MODEL: "true" }), "k")).toContain("local/preview")
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

describe("UPSTREAMS and MODELS", () => {
  const SECRET = "sk-live-do-not-echo-0123456789"
  const openai = { id: "mine", kind: "openai", baseUrl: "https://api.example/v1", apiKey: "MY_OPENAI_KEY" }
  it.each([
    [{ UPSTREAMS: "[{not json" }, "UPSTREAMS is not valid JSON"],
    [{ UPSTREAMS: JSON.stringify({ id: "x" }) }, "UPSTREAMS must be a JSON array"],
    [
      { UPSTREAMS: JSON.stringify([{ ...openai, kind: "telepathy" }]) },
      "UPSTREAMS entry 'mine': the kind 'telepathy' is unknown"
    ],
    [{ UPSTREAMS: JSON.stringify([{ ...openai, timeoutMs: SECRET }]) }, "UPSTREAMS entry 'mine': 'timeoutMs'"],
    [{ UPSTREAMS: JSON.stringify([{ ...openai, headers: { authorization: 42, "x-key": SECRET } }]) }, "'headers'"],
    [{ UPSTREAMS: JSON.stringify([{ ...openai, apiKey: SECRET }]) }, "'apiKey'"],
    [{ UPSTREAMS: JSON.stringify([{ ...openai, apikey: SECRET }]) }, "has 'apikey' (did you mean 'apiKey'?) that is not one of"],
    [{ UPSTREAMS: JSON.stringify([{ ...openai, baseUrl: undefined }]) }, "'baseUrl' is required"],
    [{ UPSTREAMS: JSON.stringify([openai]) }, "names the secret MY_OPENAI_KEY, which is not set"],
    [{ UPSTREAMS: JSON.stringify([openai, openai]), MY_OPENAI_KEY: SECRET }, "two entries with the id 'mine'"],
    [{ MODELS: JSON.stringify([{ id: "a/b", upstreamModelId: "b", upstream: "nowhere" }]) }, "'nowhere'"],
    [{ MODELS: JSON.stringify([{ id: "a/b", upstreamModelId: "b", fallbacks: ["a/none"] }]) }, "fallback 'a/none'"],
    [{ MODELS: JSON.stringify([{ id: "a/b", upstreamModelId: "b", fallbacks: ["a/b"] }]) }, "MODELS fallbacks loop: a/b -> a/b"],
    [{ MODELS: JSON.stringify([{ id: "a/b", upstreamModelId: SECRET, maxN: SECRET }]) }, "MODELS entry 'a/b': 'maxN'"],
    [
      {
        UPSTREAMS: JSON.stringify([openai]),
        MY_OPENAI_KEY: SECRET,
        MODELS: JSON.stringify([{ id: "a/b", upstreamModelId: "b", upstream: "mine", options: { supports: [SECRET] } }])
      },
      "model 'a/b' on upstream 'mine': 'options'"
    ],
    [
      { UPSTREAM_HEADERS: JSON.stringify({ "x-api-key": 1, other: SECRET }) },
      "UPSTREAM_HEADERS must be a JSON object whose values are strings"
    ],
    [{ UPSTREAM_HEADERS: `{"authorization": "Bearer ${SECRET}"` }, "UPSTREAM_HEADERS is not valid JSON"],
    [
      { MODEL_ALIASES: JSON.stringify({ fast: 7, other: SECRET }) },
      "MODEL_ALIASES must be a JSON object whose values are strings"
    ],
    [{ MODEL_ALIASES: `["${SECRET}"]` }, "MODEL_ALIASES must be a JSON object"],
    [{ MODELS: `{"id": "${SECRET}"}` }, "MODELS must be a JSON array"]
  ])("%j answers every request with a configuration error naming the entry, never a value", async (env, expected) => {
    const call = gateway({ API_KEYS: "k", ...env })
    for (const path of ["/health", "/v1/images/generations"]) {
      const response = await call(path, bearer("k"))
      expect(response.status).toBe(500)
      const error = await errorOf(response)
      expect(error.code).toBe("gateway_misconfigured")
      expect(error.message).toContain(expected)
      expect(error.message).not.toContain(SECRET)
    }
  })

  it("a valid UPSTREAMS entry with its secret set starts, and status shows it without the key", async () => {
    const call = gateway({
      API_KEYS: "k",
      UPSTREAMS: JSON.stringify([{ ...openai, baseUrl: "https://user:pw@api.example/v1?token=t" }]),
      MY_OPENAI_KEY: SECRET,
      MODELS: JSON.stringify([{ id: "mine/gpt-image-1", upstream: "mine", upstreamModelId: "gpt-image-1", maxN: 4 }])
    })
    const response = await call("/v1/gateway/status", bearer("k"))
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text).not.toContain(SECRET)
    expect(text).not.toContain("pw@")
    expect(text).not.toContain("token=t")
    const mine = (JSON.parse(text) as { upstreams: Array<Record<string, unknown>> }).upstreams.find(
      (upstream) => upstream.id === "mine"
    )
    expect(mine).toMatchObject({ kind: "openai", baseUrl: "https://api.example/v1/", models: 1, circuit: { state: "closed" } })
  })
})

describe("the workers-ai upstream, through the whole gateway with a fake AI binding", () => {
  const JPEG = "/9j/4AAQSkZJRgABAQ=="
  it("exists only with the binding, lists the Workers AI catalogue, and serves each output shape", async () => {
    const without = gateway({ API_KEYS: "k" })
    const listed = async (call: typeof without) =>
      ((await (await call("/v1/models", bearer("k"))).json()) as { data: Array<{ id: string }> }).data.map((model) => model.id)
    expect(await listed(without)).not.toContain("workers-ai/flux-1-schnell")

    const runs: Array<{ model: string; inputs: Record<string, unknown> }> = []
    const ai = {
      run: async (model: string, inputs: Record<string, unknown>) => {
        runs.push({ model, inputs })
        return model.includes("flux-1-schnell")
          ? { image: JPEG }
          : new Blob([Uint8Array.from(atob(JPEG), (c) => c.charCodeAt(0))]).stream()
      }
    }
    const call = gateway({ API_KEYS: "k" }, { ai })
    expect(await listed(call)).toContain("workers-ai/flux-1-schnell")
    for (const model of ["workers-ai/flux-1-schnell", "workers-ai/phoenix-1.0"]) {
      const response = await call("/v1/images/generations", {
        method: "POST",
        headers: { authorization: "Bearer k", "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: "a lighthouse", size: "1024x1024" })
      })
      expect(response.status).toBe(200)
      const body = (await response.json()) as { data: Array<{ b64_json: string }>; output_format: string }
      expect([body.data[0]?.b64_json, body.output_format]).toEqual([JPEG, "jpeg"])
    }
    expect(runs).toEqual([
      { model: "@cf/black-forest-labs/flux-1-schnell", inputs: { prompt: "a lighthouse", steps: 4 } },
      { model: "@cf/leonardo/phoenix-1.0", inputs: { prompt: "a lighthouse", width: 1024, height: 1024 } }
    ])
  })
})

describe("request bodies", () => {
  it("a chunked body whose stream fails while it is read is a 400 invalid_body with a request id, not an escaped failure", async () => {
    const broken = brokenBody()
    const response = await gateway({ API_KEYS: "k" })("/v1/images/generations", {
      method: "POST",
      headers: { authorization: "Bearer k", "content-type": "application/json" },
      body: broken,
      duplex: "half"
    } as RequestInit)
    expect(response.status).toBe(400)
    expect(response.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/)
    expect((await errorOf(response)).code).toBe("invalid_body")
  })

  it("an edit may send 16 images and a mask as base64 plus the other fields; a declared length over that is a 413 naming it", async () => {
    const call = gateway({ API_KEYS: "k", MAX_BODY_BYTES: "1000", MAX_IMAGE_BYTES: "3000" })
    // 17 images of 3000 bytes are 68,000 as base64; with MAX_BODY_BYTES for the rest, 69,000.
    const edit = (length: number) =>
      call("/v1/images/edits", {
        method: "POST",
        headers: {
          authorization: "Bearer k",
          "content-type": "multipart/form-data; boundary=x",
          "content-length": String(length)
        },
        body: "--x--"
      })
    const over = await edit(69_001)
    expect(over.status).toBe(413)
    expect((await errorOf(over)).message).toContain("(69000 bytes)")
    expect((await edit(69_000)).status).not.toBe(413)
  })
})

describe("request validation", () => {
  // The first issue of a bad request, phrased as OpenAI phrases it, with param naming the field (a path for a nested one).
  it.each([
    ["/v1/images/generations", "{}", "prompt", null, "Missing required parameter: 'prompt'."],
    ["/v1/images/generations", '{"prompt":"x","n":"two"}', "n", "invalid_value", "Invalid value for 'n': expected number."],
    ["/v1/images/generations", '{"prompt":"x","n":11}', "n", "invalid_value", "'n' must be an integer from 1 to 10"],
    [
      "/v1/images/generations",
      '{"prompt":"x","response_format":"png"}',
      "response_format",
      "invalid_value",
      `Invalid value for 'response_format': expected "url" | "b64_json".`
    ],
    [
      "/v1/images/generations",
      "{not json",
      null,
      null,
      "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
    ],
    ["/v1/images/generations", "[1,2]", null, null, "The request body is invalid: Expected object. Expected a JSON object."],
    [
      "/v1/chat/completions",
      '{"messages":[{"content":"x"}]}',
      "messages.0.role",
      null,
      "Missing required parameter: 'messages.0.role'."
    ],
    [
      "/v1/chat/completions",
      '{"messages":[{"role":3}]}',
      "messages.0.role",
      "invalid_value",
      "Invalid value for 'messages.0.role': expected string."
    ]
  ] as const)("%s %s: 400 on %s", async (path, body, param, code, message) => {
    const response = await gateway({ API_KEYS: "k" })(path, {
      method: "POST",
      headers: { authorization: "Bearer k", "content-type": "application/json" },
      body
    })
    expect(response.status).toBe(400)
    expect(await errorOf(response)).toEqual({ type: "invalid_request_error", param, code, message })
  })

  it("a query parameter too, and nullable fields are named by the type to send", async () => {
    const stats = await gateway({ API_KEYS: "k" })("/v1/gateway/stats?window=2y", bearer("k"))
    expect(await errorOf(stats)).toMatchObject({ param: "window", code: "invalid_value" })
    const nulled = await gateway({ API_KEYS: "k" })("/v1/images/generations", {
      method: "POST",
      headers: { authorization: "Bearer k", "content-type": "application/json" },
      body: '{"prompt":"x","size":5}'
    })
    expect((await errorOf(nulled)).message).toBe("Invalid value for 'size': expected string.")
  })
})

describe("lookups keyed by client input", () => {
  // `model: "constructor"` once read an inherited property of the alias table and answered 500.
  it("treat inherited property names as unknown models: 404 model_not_found, never a 500", async () => {
    const call = gateway({ API_KEYS: "k", ENABLE_LOCAL_MODEL: "true" })
    for (const model of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
      const response = await call("/v1/images/generations", {
        method: "POST",
        headers: { authorization: "Bearer k", "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: "a fox" })
      })
      expect(response.status, model).toBe(404)
      expect((await errorOf(response)).code).toBe("model_not_found")
      expect((await call(`/v1/models/${model}`, bearer("k"))).status, model).toBe(404)
    }
  })
})

describe("the development key outside localhost", () => {
  // A Worker deployed with ENVIRONMENT=development by mistake must not be open to anyone who read the README.
  it("is refused on any host but a loopback one, with a 401 that says why", async () => {
    // Names that start like a loopback one but are not (a wildcard route answers them too) are refused as well.
    for (const origin of [
      "https://my-gateway.example.workers.dev",
      "http://gateway.test",
      "http://10.0.0.5:8787",
      "http://127.0.0.1.example.com",
      "http://localhost.example.com"
    ]) {
      const response = await gateway({ ENVIRONMENT: "development" }, {}, origin)("/v1/models", bearer(DEVELOPMENT_API_KEY))
      expect(response.status, origin).toBe(401)
      expect((await errorOf(response)).message).toContain("loopback")
    }
    // 127.0.0.0/8 as a whole, in the forms URL writes (127.1 is 127.0.0.1).
    for (const origin of [
      "http://localhost:8787",
      "http://127.0.0.1:8787",
      "http://127.10.200.3",
      "http://127.1:8787",
      "http://[::1]:8787",
      "http://gateway.localhost"
    ]) {
      const response = await gateway({ ENVIRONMENT: "development" }, {}, origin)("/v1/models", bearer(DEVELOPMENT_API_KEY))
      expect(response.status, origin).toBe(200)
    }
    const other = await local({ ENVIRONMENT: "development" })("/v1/models", bearer("sk-something-else"))
    expect(other.status).toBe(401)
  })

  it("/health does not publish the environment", async () => {
    const body = (await (await local({ ENVIRONMENT: "development" })("/health")).json()) as Record<string, unknown>
    expect(Object.keys(body).sort()).toEqual(["models", "status", "version"])
  })
})

describe("isLoopbackHost", () => {
  it("takes whole hostnames only: localhost and its subdomains, 127.0.0.0/8, [::1]", () => {
    for (const host of ["localhost", "a.b.localhost", "127.0.0.1", "127.255.10.2", "[::1]"])
      expect(isLoopbackHost(host), host).toBe(true)
    for (const host of ["localhost.example.com", "notlocalhost", "127.0.0.1.example.com", "x127.0.0.1", "128.0.0.1", "[::2]", ""])
      expect(isLoopbackHost(host), host).toBe(false)
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

  it("local/preview answers n images with n different pictures, the same ones for the same request", async () => {
    const call = gateway({ API_KEYS: "k", ENABLE_LOCAL_MODEL: "true" })
    const generate = async () => {
      const response = await call("/v1/images/generations", {
        method: "POST",
        headers: { authorization: "Bearer k", "content-type": "application/json" },
        body: JSON.stringify({ model: "local/preview", prompt: "a kite", size: "32x32", n: 3, response_format: "b64_json" })
      })
      return ((await response.json()) as { data: Array<{ b64_json: string }> }).data.map((image) => image.b64_json).sort()
    }
    const first = await generate()
    expect(new Set(first).size).toBe(3)
    expect(await generate()).toEqual(first)
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

  // The buffer's own behaviour (a blink, a store that never answers, one that is down long) is in
  // UsageStats.test.ts, in virtual time; here, only that the request never waits for the store.
  it.each(["reject", "hang"] as const)(
    "answers a generation at once when the store does %s, the write left to waitUntil",
    async (behaviour) => {
      const store = brokenStore(behaviour)
      const { call, pending } = withStore(store)
      const response = await call("/v1/images/generations", generateLocal)
      expect(response.status).toBe(200)
      expect(((await response.json()) as { data: Array<unknown> }).data).toHaveLength(1)
      expect(pending).toHaveLength(1)
      expect(store.calls).toEqual([]) // the write waits its second in the background
    }
  )

  it("without the binding, status says statistics are off, and stats and requests answer 503 naming the binding", async () => {
    const call = gateway({ API_KEYS: "k" })
    const stats = await call("/v1/gateway/stats", bearer("k"))
    expect(stats.status).toBe(503)
    const error = await errorOf(stats)
    expect(error.code).toBe("usage_stats_unavailable")
    expect(error.message).toContain("USAGE_STATS")
    const requests = await call("/v1/gateway/requests", bearer("k"))
    expect(requests.status).toBe(503)
    expect(await errorOf(requests)).toMatchObject({ code: "usage_stats_unavailable" })
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
    await response.arrayBuffer() // the answer is written as its images come: the generation ends with its body
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
    const answered = await generate({ LOG_LEVEL: "Debug" })
    expect(answered.status).toBe(200)
    await answered.arrayBuffer()
    const generating = debug.find((line) => line.text.includes('"generating"'))
    expect(generating?.method).toBe("debug")
    expect(generating?.text).toContain("a lighthouse at dusk")
    vi.restoreAllMocks()

    const quiet = capture()
    expect((await generate({ LOG_LEVEL: "Warn" })).status).toBe(200)
    expect(quiet).toEqual([])
  })
})

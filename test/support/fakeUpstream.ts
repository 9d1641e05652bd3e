/**
 * A local stand-in for the ai-sdk-image-generator app. It speaks the real
 * protocol (POST /api/generate-images, `{prompt, provider, modelId}` in,
 * `{provider, image}` out) and injects faults on demand.
 *
 * A test steers it from the prompt: `[[id=t1 faults=503,ok format=jpeg delay=50]]`.
 * - `id`: groups calls so a test can count them (`GET /__calls?id=t1`: the calls, how many the client
 *   abandoned, and the most that were in flight at once).
 * - `faults`: consumed one per call, then `ok` forever. Items: `ok`, a status
 *   (`400`, `500`, `503`...), `429:<seconds>` (429 with Retry-After), `hang`
 *   (never answers), `html` (200 with an HTML page), `noimage` (200 JSON, no image), `dirty` (an image whose
 *   base64 hides markdown and a raw newline past its first 200 characters; on the OpenAI API a valid JSON
 *   string that decodes to the same),
 *   `html502` (502 with an HTML page).
 * - `format`: png (default), jpeg, webp. `delay`: ms before answering. `bytes`: image size.
 * - `vary=1`: each call's image differs (the call's number is written into it), so a test can tell a fresh
 *   answer from a cached one.
 * - `/__calls` also gives `arrivals`: when each call arrived, on the fake's clock (ms), to check retry waits.
 * - A fault with `~hold` (`faults=ok,400~hold`) is held like `hold=1`, for that call alone. `cut`: a 200 whose
 *   JSON breaks off halfway (the connection is destroyed): a truncated answer. On the ai-sdk protocol also
 *   `stall` (half the answer, then nothing, the connection left open) and `badjson` (the whole image, then
 *   JSON that does not parse).
 * - `hold=1`: the answer waits until the test releases it (`POST /__release?id=t1`) or the client goes away,
 *   so a test can act while calls are known to be in flight, with no sleep.
 * - `GET /__wait?id=t1&inFlight=2` (or `aborted=`, `calls=`) answers once the count has reached at least that value:
 *   tests wait on the fake's own events instead of polling against a deadline.
 *
 * It also speaks the OpenAI images API, as the `openai` upstream kind calls it: `POST /v1/images/generations`
 * (and `/v1/images/edits`, multipart, recording the files it received)
 * with `Authorization: Bearer fake-openai-key` (anything else is a 401), `{model, prompt, n, ...}` in,
 * `{created, data: [{b64_json}]}` out, or `[{url}]` with `answer=url` (served from `GET /files/...`).
 * `faults.<model>=...` steers one model apart from the others (a primary failing while its fallback works);
 * faults are then consumed per model.
 *
 * Run standalone: `node test/support/fakeUpstream.ts --port 8788 [--delay 2000] [--bytes 1048576]`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

export interface FakeUpstreamOptions {
  readonly port?: number | undefined
  readonly host?: string | undefined
  /** Delay before every answer, unless the prompt says otherwise. */
  readonly delayMs?: number | undefined
  /** Size of the image bytes (before base64). */
  readonly imageBytes?: number | undefined
  /** Random faults for calls the prompt does not steer (the soak test): the share answered 503, and the share never answered. */
  readonly faultRates?: { readonly unavailable: number; readonly hang: number } | undefined
}

export interface FakeUpstream {
  readonly url: string
  readonly close: () => Promise<void>
}

const MAGIC: Record<string, ReadonlyArray<number>> = {
  png: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  jpeg: [0xff, 0xd8, 0xff, 0xe0],
  webp: [0x52, 0x49, 0x46, 0x46, 0x00, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50]
}

/** The image of call `call` (1-based) when it must differ from the others: the number in bytes 16-19. */
const variedBase64 = (format: string, size: number, call: number): string => {
  const bytes = Buffer.from(imageBase64(format, Math.max(size, 20)), "base64")
  bytes.writeUInt32BE(call, 16)
  return bytes.toString("base64")
}

const imageCache = new Map<string, string>()
/** The fake's image of `size` bytes (its magic number, then a fixed pattern), base64-encoded. */
export const imageBase64 = (format: string, size: number): string => {
  const key = `${format}:${size}`
  const cached = imageCache.get(key)
  if (cached !== undefined) return cached
  const bytes = Buffer.alloc(Math.max(size, 16))
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff
  Buffer.from(MAGIC[format] ?? MAGIC.png!).copy(bytes, 0)
  const encoded = bytes.toString("base64")
  imageCache.set(key, encoded)
  return encoded
}

const directives = (prompt: string): Record<string, string> => {
  const match = /\[\[([^\]]*)\]\]/.exec(prompt)
  if (match === null) return {}
  return Object.fromEntries(
    (match[1] ?? "")
      .trim()
      .split(/\s+/)
      .filter((part) => part.includes("="))
      .map((part) => [part.slice(0, part.indexOf("=")), part.slice(part.indexOf("=") + 1)])
  )
}

const readBody = (request: IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    request.on("error", reject)
  })

const sendJson = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  response.writeHead(status, { "content-type": "application/json", ...headers })
  response.end(JSON.stringify(body))
}

/** The key the fake OpenAI-compatible endpoint accepts. */
export const FAKE_OPENAI_KEY = "fake-openai-key"

const EXTENSIONS: Record<string, string> = { png: "png", jpeg: "jpg", webp: "webp" }

/**
 * An edit's multipart body, parsed by Node's own `Request.formData()`: the text fields (`n` as a number, as
 * the JSON form has it) and `files`, each part's field name, file name, type and bytes (base64), recorded for
 * the tests to compare with what they uploaded.
 */
const editForm = async (request: IncomingMessage): Promise<Record<string, unknown>> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  const form = await new Request("http://fake/", {
    method: "POST",
    headers: { "content-type": request.headers["content-type"] ?? "" },
    body: Buffer.concat(chunks)
  }).formData()
  const body: Record<string, unknown> = {}
  const files: Array<Record<string, string>> = []
  for (const [name, value] of form.entries()) {
    if (typeof value === "string") body[name] = name === "n" ? Number(value) : value
    else
      files.push({
        field: name,
        name: value.name,
        type: value.type,
        base64: Buffer.from(await value.arrayBuffer()).toString("base64")
      })
  }
  body.files = files
  return body
}

const openAiError = (message: string, type: string, code: string | null = null) => ({
  error: { message, type, param: null, code }
})

const HTML =
  "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Application error</h1><p>secret internals</p></body></html>"

export const startFakeUpstream = (options: FakeUpstreamOptions = {}): Promise<FakeUpstream> => {
  const calls = new Map<string, Array<Record<string, unknown>>>()
  /** When each call arrived, on the fake's own clock (ms): the waits between a client's retries. */
  const arrivals = new Map<string, Array<number>>()
  /** Calls whose client went away before the answer: what cancelling a request must produce. */
  const aborted = new Map<string, number>()
  /** Calls under way per id, and the most there ever were at once: concurrency observed, not inferred. */
  const inFlight = new Map<string, number>()
  const peak = new Map<string, number>()
  /** Long polls of `/__wait`, each answered once its count is reached. */
  const waiters = new Set<{ readonly id: string; readonly reached: () => boolean; readonly answer: () => void }>()
  const counts = (id: string) => ({
    calls: calls.get(id)?.length ?? 0,
    inFlight: inFlight.get(id) ?? 0,
    aborted: aborted.get(id) ?? 0
  })
  const wake = (id: string) => {
    for (const waiter of waiters) {
      if (waiter.id === id && waiter.reached()) {
        waiters.delete(waiter)
        waiter.answer()
      }
    }
  }
  /** Answers held by `hold`, released by `/__release`. */
  const held = new Map<string, Array<() => void>>()
  /** Ids released already: a call that arrives after its release is not held. */
  const released = new Set<string>()
  const hold = (id: string, response: ServerResponse) =>
    new Promise<void>((release) => {
      if (released.has(id)) return release()
      held.set(id, [...(held.get(id) ?? []), release])
      response.on("close", release)
    })
  const track = (id: string, response: ServerResponse) => {
    const now = (inFlight.get(id) ?? 0) + 1
    inFlight.set(id, now)
    peak.set(id, Math.max(peak.get(id) ?? 0, now))
    response.on("close", () => {
      inFlight.set(id, (inFlight.get(id) ?? 1) - 1)
      if (!response.writableFinished) aborted.set(id, (aborted.get(id) ?? 0) + 1)
      wake(id)
    })
    wake(id)
  }
  const sockets = new Set<import("node:net").Socket>()
  const randomFault = () => {
    const draw = Math.random()
    const rates = options.faultRates
    if (rates === undefined) return "ok"
    return draw < rates.hang ? "hang" : draw < rates.hang + rates.unavailable ? "503" : "ok"
  }

  const server: Server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://fake")
    if (request.method === "GET" && url.pathname === "/__calls") {
      const id = url.searchParams.get("id") ?? ""
      const requests = calls.get(id) ?? []
      return sendJson(response, 200, {
        calls: requests.length,
        requests,
        arrivals: arrivals.get(id) ?? [],
        aborted: aborted.get(id) ?? 0,
        peakInFlight: peak.get(id) ?? 0
      })
    }
    if (request.method === "GET" && url.pathname === "/__wait") {
      const id = url.searchParams.get("id") ?? ""
      const [name, target] = ([...url.searchParams].find(([key]) => key !== "id") ?? ["calls", "0"]) as [string, string]
      // At least the value: a wait asked after the count went past it (three calls arriving at once) still ends.
      const reached = () => ((counts(id) as Record<string, number>)[name] ?? 0) >= Number(target)
      const answer = () => sendJson(response, 200, counts(id))
      if (reached()) return answer()
      const waiter = { id, reached, answer }
      waiters.add(waiter)
      response.on("close", () => waiters.delete(waiter))
      return
    }
    if (request.method === "POST" && url.pathname === "/__release") {
      const id = url.searchParams.get("id") ?? ""
      const releases = held.get(id) ?? []
      held.delete(id)
      released.add(id)
      for (const release of releases) release()
      return sendJson(response, 200, { released: releases.length })
    }
    const file = request.method === "GET" ? /^\/files\/(png|jpeg|webp)-(\d+)\.\w+$/.exec(url.pathname) : null
    if (file !== null) {
      response.writeHead(200, { "content-type": `image/${file[1]}` })
      return response.end(Buffer.from(imageBase64(file[1] ?? "png", Number(file[2])), "base64"))
    }
    if (request.method === "POST" && url.pathname === "/v1/images/generations") return openAi(request, response)
    if (request.method === "POST" && (url.pathname === "/v1/images/edits" || url.pathname === "/v1/images/variations")) {
      return openAi(request, response, url.pathname.endsWith("variations") ? "variation" : "edit")
    }
    if (request.method !== "POST" || url.pathname !== "/api/generate-images") {
      return sendJson(response, 404, { error: "Not found" })
    }
    let body: Record<string, unknown>
    try {
      body = JSON.parse(await readBody(request)) as Record<string, unknown>
    } catch {
      return sendJson(response, 400, { error: "Invalid request parameters" })
    }
    const { prompt, provider, modelId } = body
    if (typeof prompt !== "string" || typeof provider !== "string" || typeof modelId !== "string") {
      return sendJson(response, 400, { error: "Invalid request parameters" })
    }
    const steer = directives(prompt)
    const id = steer.id ?? ""
    const seen = calls.get(id) ?? []
    seen.push({ ...body, headers: { origin: request.headers.origin, referer: request.headers.referer } })
    arrivals.set(id, [...(arrivals.get(id) ?? []), performance.now()])
    calls.set(id, seen)
    const faults = (steer.faults ?? "").split(",").filter((f) => f !== "")
    const fault = faults[seen.length - 1] ?? randomFault()
    track(id, response)
    const delay = Number(steer.delay ?? options.delayMs ?? 0)
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay))
    if (steer.hold !== undefined) await hold(id, response)
    if (response.destroyed) return

    if (fault === "hang") return // never answers; the client's timeout has to end it
    if (fault === "html") {
      response.writeHead(200, { "content-type": "text/html" })
      return response.end(HTML)
    }
    if (fault === "html502") {
      response.writeHead(502, { "content-type": "text/html" })
      return response.end(HTML)
    }
    if (fault === "noimage") return sendJson(response, 200, { provider })
    if (fault === "cut" || fault === "stall" || fault === "badjson") {
      const image = imageBase64(steer.format ?? "png", Number(steer.bytes ?? options.imageBytes ?? 64))
      const whole = `{"provider":"${provider}","image":"${image}"${fault === "badjson" ? ',"seed":}' : "}"}`
      response.writeHead(200, { "content-type": "application/json", "content-length": String(whole.length) })
      if (fault === "badjson") return response.end(whole)
      response.write(whole.slice(0, whole.length / 2))
      // `stall`: the rest never comes; the connection stays open until the gateway lets it go.
      return fault === "cut" ? setTimeout(() => response.destroy(), 10) : undefined
    }
    if (fault === "dirty") {
      // A valid image's base64 with markdown and a raw newline past the first bytes: what a hostile upstream could send.
      const clean = imageBase64(steer.format ?? "png", Number(steer.bytes ?? options.imageBytes ?? 64))
      response.writeHead(200, { "content-type": "application/json" })
      return response.end(
        `{"provider":"${provider}","image":"${clean.slice(0, 200)})![x](https://evil.example/x.png)\ndata: injected${clean.slice(200)}"}`
      )
    }
    if (fault.startsWith("429")) {
      const seconds = fault.split(":")[1] ?? "1"
      return sendJson(response, 429, { error: "Too many requests" }, { "retry-after": seconds })
    }
    if (/^\d{3}$/.test(fault)) {
      const status = Number(fault)
      const error = status === 400 ? "Invalid request parameters" : "Failed to generate image. Please try again later."
      return sendJson(response, status, { error })
    }
    const format = steer.format ?? "png"
    const size = Number(steer.bytes ?? options.imageBytes ?? 64)
    const image = steer.vary === undefined ? imageBase64(format, size) : variedBase64(format, size, seen.length)
    return sendJson(response, 200, { provider, image })
  })
  /** The OpenAI images API, as OpenAI-compatible providers serve it. */
  async function openAi(request: IncomingMessage, response: ServerResponse, edit?: "edit" | "variation") {
    if (request.headers.authorization !== `Bearer ${FAKE_OPENAI_KEY}`) {
      return sendJson(response, 401, openAiError("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
    }
    let body: Record<string, unknown>
    try {
      body =
        edit === undefined
          ? (JSON.parse(await readBody(request)) as Record<string, unknown>)
          : { ...(await editForm(request)), [edit]: true }
      // A variation has no prompt to steer by: its calls are counted under the id `variation`.
      if (edit === "variation") body.prompt ??= "[[id=variation]]"
    } catch {
      return sendJson(response, 400, openAiError("We could not parse the body of your request.", "invalid_request_error"))
    }
    const { prompt, model } = body
    const n = typeof body.n === "number" ? body.n : 1
    if (typeof prompt !== "string" || typeof model !== "string") {
      return sendJson(response, 400, openAiError("'prompt' and 'model' are required.", "invalid_request_error"))
    }
    const steer = directives(prompt)
    const id = steer.id ?? ""
    const seen = calls.get(id) ?? []
    seen.push({ ...body, api: "openai" })
    arrivals.set(id, [...(arrivals.get(id) ?? []), performance.now()])
    calls.set(id, seen)
    const own = steer[`faults.${model}`]
    const faults = (own ?? steer.faults ?? "").split(",").filter((f) => f !== "")
    const index = own === undefined ? seen.length - 1 : seen.filter((call) => call.model === model).length - 1
    const [fault = "ok", held] = (faults[index] ?? "ok").split("~")
    track(id, response)
    const delay = Number(steer.delay ?? options.delayMs ?? 0)
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay))
    if (steer.hold !== undefined || held === "hold") await hold(id, response)
    if (response.destroyed) return
    if (fault === "hang") return
    if (fault === "cut") {
      const whole = JSON.stringify({
        created: 1,
        data: [{ b64_json: imageBase64(steer.format ?? "png", Number(steer.bytes ?? 4096)) }]
      })
      response.writeHead(200, { "content-type": "application/json", "content-length": String(whole.length) })
      response.write(whole.slice(0, whole.length / 2))
      return setTimeout(() => response.destroy(), 10)
    }
    if (fault.startsWith("429")) {
      const seconds = fault.split(":")[1] ?? "1"
      return sendJson(response, 429, openAiError("Rate limit reached.", "rate_limit_error"), { "retry-after": seconds })
    }
    if (/^\d{3}$/.test(fault)) {
      const status = Number(fault)
      const message = status === 400 ? "Your request was rejected as a result of our safety system." : "The server had an error."
      return sendJson(response, status, openAiError(message, status === 400 ? "invalid_request_error" : "server_error"))
    }
    const format = steer.format ?? "png"
    const size = Number(steer.bytes ?? options.imageBytes ?? 64)
    if (fault === "dirty") {
      // As on the ai-sdk protocol, but valid JSON: the markdown and the newline are in the decoded string.
      const clean = imageBase64(format, size)
      const dirty = `${clean.slice(0, 200)})![x](https://evil.example/x.png)\ndata: injected${clean.slice(200)}`
      return sendJson(response, 200, { created: 1, data: Array.from({ length: n }, () => ({ b64_json: dirty })) })
    }
    const origin = `http://${request.headers.host}`
    const data = Array.from({ length: n }, () =>
      steer.answer === "url"
        ? { url: `${origin}/files/${format}-${size}.${EXTENSIONS[format] ?? "bin"}` }
        : { b64_json: steer.vary === undefined ? imageBase64(format, size) : variedBase64(format, size, seen.length) }
    )
    return sendJson(response, 200, { created: Math.floor(Date.now() / 1000), data })
  }

  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })

  return new Promise((resolve) => {
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => done())
          })
      })
    })
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const index = process.argv.indexOf(`--${name}`)
    return index === -1 ? undefined : Number(process.argv[index + 1])
  }
  const upstream = await startFakeUpstream({ port: arg("port") ?? 8788, delayMs: arg("delay"), imageBytes: arg("bytes") })
  console.log(`fake upstream listening on ${upstream.url}`)
}

/**
 * What the fuzzer sends: valid requests sampled from the contract's own Schemas (Effect's Schema-derived
 * arbitraries), then mutated by fast-check: wrong types, huge numbers, odd unicode, null bytes, deep
 * nesting, duplicate keys, truncated bodies, odd content types, methods, paths and headers. Shared by the
 * fuzz test in `npm test` (in-process, about 1,000 cases) and `npm run fuzz` (against `wrangler dev`).
 */
import { Arbitrary, Effect, Schema } from "effect"
import { HttpApi } from "effect/http-api"
import fc from "fast-check"
import { ChatCompletionRequest } from "../../src/domain/Chat.ts"
import { ImageGenerationRequest } from "../../src/domain/ImageGeneration.ts"
import { Api, ProbeRequest } from "../../src/http/Api.ts"

export interface FuzzCase {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | Uint8Array | undefined
}

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** Every route of the contract, `:params` filled with a plausible value. */
export const contractRoutes = (): ReadonlyArray<{ readonly method: string; readonly path: string }> => {
  const routes: Array<{ method: string; path: string }> = []
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      routes.push({ method: endpoint.method, path: endpoint.path.replace(/:[A-Za-z]+/g, "local") })
    }
  })
  return routes
}

const encodeImages = Schema.encodeSync(ImageGenerationRequest)
const encodeChat = Schema.encodeSync(ChatCompletionRequest)
const encodeProbe = Schema.encodeSync(ProbeRequest)

/** Valid payloads per POST route, sampled from the Schemas the gateway decodes them with. */
export const sampleSeeds = (count: number, seed = 1): Promise<Readonly<Record<string, ReadonlyArray<Json>>>> =>
  Effect.runPromise(
    Effect.all({
      images: Arbitrary.sampleEffect(Arbitrary.schema(ImageGenerationRequest), { count, seed }),
      chat: Arbitrary.sampleEffect(Arbitrary.schema(ChatCompletionRequest), { count, seed }),
      probe: Arbitrary.sampleEffect(Arbitrary.schema(ProbeRequest), { count, seed })
    })
  ).then(({ images, chat, probe }) => ({
    "/v1/images/generations": images.map((value) => encodeImages(value) as Json),
    "/v1/chat/completions": chat.map((value) => encodeChat(value) as Json),
    "/v1/gateway/probe": probe.map((value) => encodeProbe(value) as Json)
  }))

const nested = (depth: number, open: string, close: string) => `${open.repeat(depth)}${close.repeat(depth)}`

/** Values that break naive code: wrong types, extremes, inherited names, control characters, odd unicode. */
const oddValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    false,
    0,
    -1,
    -0,
    1.5,
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER + 2,
    "",
    " ",
    "constructor",
    "__proto__",
    "toString",
    "\u0000",
    "a\u0000b",
    "\ud800",
    "😀".repeat(50),
    "x".repeat(40_000),
    "auto",
    "0x0",
    "99999x99999",
    "--n 11",
    "a --ar 0:0",
    [],
    {},
    [null],
    { __proto__: null } as Json
  ),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>
)

const FIELDS = [
  "model",
  "prompt",
  "n",
  "size",
  "response_format",
  "stream",
  "quality",
  "style",
  "messages",
  "stream_options",
  "output_compression",
  "partial_images"
]

const setField = (body: Json, key: string, value: Json): Json =>
  typeof body === "object" && body !== null && !Array.isArray(body) ? { ...body, [key]: value } : { [key]: value }

/** Most valid seeds ask for the offline model at a small size, so the generation path runs without making the run slow. */
const cheap = (body: Json, model: Json): Json => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return body
  const out: Record<string, Json> = { ...(body as Record<string, Json>), model }
  if ("prompt" in out) {
    out.size = "64x64"
    out.n = typeof out.n === "number" ? Math.min(Math.max(1, Math.trunc(out.n)), 2) : null
  }
  return out
}

type BodyMaker = (seed: Json) => fc.Arbitrary<string | Uint8Array | undefined>

const bodies: ReadonlyArray<BodyMaker> = [
  // A valid seed as it is.
  (seed) => fc.constant(JSON.stringify(seed)),
  // One field set to an odd value, or removed.
  (seed) =>
    fc.tuple(fc.constantFrom(...FIELDS), oddValue, fc.boolean()).map(([key, value, remove]) => {
      if (!remove) return JSON.stringify(setField(seed, key, value))
      const copy = { ...(seed as Record<string, Json>) }
      delete copy[key]
      return JSON.stringify(copy)
    }),
  // A random key with a random value.
  (seed) => fc.tuple(fc.string({ maxLength: 12 }), oddValue).map(([key, value]) => JSON.stringify(setField(seed, key, value))),
  // Cut off anywhere.
  (seed) =>
    fc.nat().map((cut) => {
      const text = JSON.stringify(seed)
      return text.slice(0, cut % Math.max(1, text.length))
    }),
  // Duplicate keys: the last one wins in JSON.parse; the first must not be trusted either.
  (seed) =>
    oddValue.map((value) => {
      const text = JSON.stringify(seed)
      return text.startsWith("{") && text.length > 2 ? `{"prompt":${JSON.stringify(value)},"model":1,${text.slice(1)}` : text
    }),
  // Deep nesting, as the whole body or in a field.
  () =>
    fc.constantFrom(
      nested(5000, "[", "]"),
      nested(3000, '{"a":', "}").replace(/:}/g, ":1}"),
      `{"prompt":${nested(2000, "[", "]")}}`
    ),
  // Any JSON at all, or any bytes.
  () => fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)),
  () => fc.uint8Array({ maxLength: 200 }),
  () => fc.constantFrom(undefined, "", "null", "[]", "{}", '"x"', "1e999", "\ufeff{}", '{"prompt":"\\ud800"}')
]

/** Mostly JSON, so most cases reach the handlers; the odd ones test the edge. */
const CONTENT_TYPES = [
  ...Array.from({ length: 12 }, () => "application/json"),
  "application/json; charset=utf-8",
  "application/vnd.api+json",
  "application/json; charset=utf-16",
  "text/plain",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "",
  "json",
  "application/json, text/plain"
]

const ODD_PATHS = [
  "/v1/images/generations/",
  "/v1//images/generations",
  "/V1/IMAGES/GENERATIONS",
  "/v1/images/generations/../../v1/models",
  "/v1/models/%00",
  "/v1/models/%E0%A4%A",
  "/v1/models/constructor",
  "/v1/models/__proto__",
  `/v1/models/${"a".repeat(5000)}`,
  "/v1/gateway/requests?limit=-1",
  "/v1/gateway/requests?limit=1e9",
  "/v1/gateway/stats?window=__proto__",
  "/v1/gateway/stats?window=1h&window=24h",
  "/images/..%2f..%2fsecret.png",
  "/images/00000000000000000000000000000000.png",
  "/v1/nothing",
  "/v1",
  "/%",
  "/health?x=%ZZ"
]

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]

/** What a client could put in Authorization: the key, nothing, wrong keys, other schemes, oversized values. */
const authorization = (key: string) =>
  fc.constantFrom<string | undefined>(
    ...Array.from({ length: 12 }, () => `Bearer ${key}`),
    undefined,
    "Bearer ",
    "Bearer wrong-key",
    `Basic ${btoa(`user:${key}`)}`,
    `bearer ${key}`,
    `Bearer ${key} extra`,
    `Bearer ${"k".repeat(10_000)}`
  )

/** A request for one case; `key` is the gateway's valid key, `models` the models a valid seed may ask for. */
export const fuzzCase = (
  seeds: Readonly<Record<string, ReadonlyArray<Json>>>,
  key: string,
  models: ReadonlyArray<Json>
): fc.Arbitrary<FuzzCase> => {
  const routes = contractRoutes()
  const route = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...routes) },
    { weight: 2, arbitrary: fc.record({ method: fc.constantFrom(...METHODS), path: fc.constantFrom(...ODD_PATHS) }) }
  )
  return fc
    .record({
      route,
      // Mostly the route's own method; sometimes another.
      method: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
      seedIndex: fc.nat(),
      model: fc.constantFrom(...models),
      body: fc.nat(),
      contentType: fc.constantFrom(...CONTENT_TYPES),
      authorization: authorization(key),
      extra: fc.dictionary(
        fc.constantFrom("origin", "accept", "accept-encoding", "x-stainless-retry-count", "cache-control", "range", "x-odd"),
        fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom("*", "no-cache", "bytes=abc", "gzip, br", "text/event-stream")),
        { maxKeys: 3 }
      )
    })
    .chain((picked) => {
      const method = picked.method ?? picked.route.method
      const pool = seeds[picked.route.path.split("?")[0] ?? ""] ?? [{}]
      const seed = cheap(pool[picked.seedIndex % pool.length] ?? {}, picked.model)
      const maker = bodies[picked.body % bodies.length] ?? bodies[0]!
      const sendsBody = method !== "GET" && method !== "HEAD"
      return (sendsBody ? maker(seed) : fc.constant(undefined)).map(
        (body): FuzzCase => ({
          method,
          path: picked.route.path,
          headers: {
            ...picked.extra,
            ...(picked.contentType === "" || !sendsBody ? {} : { "content-type": picked.contentType }),
            ...(picked.authorization === undefined ? {} : { authorization: picked.authorization })
          },
          body
        })
      )
    })
}

export const toRequest = (origin: string, fuzz: FuzzCase): Request =>
  new Request(`${origin}${fuzz.path}`, {
    method: fuzz.method,
    headers: fuzz.headers,
    ...(fuzz.body === undefined ? {} : { body: fuzz.body })
  })

export interface Verdict {
  readonly status: number
  /** Why the answer breaks the property, or undefined when it holds. */
  readonly violation: string | undefined
}

const ERROR_KEYS = "code,message,param,type"

/**
 * The property: never a 5xx; every error has OpenAI's shape (JSON `{"error": {message, type, param, code}}`)
 * and an `x-request-id`. Answers without a body (HEAD, 204, 304, 416) carry no shape to check.
 */
export const judge = async (response: Response, method: string): Promise<Verdict> => {
  const status = response.status
  const text = await response.text()
  const fail = (why: string): Verdict => ({ status, violation: `${why} (HTTP ${status}: ${text.slice(0, 200)})` })
  if (status >= 500) return fail("a 5xx")
  if (!(response.headers.get("x-request-id") ?? "").startsWith("req_")) return fail("no x-request-id")
  if (status < 400 || method === "HEAD" || status === 416) return { status, violation: undefined }
  if (!(response.headers.get("content-type") ?? "").startsWith("application/json")) return fail("an error that is not JSON")
  try {
    const body = JSON.parse(text) as { error?: Record<string, unknown> }
    const keys = Object.keys(body.error ?? {})
      .sort()
      .join(",")
    if (Object.keys(body).length !== 1 || keys !== ERROR_KEYS) return fail("not OpenAI's error shape")
    if (typeof body.error?.message !== "string" || typeof body.error?.type !== "string")
      return fail("message or type not a string")
  } catch {
    return fail("an error body that does not parse")
  }
  return { status, violation: undefined }
}

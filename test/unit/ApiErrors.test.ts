import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  BadRequest,
  BadRequestWire,
  Forbidden,
  ForbiddenWire,
  INSUFFICIENT_QUOTA,
  LIMITS_UNAVAILABLE,
  NotFound,
  NotFoundWire,
  PayloadTooLarge,
  PayloadTooLargeWire,
  RateLimited,
  RateLimitedWire,
  recordedErrorOf,
  ServerMisconfigured,
  ServerMisconfiguredWire,
  StatsUnavailable,
  StatsUnavailableWire,
  Unauthorized,
  UnauthorizedWire,
  UpstreamFailed,
  UpstreamFailedWire,
  UpstreamTimedOut,
  UpstreamTimedOutWire,
  UpstreamUnavailableNow,
  UpstreamUnavailableNowWire
} from "../../src/http/ApiErrors.ts"

/**
 * The wire form of every API error: the OpenAI body and the retry headers the SDKs read, and the way back
 * (what a typed client of `/openapi.json` decodes), so both directions of the contract are pinned.
 */

const fields = { message: "it went wrong", param: "prompt", code: "some_code" }

const wire = <A>(schema: Schema.Codec<A, unknown>, error: A) => {
  const encoded = Schema.encodeSync(schema)(error) as { body: unknown; headers: Record<string, string | undefined> }
  return { ...encoded, decoded: Schema.decodeUnknownSync(schema)(encoded) }
}

describe("API errors on the wire", () => {
  it.each([
    ["BadRequest", BadRequestWire, new BadRequest(fields), "invalid_request_error", {}],
    ["Unauthorized", UnauthorizedWire, new Unauthorized(fields), "invalid_request_error", {}],
    ["Forbidden", ForbiddenWire, new Forbidden(fields), "invalid_request_error", {}],
    ["NotFound", NotFoundWire, new NotFound(fields), "invalid_request_error", {}],
    ["PayloadTooLarge", PayloadTooLargeWire, new PayloadTooLarge(fields), "invalid_request_error", {}],
    ["UpstreamFailed", UpstreamFailedWire, new UpstreamFailed(fields), "upstream_error", { "x-should-retry": "false" }],
    ["UpstreamTimedOut", UpstreamTimedOutWire, new UpstreamTimedOut(fields), "upstream_error", { "x-should-retry": "false" }],
    [
      "ServerMisconfigured",
      ServerMisconfiguredWire,
      new ServerMisconfigured(fields),
      "server_error",
      { "x-should-retry": "false" }
    ],
    ["StatsUnavailable", StatsUnavailableWire, new StatsUnavailable(fields), "server_error", { "x-should-retry": "false" }]
  ] as const)("%s: OpenAI's body with its type, its retry advice, and back", (_, schema, error, type, headers) => {
    const { body, headers: sent, decoded } = wire(schema as Schema.Codec<typeof error, unknown>, error)
    expect(body).toEqual({ error: { ...fields, type } })
    expect(sent).toEqual(headers)
    expect(decoded).toEqual(error)
  })

  it("a 429 says when to retry, and not to when the gateway already retried or a quota is spent", () => {
    const limited = (overrides: Partial<{ code: string | null; retried: boolean }>) =>
      new RateLimited({ ...fields, code: null, retryAfterSeconds: 7, retried: false, ...overrides })
    const fresh = wire(RateLimitedWire, limited({}))
    expect(fresh.body).toEqual({ error: { ...fields, code: null, type: "rate_limit_error" } })
    expect(fresh.headers).toEqual({ "retry-after": "7" })
    // The way back reads the delay from Retry-After; whether it was retried is not on the wire.
    expect(fresh.decoded).toEqual(limited({}))
    expect(wire(RateLimitedWire, limited({ retried: true })).headers).toEqual({ "retry-after": "7", "x-should-retry": "false" })
    const quota = wire(RateLimitedWire, limited({ code: INSUFFICIENT_QUOTA }))
    expect(quota.body).toEqual({ error: { ...fields, code: INSUFFICIENT_QUOTA, type: INSUFFICIENT_QUOTA } })
    expect(quota.headers).toEqual({ "retry-after": "7", "x-should-retry": "false" })
  })

  it("a 503 says when to retry; limits that cannot be checked are the gateway's own server_error", () => {
    const open = wire(UpstreamUnavailableNowWire, new UpstreamUnavailableNow({ ...fields, retryAfterSeconds: 30 }))
    expect(open.body).toEqual({ error: { ...fields, type: "upstream_error" } })
    expect(open.headers).toEqual({ "retry-after": "30" })
    expect(open.decoded).toEqual(new UpstreamUnavailableNow({ ...fields, retryAfterSeconds: 30 }))
    const limits = wire(
      UpstreamUnavailableNowWire,
      new UpstreamUnavailableNow({ ...fields, code: LIMITS_UNAVAILABLE, retryAfterSeconds: 1 })
    )
    expect((limits.body as { error: { type: string } }).error.type).toBe("server_error")
  })

  it("decodes an answer without Retry-After as one second", () => {
    const body = { error: { ...fields, type: "rate_limit_error" } }
    expect(Schema.decodeUnknownSync(RateLimitedWire)({ body, headers: {} }).retryAfterSeconds).toBe(1)
    expect(Schema.decodeUnknownSync(UpstreamUnavailableNowWire)({ body, headers: {} }).retryAfterSeconds).toBe(1)
  })
})

describe("recordedErrorOf: what the usage record keeps of an error", () => {
  it("the code of an API error, else its type; nothing for anything else", () => {
    expect(recordedErrorOf(new BadRequest(fields))).toBe("some_code")
    expect(recordedErrorOf(new BadRequest({ ...fields, code: null }))).toBe("invalid_request_error")
    expect(recordedErrorOf(new StatsUnavailable({ ...fields, code: null }))).toBe("server_error")
    for (const other of [
      new Error("x"),
      null,
      undefined,
      "BadRequest",
      { _tag: "toString" },
      { _tag: "SomethingElse", code: "c" }
    ])
      expect(recordedErrorOf(other), String(other)).toBeUndefined()
  })
})

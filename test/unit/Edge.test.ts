import { Cause, Effect, Logger } from "effect"
import * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { describe, expect, it } from "vitest"
import { UpstreamError, UpstreamRejected } from "../../src/domain/Errors.ts"
import { answerFailure } from "../../src/http/edge/Fallbacks.ts"
import { type Checked, makeBodyCheck } from "../../src/http/edge/RequestBody.ts"
import { pathOf } from "../../src/http/edge/Responses.ts"
import { allowedMethods, takesUpload, usageEndpoint } from "../../src/http/edge/Routes.ts"
import { type Recorded, usageEvent } from "../../src/http/edge/UsageEvents.ts"
import { RequestUsage, type UsageNotes } from "../../src/services/RequestUsage.ts"
import { brokenBody } from "../support/brokenBody.ts"

/**
 * The edge's decisions on their own, in Node: which requests the statistics record and as what, which
 * methods a path serves, and the body check's answers before any handler. The workerd tests see the same
 * through whole requests; here every branch is named.
 */

describe("usageEndpoint: what the statistics record a request as", () => {
  it.each([
    ["POST", "/v1/images/generations", "images"],
    ["POST", "/v1/images/edits", "edits"],
    ["POST", "/v1/images/variations", "edits"],
    ["POST", "/v1/chat/completions", "chat"],
    ["GET", "/v1/models", "models"],
    ["GET", "/v1/models/", "models"],
    ["GET", "/v1/models/dall-e-3", "models"],
    ["GET", "/v1/models/openai/gpt-image-1", "models"],
    ["HEAD", "/v1/models", "models"],
    // HEAD is served by a GET route only.
    ["HEAD", "/v1/images/generations", "unknown"],
    ["POST", "/v1/gateway/probe", "probe"],
    // The cockpit's own reads, the key's report, liveness and preflights are not recorded.
    ["GET", "/v1/gateway/stats", undefined],
    ["GET", "/v1/gateway/status", undefined],
    ["GET", "/v1/me", undefined],
    ["GET", "/health", undefined],
    ["OPTIONS", "/v1/images/generations", undefined],
    // A recorded route asked with the wrong method, and a /v1 path nobody serves: unknown.
    ["GET", "/v1/images/generations", "unknown"],
    ["DELETE", "/v1/models", "unknown"],
    ["GET", "/v1/no/such/route", "unknown"],
    ["POST", "/v1", "unknown"],
    // An unrecorded route with the wrong method stays unrecorded; so do paths outside /v1.
    ["POST", "/v1/gateway/stats", undefined],
    ["GET", "/v1x/images/generations", undefined],
    ["GET", "/images/abc.png", undefined],
    ["GET", "/openapi.json", undefined]
  ] as const)("%s %s: %s", (method, path, expected) => {
    expect(usageEndpoint(method, path)).toBe(expected)
  })
})

describe("pathOf", () => {
  it("reads the path of what Effect gives as a request's URL (a path with its query) and of a whole URL", () => {
    expect(pathOf("/v1/models?limit=5")).toBe("/v1/models")
    expect(pathOf("/v1/images/generations")).toBe("/v1/images/generations")
    expect(pathOf("https://gateway.example/v1/models/x?y=1")).toBe("/v1/models/x")
  })
})

describe("allowedMethods and takesUpload", () => {
  it("names the methods a path is served with, from the contract", () => {
    expect(allowedMethods("/v1/images/generations")).toEqual(["POST"])
    expect(allowedMethods("/v1/models/some-model")).toEqual(["GET"])
    expect(allowedMethods("/health")).toEqual(["GET"])
    expect(allowedMethods("/v1/nothing")).toEqual([])
    // A path's pattern is the whole path: a longer one or a prefix is another path.
    expect(allowedMethods("/v1/images/generations/more")).toEqual([])
    expect(allowedMethods("/x/v1/images/generations")).toEqual([])
  })

  it("knows the edit routes, and only with their method, take uploads", () => {
    expect(takesUpload("POST", "/v1/images/edits")).toBe(true)
    expect(takesUpload("POST", "/v1/images/variations")).toBe(true)
    expect(takesUpload("GET", "/v1/images/edits")).toBe(false)
    expect(takesUpload("POST", "/v1/images/generations")).toBe(false)
    expect(takesUpload("POST", "/v1/chat/completions")).toBe(false)
  })
})

describe("makeBodyCheck: what is refused before any handler", () => {
  const MAX_BODY = 100
  const MAX_UPLOAD = 1000
  const request = (path: string, init: RequestInit & { duplex?: "half" }) =>
    HttpServerRequest.fromWeb(new Request(`http://gateway.test${path}`, init))
  const decided = async (path: string, init: RequestInit & { duplex?: "half" }): Promise<Checked | undefined> => {
    // Built per request: a mutation test switches a mutant on per test, after what runs when the file loads.
    const result = makeBodyCheck(MAX_BODY, MAX_UPLOAD)(request(path, init))
    return Effect.isEffect(result) ? Effect.runPromise(result) : result
  }
  /** The edge's own answer: its status, code and message, as the client reads them. */
  const answerOf = async (checked: Checked | undefined) => {
    if (checked === undefined || !("response" in checked)) throw new Error(`no answer: ${JSON.stringify(checked)}`)
    const body = (await HttpServerResponse.toWeb(checked.response).json()) as {
      error: { type: string; code: string; message: string }
    }
    expect(checked.error).toBe(body.error.code)
    expect(body.error.type).toBe("invalid_request_error")
    return { status: checked.response.status, code: body.error.code, message: body.error.message }
  }
  /** The request handed on instead of the original: its content type and body. */
  const handedOn = async (checked: Checked | undefined) => {
    if (checked === undefined || !("request" in checked)) throw new Error(`not handed on: ${JSON.stringify(checked)}`)
    const source = checked.request.source as Request
    return { contentType: source.headers.get("content-type"), body: await source.text() }
  }
  const sized = (type: string, length: number, body = "{}") => ({
    method: "POST",
    headers: { "content-type": type, "content-length": String(length) },
    body
  })
  const chunked = (type: string, text: string) => ({
    method: "POST",
    headers: { "content-type": type },
    body: new Blob([text]).stream(),
    duplex: "half" as const
  })

  it("lets requests without a body through untouched", async () => {
    expect(await decided("/v1/models", { method: "GET" })).toBeUndefined()
    expect(await decided("/v1/models", { method: "DELETE", headers: { "content-type": "text/plain" } })).toBeUndefined()
    // A POST without a body or a length has nothing to read: handed on, for the handler to refuse.
    expect(await decided("/v1/images/generations", { method: "POST" })).toBeUndefined()
  })

  it("takes JSON in any of its spellings, and no content type as JSON", async () => {
    for (const type of ["application/json", "Application/JSON; charset=utf-8", "  application/json ;charset=utf-8"])
      expect(await decided("/v1/images/generations", sized(type, 2)), type).toBeUndefined()
    // A string body would be typed text/plain by Request itself; bytes stay untyped.
    const untyped = { method: "POST", headers: { "content-length": "2" }, body: new TextEncoder().encode("{}") }
    expect(await decided("/v1/images/generations", untyped)).toBeUndefined()
  })

  it("hands a +json body on as application/json, the same bytes", async () => {
    const checked = await decided("/v1/images/generations", sized("application/vnd.api+json", 2))
    expect(await handedOn(checked)).toEqual({ contentType: "application/json", body: "{}" })
    // Only the type itself counts: `application/json` in a parameter does not make the type plain JSON.
    const profiled = await decided("/v1/images/generations", sized("application/ld+json; profile=application/json", 2))
    expect(await handedOn(profiled)).toEqual({ contentType: "application/json", body: "{}" })
    const streamed = await decided("/v1/images/generations", chunked("application/merge-patch+json", '{"a":1}'))
    expect(await handedOn(streamed)).toEqual({ contentType: "application/json", body: '{"a":1}' })
  })

  it("refuses any other type with a 415 that says what to send: JSON, or multipart on the edit routes", async () => {
    for (const type of [
      "text/plain",
      "application/jsonx",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "text/plain; profile=application/json"
    ]) {
      const answer = await answerOf(await decided("/v1/images/generations", sized(type, 2)))
      expect(answer, type).toMatchObject({ status: 415, code: "unsupported_media_type" })
      expect(answer.message).toContain(`'${type}'`)
      expect(answer.message).toContain("'Content-Type: application/json'")
      expect(answer.message).not.toContain("Send the edit as multipart")
    }
    for (const method of ["PUT", "PATCH"]) {
      const answer = await answerOf(await decided("/v1/models", { ...sized("text/plain", 2), method }))
      expect(answer.status, method).toBe(415)
    }
    // multipart without its boundary is no form a parser could read.
    const edit = await answerOf(await decided("/v1/images/edits", sized("multipart/form-data", 2)))
    expect(edit.status).toBe(415)
    expect(edit.message).toContain("Send the edit as multipart/form-data")
    const notMultipart = await answerOf(await decided("/v1/images/edits", sized("text/x-multipart/form-data; boundary=x", 2)))
    expect(notMultipart.status).toBe(415)
  })

  it("refuses a declared length over the limit with a 413 naming it, and takes one at the limit", async () => {
    const over = await answerOf(await decided("/v1/images/generations", sized("application/json", MAX_BODY + 1)))
    expect(over).toMatchObject({ status: 413, code: "request_too_large" })
    expect(over.message).toContain(`(${MAX_BODY} bytes)`)
    expect(await decided("/v1/images/generations", sized("application/json", MAX_BODY, "x".repeat(MAX_BODY)))).toBeUndefined()
  })

  it("gives the edit routes the upload limit, for multipart and for JSON", async () => {
    const form = "multipart/form-data; boundary=x"
    expect(await decided("/v1/images/edits", sized(form, MAX_UPLOAD))).toBeUndefined()
    expect(await decided("/v1/images/edits", sized("Multipart/Form-Data ; boundary=x", MAX_UPLOAD))).toBeUndefined()
    // A form without a declared length is left to the handler's own limit as it is read.
    expect(await decided("/v1/images/edits", chunked(form, "--x--"))).toBeUndefined()
    const over = await answerOf(await decided("/v1/images/edits", sized(form, MAX_UPLOAD + 1)))
    expect(over).toMatchObject({ status: 413, code: "request_too_large" })
    expect(over.message).toContain(`(${MAX_UPLOAD} bytes)`)
    expect(await decided("/v1/images/variations", sized("application/json", MAX_BODY + 1))).toBeUndefined()
    expect((await answerOf(await decided("/v1/images/edits", sized("application/json", MAX_UPLOAD + 1)))).status).toBe(413)
  })

  it("reads a body without Content-Length up to the limit: a buffered copy under it, a 413 over it", async () => {
    const under = await decided("/v1/images/generations", chunked("application/json", "x".repeat(MAX_BODY)))
    expect(await handedOn(under)).toEqual({ contentType: "application/json", body: "x".repeat(MAX_BODY) })
    const over = await answerOf(await decided("/v1/images/generations", chunked("application/json", "x".repeat(MAX_BODY + 1))))
    expect(over).toMatchObject({ status: 413, code: "request_too_large" })
    const upload = await decided("/v1/images/edits", chunked("application/json", "x".repeat(MAX_UPLOAD)))
    expect((await handedOn(upload)).body).toHaveLength(MAX_UPLOAD)
  })

  it("answers a body that breaks off while it is read with a 400 invalid_body", async () => {
    const broken = brokenBody()
    const answer = await answerOf(
      await decided("/v1/images/generations", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: broken,
        duplex: "half"
      })
    )
    expect(answer).toEqual({ status: 400, code: "invalid_body", message: "The request body could not be read to its end." })
  })
})

describe("answerFailure: what HttpApi left unanswered", () => {
  const answered = async (
    method: string,
    path: string,
    cause: (request: HttpServerRequest.HttpServerRequest) => Cause.Cause<unknown>
  ) => {
    const request = HttpServerRequest.fromWeb(new Request(`http://gateway.test${path}`, { method }))
    const logged: Array<string> = []
    const capture = Logger.layer([Logger.make((options) => logged.push(`${options.message} ${Cause.pretty(options.cause)}`))])
    const { response, error } = await Effect.runPromise(answerFailure(request, cause(request)).pipe(Effect.provide(capture)))
    const web = HttpServerResponse.toWeb(response)
    const body = (await web.json()) as { error: { type: string; code: string; message: string; param: unknown } }
    expect(body.error.code).toBe(error)
    return { status: web.status, headers: web.headers, error: body.error, logged }
  }
  const noRoute = (request: HttpServerRequest.HttpServerRequest) =>
    Cause.fail(new HttpServerError.HttpServerError({ reason: new HttpServerError.RouteNotFound({ request }) }))

  it("a served path with another method: 405 naming the methods, with Allow", async () => {
    const answer = await answered("DELETE", "/v1/images/generations", noRoute)
    expect(answer.status).toBe(405)
    expect(answer.headers.get("allow")).toBe("POST, OPTIONS")
    expect(answer.error).toEqual({
      type: "invalid_request_error",
      code: "method_not_allowed",
      param: null,
      message: "Method DELETE is not allowed on /v1/images/generations. Use POST."
    })
  })

  it("a path nobody serves: 404 unknown_url naming the method and path", async () => {
    const answer = await answered("GET", "/v1/nothing", noRoute)
    expect(answer.status).toBe(404)
    expect(answer.headers.get("allow")).toBeNull()
    expect(answer.error).toMatchObject({
      type: "invalid_request_error",
      code: "unknown_url",
      message: "Unknown request URL: GET /v1/nothing."
    })
    // A client's wrong URL is no fault of the gateway's: nothing is logged as one.
    expect(answer.logged).toEqual([])
  })

  it("anything else: a 500 that says nothing of the failure and tells the SDKs not to retry", async () => {
    const causes: ReadonlyArray<(request: HttpServerRequest.HttpServerRequest) => Cause.Cause<unknown>> = [
      () => Cause.die(new Error("secret detail")),
      () => Cause.fail(new Error("secret detail")),
      (request) =>
        Cause.fail(
          new HttpServerError.HttpServerError({
            reason: new HttpServerError.InternalError({ request, description: "secret detail" })
          })
        )
    ]
    for (const cause of causes) {
      const answer = await answered("POST", "/v1/images/generations", cause)
      expect(answer.status).toBe(500)
      expect(answer.headers.get("x-should-retry")).toBe("false")
      expect(answer.error).toMatchObject({
        type: "server_error",
        code: "internal_error",
        message: "The gateway failed unexpectedly while handling this request."
      })
      expect(answer.error.message).not.toContain("secret")
      // The operator finds the failure in the log instead.
      expect(answer.logged).toHaveLength(1)
      expect(answer.logged[0]).toMatch(/^unhandled failure .*secret detail/s)
    }
  })
})

describe("usageEvent: what a request is recorded as", () => {
  const STARTED = 1_700_000_000_000
  const recorded: Recorded = {
    request: HttpServerRequest.fromWeb(new Request("http://gateway.test/v1/images/generations", { method: "POST" })),
    path: "/v1/images/generations",
    endpoint: "images",
    requestId: "req_1",
    started: STARTED
  }
  const answered = (status: number) => HttpServerResponse.empty({ status })
  const notes = (overrides: Partial<UsageNotes> = {}): UsageNotes => ({
    ...RequestUsage.make(),
    model: "m/one",
    upstream: "primary",
    attempts: 1,
    prompt: "a fox",
    ...overrides
  })
  const rejected = new UpstreamError({
    reason: new UpstreamRejected({ status: 400, detail: "no" }),
    attempts: 1,
    upstream: "primary",
    failovers: 0
  })

  it("a served request: its status, no error, its latency at the moment given, the prompt only when asked to log it", () => {
    const event = usageEvent(recorded, answered(200), notes({ images: 2, key: "team" }), false, STARTED + 250)
    expect(event).toEqual({
      ts: STARTED,
      requestId: "req_1",
      method: "POST",
      path: "/v1/images/generations",
      endpoint: "images",
      key: "team",
      model: "m/one",
      upstream: "primary",
      status: 200,
      latencyMs: 250,
      attempts: 1,
      images: 2,
      failedImages: 0,
      error: null,
      stream: false,
      prompt: null,
      failovers: 0
    })
    expect(usageEvent(recorded, answered(200), notes({ images: 2 }), true, STARTED).prompt).toBe("a fox")
  })

  it("an error answer: the code noted where it was made, else its status; a 401 counted apart", () => {
    const noted = usageEvent(recorded, answered(400), notes({ error: "invalid_value" }), false, STARTED)
    expect([noted.status, noted.error, noted.endpoint]).toEqual([400, "invalid_value", "images"])
    expect(usageEvent(recorded, answered(400), notes(), false, STARTED).error).toBe("http_400")
    expect(usageEvent(recorded, answered(399), notes(), false, STARTED).error).toBeNull()
    const refused = usageEvent(recorded, answered(401), notes({ error: "invalid_api_key" }), false, STARTED)
    expect([refused.endpoint, refused.error]).toEqual(["unauthorized", "invalid_api_key"])
  })

  it("a stream that answered 200 and whose images all failed: the error it reported in-band", () => {
    const failed = usageEvent(recorded, answered(200), notes({ images: 0, failure: rejected }), false, STARTED)
    expect([failed.status, failed.error]).toEqual([400, "upstream_rejected"])
    // Some images came: a partial success, recorded as served.
    const partial = usageEvent(recorded, answered(200), notes({ images: 1, failure: rejected }), false, STARTED)
    expect([partial.status, partial.error]).toEqual([200, null])
    // An error answer keeps its own status and code.
    for (const status of [400, 502]) {
      const refused = usageEvent(recorded, answered(status), notes({ failure: rejected, error: "noted" }), false, STARTED)
      expect([refused.status, refused.error], String(status)).toEqual([status, "noted"])
    }
    // No failure noted: nothing to report but the status.
    const empty = usageEvent(recorded, answered(200), notes({ images: 0 }), false, STARTED)
    expect([empty.status, empty.error]).toEqual([200, null])
  })

  it("a client that went away: 499 client_closed_request, whatever was answered", () => {
    for (const status of [200, 502]) {
      const closed = usageEvent(recorded, answered(status), notes({ clientClosed: true, failure: rejected }), false, STARTED)
      expect([closed.status, closed.error], String(status)).toEqual([499, "client_closed_request"])
    }
  })
})

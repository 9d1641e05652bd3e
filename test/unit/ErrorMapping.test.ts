import { assert, describe, it } from "@effect/vitest"
import {
  InvalidRequest,
  KeyLimitExceeded,
  LimiterUnavailable,
  ModelNotFound,
  UpstreamCircuitOpen,
  UpstreamError,
  type UpstreamFailure,
  UpstreamMalformed,
  UpstreamRejected,
  UpstreamTimeout,
  UpstreamUnavailable
} from "../../src/domain/Errors.ts"
import {
  invalidRequest,
  keyLimitError,
  limiterUnavailable,
  modelNotFound,
  upstreamError,
  upstreamOutcome
} from "../../src/http/ErrorMapping.ts"

/**
 * The one place that turns a domain failure into a status and an OpenAI error: every reason, with the
 * fields SDKs act on (status, type, code, param, the retry advice) and the message a person reads.
 */

const failed = (reason: UpstreamFailure, attempts = 1) =>
  new UpstreamError({ reason, attempts, upstream: "primary", failovers: 0 })

const outcome = (reason: UpstreamFailure, attempts = 1) => upstreamOutcome(failed(reason, attempts))

/** An API error's fields as plain data: its own enumerable ones and the message, which Error keeps apart. */
const fieldsOf = (error: { readonly message: string }): Record<string, unknown> => ({ ...error, message: error.message })

describe("a request the gateway refuses itself", () => {
  it("an unknown model is a 404 on model that points at /v1/models", () => {
    assert.deepStrictEqual(fieldsOf(modelNotFound(new ModelNotFound({ model: "dall-e-9" }))), {
      _tag: "NotFound",
      message: "The model 'dall-e-9' does not exist. GET /v1/models lists the models this gateway serves.",
      param: "model",
      code: "model_not_found"
    })
  })

  it("an invalid request keeps the field and code the domain named", () => {
    const error = new InvalidRequest({ message: "n must be at most 10.", param: "n", code: "invalid_value" })
    assert.deepStrictEqual(fieldsOf(invalidRequest(error)), {
      _tag: "BadRequest",
      message: "n must be at most 10.",
      param: "n",
      code: "invalid_value"
    })
  })
})

describe("an upstream failure as the client sees it", () => {
  it("a timeout is a 504 that says how long was waited, or that the upstream timed out itself", () => {
    assert.deepStrictEqual(outcome(new UpstreamTimeout({ timeoutMs: 30_000 })), {
      status: 504,
      body: {
        error: {
          message:
            "The upstream did not produce an image within 30000 ms. The generation was not retried, since each try costs a full generation.",
          type: "upstream_error",
          param: null,
          code: "upstream_timeout"
        }
      }
    })
    assert.strictEqual(
      outcome(new UpstreamTimeout({ timeoutMs: null })).body.error.message,
      "The upstream timed out while generating the image. The generation was not retried, since each try costs a full generation."
    )
  })

  it("an open circuit is a 503 with the wait in whole seconds, at least 1 and at most 60", () => {
    const waitOf = (retryAfterMs: number) => fieldsOf(upstreamError(failed(new UpstreamCircuitOpen({ retryAfterMs }))))
    assert.deepStrictEqual(outcome(new UpstreamCircuitOpen({ retryAfterMs: 12_300 })), {
      status: 503,
      body: {
        error: {
          message:
            "The upstream is unavailable after repeated failures, and no fallback model could serve the request. Try again in 13 s.",
          type: "upstream_error",
          param: null,
          code: "upstream_unavailable"
        }
      }
    })
    assert.deepStrictEqual(
      [12_300, 0, 600_000].map((ms) => {
        const { _tag, retryAfterSeconds } = waitOf(ms)
        return [_tag, retryAfterSeconds]
      }),
      [
        ["UpstreamUnavailableNow", 13],
        ["UpstreamUnavailableNow", 1],
        ["UpstreamUnavailableNow", 60]
      ]
    )
  })

  it("an upstream that rate limits after the retries is a 429 that tells SDKs not to retry again", () => {
    const limited = (retryAfterMs: number | null, attempts: number) =>
      upstreamError(failed(new UpstreamUnavailable({ status: 429, retryAfterMs, detail: null }), attempts))
    assert.deepStrictEqual(outcome(new UpstreamUnavailable({ status: 429, retryAfterMs: null, detail: null }), 3), {
      status: 429,
      body: {
        error: {
          message: "The upstream is rate limiting requests (after 3 attempts). Try again in 10 s.",
          type: "rate_limit_error",
          param: null,
          code: "rate_limit_exceeded"
        }
      }
    })
    assert.deepStrictEqual(fieldsOf(limited(2_500, 3)), {
      _tag: "RateLimited",
      message: "The upstream is rate limiting requests (after 3 attempts). Try again in 3 s.",
      param: null,
      code: "rate_limit_exceeded",
      retryAfterSeconds: 3,
      retried: true
    })
    assert.deepStrictEqual(fieldsOf(limited(null, 1)), {
      _tag: "RateLimited",
      message: "The upstream is rate limiting requests (after 1 attempt). Try again in 10 s.",
      param: null,
      code: "rate_limit_exceeded",
      retryAfterSeconds: 10,
      retried: false
    })
  })

  it("an upstream that stays unavailable is a 502 naming its status or the network, the attempts and its detail", () => {
    assert.deepStrictEqual(outcome(new UpstreamUnavailable({ status: 503, retryAfterMs: null, detail: "busy" }), 3), {
      status: 502,
      body: {
        error: {
          message: "The upstream is unavailable (HTTP 503) after 3 attempts: busy",
          type: "upstream_error",
          param: null,
          code: "upstream_error"
        }
      }
    })
    assert.strictEqual(
      outcome(new UpstreamUnavailable({ status: null, retryAfterMs: null, detail: null })).body.error.message,
      "The upstream is unavailable (network error) after 1 attempt."
    )
  })

  it("a rejection of the request itself (400, 422) is the client's 400 on the field the upstream names, else the prompt", () => {
    assert.deepStrictEqual(outcome(new UpstreamRejected({ status: 400, detail: "unsafe prompt" })), {
      status: 400,
      body: {
        error: {
          message: "The upstream rejected the request (HTTP 400): unsafe prompt",
          type: "invalid_request_error",
          param: "prompt",
          code: "upstream_rejected"
        }
      }
    })
    assert.deepStrictEqual(outcome(new UpstreamRejected({ status: 422, detail: null, param: "size" })), {
      status: 400,
      body: {
        error: {
          message: "The upstream rejected the request (HTTP 422).",
          type: "invalid_request_error",
          param: "size",
          code: "upstream_rejected"
        }
      }
    })
  })

  it("a 429 the upstream does not retry (its quota) is a 429 with a minute's wait", () => {
    assert.deepStrictEqual(fieldsOf(upstreamError(failed(new UpstreamRejected({ status: 429, detail: "quota spent" })))), {
      _tag: "RateLimited",
      message: "The upstream refused the request for its quota: quota spent",
      param: null,
      code: "rate_limit_exceeded",
      retryAfterSeconds: 60,
      retried: false
    })
    assert.strictEqual(outcome(new UpstreamRejected({ status: 429, detail: null })).status, 429)
  })

  it("an upstream that refuses the gateway (401, 403, 404) is the operator's 502, not the client's fault", () => {
    for (const status of [401, 403, 404]) {
      assert.deepStrictEqual(outcome(new UpstreamRejected({ status, detail: "bad key" })), {
        status: 502,
        body: {
          error: {
            message: `The upstream refused the gateway (HTTP ${status}); its configuration needs the operator's attention: bad key`,
            type: "upstream_error",
            param: null,
            code: "upstream_misconfigured"
          }
        }
      })
    }
    const other = outcome(new UpstreamRejected({ status: 409, detail: null }))
    assert.deepStrictEqual([other.status, other.body.error.code], [502, "upstream_error"])
  })

  it("an answer without a usable image is a 502 that says what was wrong with it", () => {
    assert.deepStrictEqual(outcome(new UpstreamMalformed({ detail: "no image in the answer" })), {
      status: 502,
      body: {
        error: {
          message: "The upstream answered without a usable image (no image in the answer).",
          type: "upstream_error",
          param: null,
          code: "upstream_error"
        }
      }
    })
  })
})

describe("a key's own limits as the client sees them", () => {
  const limit = (fields: Partial<ConstructorParameters<typeof KeyLimitExceeded>[0]>) =>
    keyLimitError(
      new KeyLimitExceeded({
        reason: "rate",
        key: "team",
        limit: 10,
        used: 0,
        requested: 1,
        retryAfterMs: 1_500,
        resetsAt: Date.UTC(2026, 11, 2),
        ...fields
      })
    )

  it("its rpm is OpenAI's rate_limit_exceeded with the wait rounded up to whole seconds, at least 1", () => {
    assert.deepStrictEqual(fieldsOf(limit({})), {
      _tag: "RateLimited",
      message: "Rate limit reached for this key: 10 requests per minute. Try again in 2 s.",
      param: null,
      code: "rate_limit_exceeded",
      retryAfterSeconds: 2,
      retried: false
    })
    const now = limit({ retryAfterMs: 0 })
    assert.deepStrictEqual([now.retryAfterSeconds, now.message.endsWith("Try again in 1 s.")], [1, true])
  })

  it("its daily images are OpenAI's insufficient_quota, on n when the request asked for several", () => {
    const many = limit({ reason: "quota", limit: 20, used: 19, requested: 4, retryAfterMs: 3_600_000 })
    assert.deepStrictEqual(fieldsOf(many), {
      _tag: "RateLimited",
      message:
        "You exceeded your current quota: this key may make 20 images a day (UTC), 19 are used and this request asks for 4. The quota resets at 2026-12-02T00:00:00Z.",
      param: "n",
      code: "insufficient_quota",
      retryAfterSeconds: 3600,
      retried: false
    })
    const one = limit({ reason: "quota", limit: 20, used: 20, requested: 1, retryAfterMs: 0 })
    assert.deepStrictEqual([one.param, one.retryAfterSeconds], [null, 1])
  })

  it("a limits store that does not answer is a 503 limits_unavailable, to try again in 5 s", () => {
    const error = limiterUnavailable(new LimiterUnavailable({ message: "The key limits store did not answer." }))
    assert.deepStrictEqual(fieldsOf(error), {
      _tag: "UpstreamUnavailableNow",
      message: "The key limits store did not answer.",
      param: null,
      code: "limits_unavailable",
      retryAfterSeconds: 5
    })
  })
})

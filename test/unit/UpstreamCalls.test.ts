import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClientRequest, HttpClientResponse } from "effect/http"
import { TestClock } from "effect/testing"
import {
  answerBody,
  imageFromBase64,
  isPlainSlice,
  parseRetryAfter,
  readLimited,
  stripDataUrl
} from "../../src/services/upstreams/UpstreamCalls.ts"
import { PNG_BASE64 } from "../support/scriptedClient.ts"

/** The helpers every upstream kind reads its answers with: status, Retry-After, size caps, data URLs. */
const request = HttpClientRequest.get("https://upstream.test/")
const response = (status: number, body: BodyInit | null, headers: Record<string, string> = {}) =>
  HttpClientResponse.fromWeb(request, new Response(body, { status, headers }))
/** A body with no Content-Length: a stream, as a chunked answer arrives. */
const chunked = (bytes: Uint8Array) =>
  new ReadableStream<Uint8Array>({
    start: (controller) => {
      controller.enqueue(bytes.subarray(0, 3))
      controller.enqueue(bytes.subarray(3))
      controller.close()
    }
  })
const text = (value: string) => new TextEncoder().encode(value)

describe("upstream answers", () => {
  it("Retry-After in seconds or as an HTTP date; blank, garbage or past means no wait", () => {
    const now = Date.parse("2026-11-30T12:00:00Z")
    assert.strictEqual(parseRetryAfter(undefined, now), null)
    assert.strictEqual(parseRetryAfter("", now), null)
    assert.strictEqual(parseRetryAfter("   ", now), null)
    assert.strictEqual(parseRetryAfter("2", now), 2000)
    assert.strictEqual(parseRetryAfter("0.5", now), 500)
    assert.strictEqual(parseRetryAfter("-3", now), 0)
    assert.strictEqual(parseRetryAfter("Mon, 30 Nov 2026 12:00:07 GMT", now), 7000)
    assert.strictEqual(parseRetryAfter("Mon, 30 Nov 2026 11:00:00 GMT", now), 0)
    assert.strictEqual(parseRetryAfter("soon", now), null)
  })

  it.effect("classifies a status: 504 is a timeout, 429 and 5xx are worth a retry, other 4xx are the request's", () =>
    Effect.gen(function* () {
      const failureOf = (status: number, body = "", headers: Record<string, string> = {}) =>
        Effect.flip(answerBody(response(status, body, headers), 1024))
      assert.strictEqual((yield* failureOf(504))._tag, "UpstreamTimeout")
      for (const status of [429, 500, 502, 503, 599]) assert.strictEqual((yield* failureOf(status))._tag, "UpstreamUnavailable")
      for (const status of [400, 401, 404, 499]) assert.strictEqual((yield* failureOf(status))._tag, "UpstreamRejected")
      assert.deepInclude(yield* failureOf(400, '{"error": {"message": "prompt too long"}}'), {
        status: 400,
        detail: "prompt too long"
      })
      assert.deepInclude(yield* failureOf(503, '{"error": "busy"}'), { detail: "busy", retryAfterMs: null })
      assert.deepInclude(yield* failureOf(503, "<html>busy</html>"), { detail: null })
      // Retry-After as a date is measured on the Clock: the TestClock here.
      yield* TestClock.setTime(Date.parse("2026-11-30T12:00:00Z"))
      assert.deepInclude(yield* failureOf(429, "", { "retry-after": "Mon, 30 Nov 2026 12:00:04 GMT" }), { retryAfterMs: 4000 })
      assert.deepInclude(yield* failureOf(503, "", { "retry-after": "3" }), { retryAfterMs: 3000 })
    })
  )

  it.effect("passes a 2xx body on whole up to the cap, declared or chunked, and refuses one byte more", () =>
    Effect.gen(function* () {
      const bytes = text("0123456789")
      assert.deepStrictEqual(yield* answerBody(response(200, bytes), 10), bytes)
      assert.deepStrictEqual(yield* answerBody(response(201, chunked(bytes)), 10), bytes)
      for (const body of [bytes, chunked(bytes)]) {
        const failure = yield* Effect.flip(answerBody(response(200, body), 9))
        assert.strictEqual(failure._tag, "UpstreamMalformed")
      }
      assert.deepStrictEqual(yield* readLimited(response(200, bytes, { "content-length": "10" }), 10), bytes)
      assert.strictEqual(yield* readLimited(response(200, bytes, { "content-length": "11" }), 10), undefined)
      assert.deepStrictEqual(yield* readLimited(response(200, null), 10), new Uint8Array())
    })
  )

  it("copies plain base64 as it is; a backslash where the format is detected sends it through the full decode", () => {
    assert.isFalse(isPlainSlice(new Uint8Array()))
    assert.isTrue(isPlainSlice(text(PNG_BASE64)))
    assert.isFalse(isPlainSlice(text(`${"A".repeat(159)}\\`)))
    assert.isTrue(isPlainSlice(text(`${"A".repeat(160)}\\`)))
    assert.isFalse(isPlainSlice(text("\\/")))
  })

  it("takes the image out of a data URL, and leaves anything else as it is", () => {
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
    assert.strictEqual(decode(stripDataUrl(text(`data:image/png;base64,${PNG_BASE64}`))), PNG_BASE64)
    assert.strictEqual(decode(stripDataUrl(text(PNG_BASE64))), PNG_BASE64)
    assert.strictEqual(decode(stripDataUrl(text("dat:,x"))), "dat:,x")
    const noComma = `data:${"x".repeat(200)},${PNG_BASE64}`
    assert.strictEqual(decode(stripDataUrl(text(noComma))), noComma, "a comma only past 128 bytes is not a data URL's")
    const image = imageFromBase64(text(`data:image/png;base64,${PNG_BASE64}`))
    assert.strictEqual("format" in image ? image.format : image._tag, "png")
    const notImage = imageFromBase64(text("R0lGODlhAQABAAAAACw="))
    assert.strictEqual("detail" in notImage ? notImage.detail : "", "the upstream's image is not PNG, JPEG or WebP")
  })
})

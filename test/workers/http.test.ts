import { describe, expect, it } from "vitest"
import { brokenBody } from "../support/brokenBody.ts"
import { call, errorOf, generate } from "./helpers.ts"

describe("auth", () => {
  it("401 without a key, code null", async () => {
    const response = await call("/v1/models", { key: null })
    expect(response.status).toBe(401)
    expect(await errorOf(response)).toMatchObject({ type: "invalid_request_error", code: null })
  })

  it("401 invalid_api_key for a wrong key, and the key is not echoed", async () => {
    const response = await call("/v1/models", { key: "sk-wrong-key-123" })
    expect(response.status).toBe(401)
    const error = await errorOf(response)
    expect(error.code).toBe("invalid_api_key")
    expect(error.message).not.toContain("sk-wrong-key-123")
  })

  it("accepts every configured key, and checks the key before the body", async () => {
    expect((await call("/v1/models", { key: "second-key" })).status).toBe(200)
    expect((await generate("{not json", { key: "nope" })).status).toBe(401)
  })
})

describe("request validation", () => {
  it.each([
    [{ prompt: "" }, "prompt"],
    [{ prompt: 42 }, "prompt"],
    [{ prompt: "x".repeat(32001).slice(0, 32001) }, "prompt"],
    [{ prompt: "ok", n: 0 }, "n"],
    [{ prompt: "ok", n: 11 }, "n"],
    [{ prompt: "ok", n: 1.5 }, "n"],
    [{ prompt: "ok", n: "2" }, "n"],
    [{ prompt: "ok", size: "huge" }, "size"],
    [{ prompt: "ok", size: 1024 }, "size"],
    [{ prompt: "ok", response_format: "png" }, "response_format"],
    [{ model: "local/preview" }, "prompt"]
  ])("400 for case %# naming the field", async (body, param) => {
    const response = await generate(body)
    expect(response.status).toBe(400)
    const error = await errorOf(response)
    expect(error).toMatchObject({ type: "invalid_request_error", param })
    expect(error.message).toContain(param)
  })

  it("400 for malformed JSON and for a body that is not an object", async () => {
    for (const body of ["{bad json", "[]", '"text"', ""]) {
      const response = await generate(body)
      expect(response.status).toBe(400)
      expect((await errorOf(response)).type).toBe("invalid_request_error")
    }
  })

  it("accepts and ignores unknown fields and fields the upstream cannot honour", async () => {
    const response = await generate({
      model: "local/preview",
      prompt: "ok",
      quality: "hd",
      style: "vivid",
      background: "transparent",
      output_format: "webp",
      output_compression: 80,
      moderation: "low",
      user: "u1",
      n: null,
      size: null,
      something_new: { nested: true }
    })
    expect(response.status).toBe(200)
  })

  it("415 for a non-JSON content type", async () => {
    const response = await generate("prompt=x", { headers: { "content-type": "application/x-www-form-urlencoded" } })
    expect(response.status).toBe(415)
    expect((await errorOf(response)).code).toBe("unsupported_media_type")
  })

  it("accepts a +json content type as JSON (it was a plain-text 415 from the router)", async () => {
    for (const type of ["application/vnd.api+json", "application/merge-patch+json; charset=utf-8"]) {
      const response = await generate(
        { model: "local/preview", prompt: "a fox", size: "64x64" },
        { headers: { "content-type": type } }
      )
      expect(response.status, type).toBe(200)
      expect(response.headers.get("content-type")).toMatch(/^application\/json/)
    }
  })

  it("a chunked body that breaks off is a 400 in OpenAI's shape, with a request id", async () => {
    const broken = brokenBody()
    const response = await generate(broken)
    // workerd hands the Worker what arrived before the break, so here it is malformed JSON; Node's test sees the read fail.
    expect(response.status).toBe(400)
    expect(response.headers.get("x-request-id")).toMatch(/^req_/)
    expect((await errorOf(response)).type).toBe("invalid_request_error")
  })

  it("413 for a body over the limit, with or without Content-Length", async () => {
    const big = JSON.stringify({ prompt: "x".repeat(1024 * 1024 + 10) })
    const sized = await generate(big, { headers: { "content-type": "application/json", "content-length": String(big.length) } })
    expect(sized.status).toBe(413)
    const chunked = await generate(new Blob([big]).stream())
    expect(chunked.status).toBe(413)
    expect((await errorOf(chunked)).code).toBe("request_too_large")
  })
})

describe("routes and protocol", () => {
  it("404 for an unknown route, 405 for a known route with the wrong method", async () => {
    const unknown = await call("/v1/nothing")
    expect(unknown.status).toBe(404)
    expect((await errorOf(unknown)).code).toBe("unknown_url")
    const wrongMethod = await call("/v1/images/generations")
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get("allow")).toContain("POST")
    await errorOf(wrongMethod)
  })

  it("answers CORS preflight with 204 and allows the SDK's headers", async () => {
    const response = await call("/v1/images/generations", {
      method: "OPTIONS",
      key: null,
      headers: {
        origin: "https://chat.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os, x-stainless-retry-count"
      }
    })
    expect(response.status).toBe(204)
    expect(response.headers.get("access-control-allow-origin")).toBe("*")
    expect(response.headers.get("access-control-allow-headers")).toContain("x-stainless-os")
    expect(response.headers.get("access-control-allow-methods")).toContain("POST")
    const actual = await call("/v1/models", { headers: { origin: "https://chat.example" } })
    expect(actual.headers.get("access-control-expose-headers")).toContain("x-request-id")
  })

  it("serves the OpenAPI document from the HttpApi definition", async () => {
    const response = await call("/openapi.json", { key: null })
    expect(response.status).toBe(200)
    const spec = (await response.json()) as { paths: Record<string, unknown> }
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(["/v1/images/generations", "/v1/models", "/v1/models/{id}"]))
  })

  it("every response carries a distinct x-request-id", async () => {
    const a = await call("/health", { key: null })
    const b = await call("/v1/nothing")
    expect(a.headers.get("x-request-id")).toMatch(/^req_/)
    expect(b.headers.get("x-request-id")).toMatch(/^req_/)
    expect(a.headers.get("x-request-id")).not.toBe(b.headers.get("x-request-id"))
  })
})

describe("GET /v1/models", () => {
  it("lists the catalogue with stable created and owned_by the provider", async () => {
    const first = (await (await call("/v1/models")).json()) as { object: string; data: Array<Record<string, unknown>> }
    const second = (await (await call("/v1/models")).json()) as typeof first
    expect(first.object).toBe("list")
    expect(first.data.length).toBeGreaterThanOrEqual(23)
    expect(first).toEqual(second)
    expect(first.data).toContainEqual({
      id: "replicate/flux-schnell",
      object: "model",
      created: expect.any(Number),
      owned_by: "replicate"
    })
    expect(first.data.map((m) => m.id)).toContain("local/preview")
  })

  it("retrieves by id, with the slash encoded or not, and resolves aliases", async () => {
    for (const path of ["/v1/models/replicate%2Fflux-schnell", "/v1/models/replicate/flux-schnell"]) {
      const model = (await (await call(path)).json()) as Record<string, unknown>
      expect(model).toMatchObject({ id: "replicate/flux-schnell", object: "model", owned_by: "replicate" })
    }
    const alias = (await (await call("/v1/models/dall-e-3")).json()) as Record<string, unknown>
    expect(alias).toMatchObject({ id: "openai/dall-e-3", owned_by: "openai" })
  })

  it("404 model_not_found for an unknown id", async () => {
    const response = await call("/v1/models/acme%2Fnothing")
    expect(response.status).toBe(404)
    expect(await errorOf(response)).toMatchObject({ code: "model_not_found", param: "model" })
    const generation = await generate({ prompt: "x", model: "acme/nothing" })
    expect(generation.status).toBe(404)
    expect((await errorOf(generation)).code).toBe("model_not_found")
  })
})

import { describe, expect, it } from "vitest"
import { eventOf, generate } from "../workers/helpers.ts"

/** This project runs with LOG_PROMPTS=true and the cache on. */
describe("usage statistics with LOG_PROMPTS=true", () => {
  it("keeps the prompt, and records a cache HIT with its images and no upstream attempt", async () => {
    const request = { model: "local/preview", prompt: `a paper boat ${crypto.randomUUID()}`, size: "64x64" }
    const miss = await generate(request)
    expect(miss.headers.get("x-cache")).toBe("MISS")
    expect(await eventOf(miss)).toMatchObject({ prompt: request.prompt, images: 1, attempts: 1 })
    const hit = await generate(request)
    expect(hit.headers.get("x-cache")).toBe("HIT")
    expect(await eventOf(hit)).toMatchObject({
      prompt: request.prompt,
      model: "local/preview",
      images: 1,
      attempts: 0,
      status: 200
    })
  })
})

import { describe, expect, it } from "vitest"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"

describe("WorkerBindings.fromEnv", () => {
  it("takes the bindings by their wrangler.toml names, objects only; AI only with a run function", () => {
    const images = { get: () => null }
    const usage = { getByName: () => ({}) }
    const ai = { run: async () => ({}) }
    expect(WorkerBindings.fromEnv({ IMAGES: images, USAGE_STATS: usage, AI: ai, OTHER: {} })).toEqual({
      images,
      usage,
      ai
    })
    // A variable that happens to share a binding's name (a string from [vars]) is no binding.
    expect(WorkerBindings.fromEnv({ IMAGES: "bucket", USAGE_STATS: "x", AI: "y" })).toEqual({
      images: undefined,
      usage: undefined,
      ai: undefined
    })
    expect(WorkerBindings.fromEnv({ AI: {} }).ai).toBeUndefined()
    expect(WorkerBindings.fromEnv({ AI: { run: "not a function" } }).ai).toBeUndefined()
    expect(WorkerBindings.fromEnv({})).toEqual({ images: undefined, usage: undefined, ai: undefined })
  })
})

import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { GatewayConfig, type GatewaySettings, testSettings as settings } from "../../src/services/GatewayConfig.ts"
import { buildCatalogue, type Catalogue, ModelRegistry } from "../../src/services/ModelRegistry.ts"
import { UpstreamRegistry } from "../../src/services/UpstreamRegistry.ts"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"

/** The upstream instances of a default deployment: the ai-sdk app and the offline model. */
const INSTANCES = new Set(["ai-sdk", "local"])
const build = (overrides: Partial<GatewaySettings> = {}, instances: ReadonlySet<string> = INSTANCES) =>
  buildCatalogue(settings(overrides), instances)
const built = (overrides: Partial<GatewaySettings> = {}, instances: ReadonlySet<string> = INSTANCES) => {
  const catalogue = build(overrides, instances)
  if (typeof catalogue === "string") throw new Error(catalogue)
  return catalogue
}
const ids = (catalogue: Catalogue) => catalogue.models.map((model) => model.id as string)

describe("catalogue", () => {
  it("holds the upstream's 22 models plus the offline one, default first", () => {
    const catalogue = built()
    assert.strictEqual(catalogue.models.length, 23)
    assert.strictEqual(catalogue.defaultModel.id, "replicate/flux-1.1-pro-ultra")
    assert.include(ids(catalogue), "fireworks/stable-diffusion-xl-1.0")
    assert.deepStrictEqual(catalogue.aliases, {
      "dall-e-3": "openai/dall-e-3",
      "dall-e-2": "openai/dall-e-2",
      "gpt-image-1": "replicate/flux-1.1-pro-ultra"
    })
  })

  it("leaves out the models of upstream instances this deployment does not have", () => {
    assert.notInclude(ids(built({}, new Set(["ai-sdk"]))), "local/preview")
    const withAi = ids(built({}, new Set(["ai-sdk", "workers-ai"])))
    assert.include(withAi, "workers-ai/flux-1-schnell")
    assert.notInclude(ids(built()), "workers-ai/flux-1-schnell")
  })

  it("fallbacks must name catalogue models and must not loop", () => {
    const primary = { id: "acme/primary", upstreamModelId: "p", fallbacks: ["replicate/flux-schnell"] }
    assert.deepStrictEqual(built({ models: [primary] }).models.find((model) => model.id === "acme/primary")?.fallbacks, [
      "replicate/flux-schnell"
    ])
    assert.include(String(build({ models: [{ ...primary, fallbacks: ["acme/none"] }] })), "'acme/none'")
    const loop = String(
      build({
        models: [
          { id: "acme/a", upstreamModelId: "a", fallbacks: ["acme/b"] },
          { id: "acme/b", upstreamModelId: "b", fallbacks: ["acme/a"] }
        ]
      })
    )
    assert.include(loop, "acme/a -> acme/b -> acme/a")
    assert.include(String(build({ models: [{ id: "acme/self", upstreamModelId: "s", fallbacks: ["acme/self"] }] })), "loop")
  })

  it("a MODELS entry naming an unknown upstream instance is a configuration error", () => {
    assert.include(String(build({ models: [{ id: "acme/x", upstreamModelId: "x", upstream: "nowhere" }] })), "'nowhere'")
  })

  it("MODELS adds entries and overrides fields of existing ones", () => {
    const catalogue = built({
      models: [
        { id: "replicate/flux-dev", upstreamModelId: "black-forest-labs/flux-dev" },
        { id: "replicate/flux-schnell", aspectRatios: ["1:1", "16:9", "9:16"] }
      ]
    })
    const added = catalogue.models.find((model) => model.id === "replicate/flux-dev")
    assert.deepStrictEqual(
      [added?.provider, added?.upstream, added?.upstreamModelId],
      ["replicate", "ai-sdk", "black-forest-labs/flux-dev"]
    )
    const changed = catalogue.models.find((model) => model.id === "replicate/flux-schnell")
    assert.deepStrictEqual(changed?.aspectRatios, ["1:1", "16:9", "9:16"])
    assert.strictEqual(changed?.upstreamModelId, "black-forest-labs/flux-schnell")
  })

  it("an override keeps every field it does not set, and a new entry gets the defaults and nothing else", () => {
    const workersAi = new Set([...INSTANCES, "workers-ai", "other"])
    const base = built({}, workersAi).models.find((model) => model.id === "workers-ai/flux-1-schnell")
    const catalogue = built(
      {
        models: [
          { id: "workers-ai/flux-1-schnell", maxN: 2 },
          { id: "acme/new", upstream: "other", upstreamModelId: "n" },
          { id: "acme/full", upstream: "other", upstreamModelId: "f", provider: "acme-labs", created: 7, description: "d" },
          { id: "acme/full2", upstream: "other", upstreamModelId: "f2", fallbacks: ["acme/full"], options: { a: 1 } },
          { id: "workers-ai/flux-1-schnell", upstream: "other", upstreamModelId: "x", description: "mine", maxN: 3 }
        ]
      },
      workersAi
    )
    const find = (id: string) => catalogue.models.find((model) => model.id === id)
    const kept = find("workers-ai/flux-1-schnell")
    assert.deepStrictEqual(
      { ...kept },
      { ...base, upstream: "other", upstreamModelId: "x", description: "mine", maxN: 3 },
      "the last entry for an id wins, over the built-in fields it does not set"
    )
    assert.deepStrictEqual(
      { ...find("acme/new") },
      {
        id: "acme/new",
        upstream: "other",
        provider: "acme",
        upstreamModelId: "n",
        created: built().models[0]?.created,
        aspectRatios: ["1:1", "16:9"]
      }
    )
    assert.deepInclude({ ...find("acme/full") }, { provider: "acme-labs", created: 7, description: "d" })
    assert.deepInclude({ ...find("acme/full2") }, { fallbacks: ["acme/full"], options: { a: 1 } })
  })

  it("a new MODELS entry without an upstream model id is a configuration error", () => {
    assert.include(String(build({ models: [{ id: "acme/new" }] })), "upstreamModelId")
  })

  it("MODEL_ALIASES overrides the defaults; aliases to unknown models are dropped", () => {
    const catalogue = built({ aliases: { "gpt-image-1": "replicate/flux-schnell", broken: "acme/none" } })
    assert.strictEqual(catalogue.aliases["gpt-image-1"], "replicate/flux-schnell")
    assert.notProperty(catalogue.aliases, "broken")
  })

  it("DEFAULT_MODEL may be an id or an alias, and must exist", () => {
    assert.strictEqual(built({ defaultModel: Option.some("local/preview") }).defaultModel.id, "local/preview")
    assert.strictEqual(built({ defaultModel: Option.some("dall-e-3") }).defaultModel.id, "openai/dall-e-3")
    assert.include(String(build({ defaultModel: Option.some("acme/none") })), "DEFAULT_MODEL")
    // Under npm start (development) the offline model is the default, unless DEFAULT_MODEL says otherwise.
    assert.strictEqual(built({ environment: "development" }).defaultModel.id, "local/preview")
    assert.strictEqual(
      built({ environment: "development", defaultModel: Option.some("dall-e-3") }).defaultModel.id,
      "openai/dall-e-3"
    )
    assert.strictEqual(
      built({ environment: "development" }, new Set(["ai-sdk"])).defaultModel.id,
      "replicate/flux-1.1-pro-ultra",
      "without the offline model, the catalogue's default"
    )
  })
})

describe("ModelRegistry", () => {
  const registry = ModelRegistry.layerNoDeps.pipe(
    Layer.provide(UpstreamRegistry.layer),
    Layer.provide(WorkerBindings.layer()),
    Layer.provide(GatewayConfig.layerTest())
  )

  it.effect("resolves ids, aliases and the default; unknown ids fail with ModelNotFound", () =>
    Effect.gen(function* () {
      const models = yield* ModelRegistry
      assert.strictEqual((yield* models.resolve("replicate/photon")).upstreamModelId, "luma/photon")
      assert.strictEqual((yield* models.resolve("dall-e-2")).id, "openai/dall-e-2")
      assert.strictEqual((yield* models.resolve(null)).id, "replicate/flux-1.1-pro-ultra")
      const error = yield* Effect.flip(models.resolve("acme/none"))
      assert.deepStrictEqual([error._tag, error.model], ["ModelNotFound", "acme/none"])
      // Lookups keyed by client input are own-key only: inherited names are unknown models, not crashes.
      for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
        assert.strictEqual((yield* Effect.flip(models.resolve(name)))._tag, "ModelNotFound")
      }
    }).pipe(Effect.provide(registry))
  )

  it.effect("an empty model is the default model; a chain lists each fallback once, depth first", () =>
    Effect.gen(function* () {
      const models = yield* ModelRegistry
      assert.strictEqual((yield* models.resolve("")).id, "acme/a")
      assert.strictEqual((yield* models.resolve(undefined)).id, "acme/a")
      assert.strictEqual((yield* models.get("acme/b")).id, "acme/b")
      assert.strictEqual((yield* Effect.flip(models.get("alias-of-b")))._tag, "ModelNotFound", "get takes ids only")
      assert.strictEqual((yield* models.resolve("alias-of-b")).id, "acme/b")
      const chain = (id: string) => Effect.map(models.get(id), (model) => models.chain(model).map((entry) => entry.id))
      assert.deepStrictEqual(yield* chain("acme/a"), ["acme/a", "acme/b", "acme/d", "acme/c"])
      assert.deepStrictEqual(yield* chain("acme/d"), ["acme/d"])
    }).pipe(
      Effect.provide(
        ModelRegistry.layerNoDeps.pipe(
          Layer.provide(UpstreamRegistry.layer),
          Layer.provide(WorkerBindings.layer()),
          Layer.provide(
            GatewayConfig.layerTest({
              defaultModel: Option.some("acme/a"),
              aliases: { "alias-of-b": "acme/b" },
              models: [
                { id: "acme/a", upstream: "local", upstreamModelId: "a", fallbacks: ["acme/b", "acme/c"] },
                { id: "acme/b", upstream: "local", upstreamModelId: "b", fallbacks: ["acme/d"] },
                { id: "acme/c", upstream: "local", upstreamModelId: "c", fallbacks: ["acme/d"] },
                { id: "acme/d", upstream: "local", upstreamModelId: "d" }
              ]
            })
          )
        )
      )
    )
  )
})

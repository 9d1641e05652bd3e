import { Context, Effect, Layer, Option, Schema } from "effect"
import { GatewayMisconfigured, ModelNotFound } from "../domain/Errors.ts"
import { ModelEntry, type ModelOverride } from "../domain/Model.ts"
import catalogue from "./catalogue.json" with { type: "json" }
import { GatewayConfig, type GatewaySettings } from "./GatewayConfig.ts"

export interface Catalogue {
  readonly defaultModel: ModelEntry
  readonly models: ReadonlyArray<ModelEntry>
  readonly aliases: Readonly<Record<string, string>>
}

const decodeEntries = Schema.decodeUnknownSync(Schema.Array(ModelEntry))
const builtInModels = decodeEntries(catalogue.models)

const applyOverride = (existing: ModelEntry | undefined, override: ModelOverride): ModelEntry | string => {
  const upstream = override.upstream ?? existing?.upstream ?? "ai-sdk"
  const provider = override.provider ?? existing?.provider ?? override.id.split("/")[0]
  const upstreamModelId = override.upstreamModelId ?? existing?.upstreamModelId
  if (upstreamModelId === undefined) return `MODELS entry '${override.id}' needs an upstreamModelId`
  return new ModelEntry({
    id: override.id as ModelEntry["id"],
    upstream,
    provider: provider ?? override.id,
    upstreamModelId,
    created: override.created ?? existing?.created ?? catalogue.models[0]!.created,
    aspectRatios: override.aspectRatios ?? existing?.aspectRatios ?? ["1:1", "16:9"],
    ...(override.description !== undefined || existing?.description !== undefined
      ? { description: override.description ?? existing?.description ?? "" }
      : {})
  })
}

/** Builds the effective catalogue: built-in data, then `MODELS` overrides, then aliases. Pure, so it is unit-tested directly. */
export const buildCatalogue = (settings: GatewaySettings): Catalogue | string => {
  const byId = new Map<string, ModelEntry>(builtInModels.map((entry) => [entry.id, entry]))
  for (const override of settings.models) {
    const entry = applyOverride(byId.get(override.id), override)
    if (typeof entry === "string") return entry
    byId.set(entry.id, entry)
  }
  if (!settings.enableLocalModel) {
    for (const [id, entry] of byId) if (entry.upstream === "local") byId.delete(id)
  }
  const aliases: Record<string, string> = { ...catalogue.aliases, ...settings.aliases }
  for (const [alias, target] of Object.entries(aliases)) {
    if (!byId.has(target)) delete aliases[alias]
  }
  const defaultId = Option.getOrElse(settings.defaultModel, () => catalogue.defaultModel)
  const defaultModel = byId.get(defaultId) ?? byId.get(aliases[defaultId] ?? "")
  if (defaultModel === undefined) return `DEFAULT_MODEL '${defaultId}' is not in the catalogue`
  return { defaultModel, models: [...byId.values()], aliases }
}

export class ModelRegistry extends Context.Service<
  ModelRegistry,
  {
    readonly catalogue: Catalogue
    /** Resolves a public id or an alias; `undefined`/`null` means the default model. */
    resolve(model: string | null | undefined): Effect.Effect<ModelEntry, ModelNotFound>
    /** Resolves only exact public ids (what `GET /v1/models/{id}` serves). */
    get(id: string): Effect.Effect<ModelEntry, ModelNotFound>
  }
>()("ai-image-gateway/services/ModelRegistry") {
  static readonly layerNoDeps = Layer.effect(
    ModelRegistry,
    Effect.gen(function* () {
      const built = buildCatalogue(yield* GatewayConfig)
      if (typeof built === "string") {
        return yield* new GatewayMisconfigured({ message: `Invalid gateway configuration: ${built}` })
      }
      const byId = new Map(built.models.map((entry) => [entry.id as string, entry]))
      const get = (id: string) => {
        const entry = byId.get(id)
        return entry === undefined ? Effect.fail(new ModelNotFound({ model: id })) : Effect.succeed(entry)
      }
      return ModelRegistry.of({
        catalogue: built,
        get,
        resolve: (model) =>
          model === undefined || model === null || model === ""
            ? Effect.succeed(built.defaultModel)
            : get(byId.has(model) ? model : (built.aliases[model] ?? model))
      })
    })
  )
}

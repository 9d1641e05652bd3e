import { Context, Effect, Layer, Option, Schema } from "effect"
import { invalidConfiguration, ModelNotFound } from "../domain/Errors.ts"
import { ModelEntry, type ModelOverride } from "../domain/Model.ts"
import catalogue from "./catalogue.json" with { type: "json" }
import { GatewayConfig, type GatewaySettings } from "./GatewayConfig.ts"
import { UpstreamRegistry } from "./UpstreamRegistry.ts"

export interface Catalogue {
  readonly defaultModel: ModelEntry
  readonly models: ReadonlyArray<ModelEntry>
  readonly aliases: Readonly<Record<string, string>>
}

/** The model the `local` upstream serves, with no network. */
const OFFLINE_MODEL = "local/preview"

const decodeEntries = Schema.decodeUnknownSync(Schema.Array(ModelEntry))
const builtInModels = decodeEntries(catalogue.models)

const applyOverride = (existing: ModelEntry | undefined, override: ModelOverride): ModelEntry | string => {
  const upstream = override.upstream ?? existing?.upstream ?? "ai-sdk"
  const provider = override.provider ?? existing?.provider ?? override.id.split("/")[0]
  const upstreamModelId = override.upstreamModelId ?? existing?.upstreamModelId
  if (upstreamModelId === undefined) return `MODELS entry '${override.id}' needs an upstreamModelId`
  const maxN = override.maxN ?? existing?.maxN
  const fallbacks = override.fallbacks ?? existing?.fallbacks
  const options = override.options ?? existing?.options
  const description = override.description ?? existing?.description
  const edits = override.edits ?? existing?.edits
  const masks = override.masks ?? existing?.masks
  const variations = override.variations ?? existing?.variations
  return new ModelEntry({
    id: override.id as ModelEntry["id"],
    upstream,
    provider: provider ?? override.id,
    upstreamModelId,
    created: override.created ?? existing?.created ?? catalogue.models[0]!.created,
    aspectRatios: override.aspectRatios ?? existing?.aspectRatios ?? ["1:1", "16:9"],
    ...(maxN === undefined ? {} : { maxN }),
    ...(fallbacks === undefined ? {} : { fallbacks }),
    ...(options === undefined ? {} : { options }),
    ...(description === undefined ? {} : { description }),
    ...(edits === undefined ? {} : { edits }),
    ...(masks === undefined ? {} : { masks }),
    ...(variations === undefined ? {} : { variations })
  })
}

/**
 * The models tried for `id`, in order: the model, then each of its `fallbacks` with their own
 * fallbacks after them (depth first), each model once.
 */
const chainOf = (byId: ReadonlyMap<string, ModelEntry>, id: string): Array<ModelEntry> => {
  const chain: Array<ModelEntry> = []
  const visit = (next: string) => {
    const entry = byId.get(next)
    if (entry === undefined || chain.includes(entry)) return
    chain.push(entry)
    for (const fallback of entry.fallbacks ?? []) visit(fallback)
  }
  visit(id)
  return chain
}

/** A model that reaches itself through `fallbacks`, as the path that shows it, or undefined. */
const findCycle = (byId: ReadonlyMap<string, ModelEntry>): ReadonlyArray<string> | undefined => {
  const done = new Set<string>()
  const walk = (id: string, path: Array<string>): ReadonlyArray<string> | undefined => {
    if (path.includes(id)) return [...path.slice(path.indexOf(id)), id]
    if (done.has(id)) return undefined
    for (const fallback of byId.get(id)?.fallbacks ?? []) {
      const cycle = walk(fallback, [...path, id])
      if (cycle !== undefined) return cycle
    }
    done.add(id)
    return undefined
  }
  for (const id of byId.keys()) {
    const cycle = walk(id, [])
    if (cycle !== undefined) return cycle
  }
  return undefined
}

/**
 * Builds the effective catalogue: built-in data, then `MODELS` overrides, then aliases. Built-in
 * entries whose upstream instance does not exist here (the offline model where it is off, Workers AI
 * without the binding) are left out; a `MODELS` entry naming an unknown instance, a fallback naming
 * an unknown model, or fallbacks that loop are configuration errors. Pure, so it is unit-tested directly.
 */
export const buildCatalogue = (settings: GatewaySettings, upstreams: ReadonlySet<string>): Catalogue | string => {
  const byId = new Map<string, ModelEntry>(builtInModels.map((entry) => [entry.id, entry]))
  for (const override of settings.models) {
    const entry = applyOverride(byId.get(override.id), override)
    if (typeof entry === "string") return entry
    if (override.upstream !== undefined && !upstreams.has(override.upstream)) {
      return `MODELS entry '${override.id}' names the upstream '${override.upstream}', which is not configured (built in: ai-sdk, local, workers-ai; more in UPSTREAMS)`
    }
    byId.set(entry.id, entry)
  }
  for (const [id, entry] of byId) if (!upstreams.has(entry.upstream)) byId.delete(id)
  for (const entry of byId.values()) {
    for (const fallback of entry.fallbacks ?? []) {
      if (!byId.has(fallback))
        return `MODELS entry '${entry.id}' has the fallback '${fallback}', which is not a model id in the catalogue`
    }
  }
  const cycle = findCycle(byId)
  if (cycle !== undefined) return `MODELS fallbacks loop: ${cycle.join(" -> ")}`
  const aliases: Record<string, string> = { ...catalogue.aliases, ...settings.aliases }
  for (const [alias, target] of Object.entries(aliases)) {
    if (!byId.has(target)) delete aliases[alias]
  }
  // Under `npm start` the offline model is the default: a newcomer's first request works with no network.
  const builtInDefault =
    settings.environment === "development" && byId.has(OFFLINE_MODEL) ? OFFLINE_MODEL : catalogue.defaultModel
  const defaultId = Option.getOrElse(settings.defaultModel, () => builtInDefault)
  const aliased = Object.hasOwn(aliases, defaultId) ? aliases[defaultId] : undefined
  const defaultModel = byId.get(defaultId) ?? (aliased === undefined ? undefined : byId.get(aliased))
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
    /** The models tried for this one: itself first, then its fallbacks. */
    chain(model: ModelEntry): ReadonlyArray<ModelEntry>
  }
>()("ai-image-gateway/services/ModelRegistry") {
  static readonly layerNoDeps = Layer.effect(
    ModelRegistry,
    Effect.gen(function* () {
      const { upstreams } = yield* UpstreamRegistry
      const built = buildCatalogue(yield* GatewayConfig, new Set(upstreams.map((upstream) => upstream.instance.id)))
      if (typeof built === "string") {
        return yield* invalidConfiguration(built)
      }
      // Keyed by client input: a Map, so `constructor` or `__proto__` is just an unknown model.
      const byId = new Map(built.models.map((entry) => [entry.id as string, entry]))
      const aliases = new Map(Object.entries(built.aliases))
      const chains = new Map(built.models.map((entry) => [entry.id as string, chainOf(byId, entry.id)]))
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
            : get(byId.has(model) ? model : (aliases.get(model) ?? model)),
        chain: (model) => chains.get(model.id) ?? [model]
      })
    })
  )
}

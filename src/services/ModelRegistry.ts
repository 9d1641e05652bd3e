import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { CallerKey } from "../domain/ApiKey.ts"
import { invalidConfiguration, ModelNotFound } from "../domain/Errors.ts"
import { ModelEntry, type ModelOverride } from "../domain/Model.ts"
import { currentKey } from "./CurrentKey.ts"
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

/**
 * Each `KEYS` entry's allow-list as model ids (aliases resolved), in the order given; a name that is
 * neither a model nor an alias here is a configuration error naming the entry and the model.
 */
export const allowLists = (
  settings: GatewaySettings,
  built: Catalogue
): ReadonlyMap<string, ReadonlyArray<ModelEntry>> | string => {
  const byId = new Map(built.models.map((entry) => [entry.id as string, entry]))
  const lists = new Map<string, ReadonlyArray<ModelEntry>>()
  for (const [index, key] of settings.keys.entries()) {
    if (key.models === undefined) continue
    const allowed: Array<ModelEntry> = []
    for (const name of key.models) {
      const id = byId.has(name) ? name : Object.hasOwn(built.aliases, name) ? built.aliases[name] : undefined
      const entry = id === undefined ? undefined : byId.get(id)
      if (entry === undefined) {
        return `KEYS entry #${index + 1} ('${key.name}') allows the model '${name}', which is not a model id or alias of this gateway (GET /v1/models lists them)`
      }
      if (!allowed.includes(entry)) allowed.push(entry)
    }
    lists.set(key.name, allowed)
  }
  return lists
}

export class ModelRegistry extends Context.Service<
  ModelRegistry,
  {
    readonly catalogue: Catalogue
    /**
     * Resolves a public id or an alias; `undefined`/`null` means the default model. For a key with an
     * allow-list, a model outside it does not exist (as OpenAI answers for a model a key cannot see), and
     * the default is the list's first model when the gateway's default is not in it.
     */
    resolve(model: string | null | undefined): Effect.Effect<ModelEntry, ModelNotFound>
    /** Resolves only exact public ids (what `GET /v1/models/{id}` serves), within the key's allow-list. */
    get(id: string): Effect.Effect<ModelEntry, ModelNotFound>
    /** The models the current key may use: `GET /v1/models`. */
    readonly visible: Effect.Effect<ReadonlyArray<ModelEntry>>
    /** A key's allow-list as model entries; undefined when it may use every model. */
    allowed(key: CallerKey): ReadonlyArray<ModelEntry> | undefined
    /** The models tried for this one: itself first, then its fallbacks. */
    chain(model: ModelEntry): ReadonlyArray<ModelEntry>
  }
>()("ai-image-gateway/services/ModelRegistry") {
  static readonly layerNoDeps = Layer.effect(
    ModelRegistry,
    Effect.gen(function* () {
      const { upstreams } = yield* UpstreamRegistry
      const settings = yield* GatewayConfig
      const built = buildCatalogue(settings, new Set(upstreams.map((upstream) => upstream.instance.id)))
      if (typeof built === "string") {
        return yield* invalidConfiguration(built)
      }
      const lists = allowLists(settings, built)
      if (typeof lists === "string") {
        return yield* invalidConfiguration(lists)
      }
      // Keyed by client input: a Map, so `constructor` or `__proto__` is just an unknown model.
      const byId = new Map(built.models.map((entry) => [entry.id as string, entry]))
      const aliases = new Map(Object.entries(built.aliases))
      const chains = new Map(built.models.map((entry) => [entry.id as string, chainOf(byId, entry.id)]))
      const allowed = (key: CallerKey) => lists.get(key.name)
      /** The entry, when the current key may use it; a model it may not use is reported as the name asked for. */
      const permitted = (entry: ModelEntry | undefined, asked: string) =>
        Effect.flatMap(currentKey, (key) => {
          const list = Option.isSome(key) ? allowed(key.value) : undefined
          return entry === undefined || (list !== undefined && !list.includes(entry))
            ? Effect.fail(new ModelNotFound({ model: asked }))
            : Effect.succeed(entry)
        })
      const defaultModel = Effect.map(currentKey, (key) => {
        const list = Option.isSome(key) ? allowed(key.value) : undefined
        return list === undefined || list.includes(built.defaultModel) ? built.defaultModel : list[0]!
      })
      return ModelRegistry.of({
        catalogue: built,
        get: (id) => permitted(byId.get(id), id),
        resolve: (model) =>
          model === undefined || model === null || model === ""
            ? defaultModel
            : permitted(byId.get(byId.has(model) ? model : (aliases.get(model) ?? model)), model),
        visible: Effect.map(currentKey, (key) => (Option.isSome(key) ? allowed(key.value) : undefined) ?? built.models),
        allowed,
        chain: (model) => chains.get(model.id) ?? [model]
      })
    })
  )
}

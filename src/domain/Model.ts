import { Schema } from "effect"

export const ModelId = Schema.String.pipe(Schema.brand("ModelId"))
export type ModelId = typeof ModelId.Type

/** Which upstream client serves a model. New upstreams add a member here. */
export const UpstreamKind = Schema.Literals(["ai-sdk", "local"])
export type UpstreamKind = typeof UpstreamKind.Type

/** One catalogue entry. The catalogue is data: `src/services/catalogue.json`, extended by `MODELS`. */
export class ModelEntry extends Schema.Class<ModelEntry>("ModelEntry")({
  id: ModelId,
  upstream: UpstreamKind,
  provider: Schema.String,
  upstreamModelId: Schema.String,
  created: Schema.Int,
  aspectRatios: Schema.Array(Schema.String),
  description: Schema.optional(Schema.String)
}) {}

/** What `MODELS` may set: everything but the id is optional and falls back to the entry it overrides. */
export const ModelOverride = Schema.Struct({
  id: Schema.String.check(Schema.isMinLength(1)),
  upstream: Schema.optional(UpstreamKind),
  provider: Schema.optional(Schema.String),
  upstreamModelId: Schema.optional(Schema.String),
  created: Schema.optional(Schema.Int),
  aspectRatios: Schema.optional(Schema.Array(Schema.String)),
  description: Schema.optional(Schema.String)
})
export type ModelOverride = typeof ModelOverride.Type

export const ModelObject = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("model"),
  created: Schema.Int,
  owned_by: Schema.String
})

export const ModelList = Schema.Struct({
  object: Schema.Literal("list"),
  data: Schema.Array(ModelObject)
})

import * as Schema from "effect/Schema"

export const ModelId = Schema.String.pipe(Schema.brand("ModelId"))
export type ModelId = typeof ModelId.Type

/**
 * One catalogue entry. The catalogue is data: `src/services/catalogue.json`, extended by `MODELS`.
 * `upstream` names an upstream *instance* (built in: `ai-sdk`, `local`, `workers-ai`; more from
 * `UPSTREAMS`), whose kind decides how the entry is called. `options` are that kind's own settings
 * for this model (which optional fields it accepts, which sizes, which inputs), checked by the kind
 * when the catalogue is built.
 */
export class ModelEntry extends Schema.Class<ModelEntry>("ModelEntry")({
  id: ModelId,
  upstream: Schema.String,
  provider: Schema.String,
  upstreamModelId: Schema.String,
  created: Schema.Int,
  aspectRatios: Schema.Array(Schema.String),
  /** Images one upstream call may return; more are requested as several calls. */
  maxN: Schema.optional(Schema.Int),
  /** Other catalogue models tried in order when this one fails after its retries, or its upstream's circuit is open. */
  fallbacks: Schema.optional(Schema.Array(Schema.String)),
  options: Schema.optional(Schema.Record(Schema.String, Schema.Unknown)),
  description: Schema.optional(Schema.String),
  /** Whether the model edits images (`/v1/images/edits`), and whether it takes a mask with them. */
  edits: Schema.optional(Schema.Boolean),
  masks: Schema.optional(Schema.Boolean),
  /** Whether the model makes variations of an image (`/v1/images/variations`). */
  variations: Schema.optional(Schema.Boolean)
}) {}

/** What `MODELS` may set: everything but the id is optional and falls back to the entry it overrides. */
export const ModelOverride = Schema.Struct({
  id: Schema.String.check(Schema.isMinLength(1)),
  upstream: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
  provider: Schema.optional(Schema.String),
  upstreamModelId: Schema.optional(Schema.String),
  created: Schema.optional(Schema.Int),
  aspectRatios: Schema.optional(Schema.Array(Schema.String)),
  maxN: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 10 }))),
  fallbacks: Schema.optional(Schema.Array(Schema.String)),
  options: Schema.optional(Schema.Record(Schema.String, Schema.Unknown)),
  description: Schema.optional(Schema.String),
  edits: Schema.optional(Schema.Boolean),
  masks: Schema.optional(Schema.Boolean),
  variations: Schema.optional(Schema.Boolean)
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

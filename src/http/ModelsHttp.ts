import * as Effect from "effect/Effect"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import type { ModelEntry } from "../domain/Model.ts"
import { ModelRegistry } from "../services/ModelRegistry.ts"
import { Api } from "./Api.ts"
import { failWith, modelNotFound } from "./ErrorMapping.ts"

export const toModelObject = (entry: ModelEntry) => ({
  id: entry.id as string,
  object: "model" as const,
  created: entry.created,
  owned_by: entry.provider
})

export const ModelsHttp = HttpApiBuilder.group(
  Api,
  "models",
  Effect.fn(function* (handlers) {
    const registry = yield* ModelRegistry
    const all = { object: "list" as const, data: registry.catalogue.models.map(toModelObject) }
    // A key with an allow-list sees only its models; every other key, the whole catalogue (built once).
    const list = Effect.map(registry.visible, (models) =>
      models === registry.catalogue.models ? all : { object: "list" as const, data: models.map(toModelObject) }
    )
    const retrieve = (id: string) =>
      registry.resolve(id).pipe(
        Effect.map(toModelObject),
        Effect.catchTag("ModelNotFound", (error) => failWith(modelNotFound(error)))
      )
    return handlers
      .handle("list", () => list)
      .handle("retrieve", ({ params }) => retrieve(params.id))
      .handle("retrieveByProvider", ({ params }) => retrieve(`${params.provider}/${params.name}`))
  })
)

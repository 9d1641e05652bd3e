import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
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
    const list = { object: "list" as const, data: registry.catalogue.models.map(toModelObject) }
    const retrieve = (id: string) =>
      registry.resolve(id).pipe(
        Effect.map(toModelObject),
        Effect.catchTag("ModelNotFound", (error) => failWith(modelNotFound(error)))
      )
    return handlers
      .handle("list", () => Effect.succeed(list))
      .handle("retrieve", ({ params }) => retrieve(params.id))
      .handle("retrieveByProvider", ({ params }) => retrieve(`${params.provider}/${params.name}`))
  })
)

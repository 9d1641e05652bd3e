import * as Effect from "effect/Effect"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import { ModelRegistry } from "../services/ModelRegistry.ts"
import { Api, VERSION } from "./Api.ts"

export const SystemHttp = HttpApiBuilder.group(
  Api,
  "system",
  Effect.fn(function* (handlers) {
    const registry = yield* ModelRegistry
    return handlers.handle("health", () =>
      Effect.succeed({ status: "ok" as const, version: VERSION, models: registry.catalogue.models.length })
    )
  })
)

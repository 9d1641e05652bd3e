import * as Effect from "effect/Effect"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import { CurrentKey } from "../services/CurrentKey.ts"
import { KeyReports } from "../services/KeyReports.ts"
import { Api } from "./Api.ts"

/** `/v1/me`: the calling key's own report, for any role (a `user` key's view of the cockpit). */
export const KeyHttp = HttpApiBuilder.group(
  Api,
  "key",
  Effect.fn(function* (handlers) {
    const reports = yield* KeyReports
    return handlers.handle("me", ({ query }) =>
      Effect.gen(function* () {
        return yield* reports.one(yield* CurrentKey, query.window ?? "24h")
      })
    )
  })
)

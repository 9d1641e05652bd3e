import * as Effect from "effect/Effect"
import type { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as SchemaIssue from "effect/SchemaIssue"
import { noteUsage } from "../services/RequestUsage.ts"
import { BadRequest, recordedErrorOf } from "./ApiErrors.ts"
import { RequestValidation } from "./Middleware.ts"

const format = SchemaIssue.makeFormatterStandardSchemaV1()

const pathOf = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined) =>
  (path ?? []).map((segment) => String(typeof segment === "object" ? segment.key : segment)).join(".")

/** The first issue of a failed request decode, phrased as OpenAI phrases it, with `param` naming the field. */
export const toBadRequest = (error: HttpApiSchemaError): BadRequest => issueToBadRequest(error.cause.issue)

export const issueToBadRequest = (schemaIssue: SchemaIssue.Issue): BadRequest => {
  const issue = format(schemaIssue).issues[0]
  const param = pathOf(issue?.path)
  // Nullable fields read "Expected number | null"; callers care about the type they should send.
  const message = (issue?.message ?? "Invalid request").replace(/( \| null)+/g, "")
  if (param === "") {
    const text =
      message === "Expected a valid JSON body"
        ? "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
        : `The request body is invalid: ${message}. Expected a JSON object.`
    return new BadRequest({ message: text, param: null, code: null })
  }
  if (message === "Missing key") {
    return new BadRequest({ message: `Missing required parameter: '${param}'.`, param, code: null })
  }
  const text = message.includes(`'${param}'`)
    ? message
    : `Invalid value for '${param}': ${message.charAt(0).toLowerCase()}${message.slice(1)}.`
  return new BadRequest({ message: text, param, code: "invalid_value" })
}

const requestKinds = new Set(["Params", "Headers", "Query", "Payload"])

/** Only request decoding is the caller's fault; a response that fails to encode stays a 500. */
export const RequestValidationLive = HttpApiMiddleware.layerSchemaErrorTransform(RequestValidation, (error) => {
  if (!requestKinds.has(error.kind)) return Effect.fail(error)
  const bad = toBadRequest(error)
  // Noted for the usage record here: the authorization middleware, which notes the errors of handlers, does not see it.
  return noteUsage((notes) => {
    notes.error = recordedErrorOf(bad)
  }).pipe(Effect.andThen(Effect.fail(bad)))
})

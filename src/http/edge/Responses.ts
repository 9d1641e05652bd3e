import { HttpServerResponse } from "effect/http"
import { type ErrorBody, errorBody } from "../ApiErrors.ts"

/** The edge's own answers, in OpenAI's error shape. */
export const errorResponse = (
  status: number,
  type: string,
  message: string,
  code: string,
  headers: Record<string, string> = {}
) => HttpServerResponse.jsonUnsafe(errorBody(type, message, null, code) satisfies ErrorBody, { status, headers })

/** The path of a request URL, which may be absolute or only a path. */
export const pathOf = (url: string) => {
  try {
    return new URL(url, "http://gateway").pathname
  } catch {
    return url
  }
}

import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { type ErrorBody, errorBody } from "../ApiErrors.ts"

/** An answer of the edge's own, with the error code the usage record keeps. */
export interface EdgeAnswer {
  readonly response: HttpServerResponse.HttpServerResponse
  readonly error: string
}

/** The edge's own answers, in OpenAI's error shape. */
export const errorResponse = (
  status: number,
  type: string,
  message: string,
  code: string,
  headers: Record<string, string> = {}
): EdgeAnswer => ({
  response: HttpServerResponse.jsonUnsafe(errorBody(type, message, null, code) satisfies ErrorBody, { status, headers }),
  error: code
})

/** The path of a request URL, which may be absolute or only a path. */
export const pathOf = (url: string) => {
  try {
    return new URL(url, "http://gateway").pathname
  } catch {
    return url
  }
}

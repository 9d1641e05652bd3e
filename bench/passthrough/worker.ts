/**
 * The baseline for `npm run bench`: the least a Worker can do for the same
 * request. It forwards the body to the upstream and streams the answer back,
 * with no parsing, validation, retries or reshaping.
 */
interface Env {
  readonly UPSTREAM_URL: string
}

export default {
  fetch: (request: Request, env: Env) =>
    fetch(new URL("/api/generate-images", env.UPSTREAM_URL), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: request.body
    })
} satisfies ExportedHandler<Env>

/**
 * The floor of the edit path's memory for `BENCH_ONLY=edits`: what the platform itself holds for a multipart
 * upload, with none of the gateway's work. `/drain` reads the body and drops it; `/parse` parses it as a form
 * (`Request.formData()`, as the gateway does); `/forward` parses it and sends the form on to the upstream's
 * edit endpoint, as the `openai` kind does, and answers with what the upstream answered.
 */
interface Env {
  readonly UPSTREAM_URL: string
  readonly UPSTREAM_KEY: string
}

export default {
  fetch: async (request: Request, env: Env) => {
    const path = new URL(request.url).pathname
    if (path === "/drain") return new Response(String((await request.arrayBuffer()).byteLength))
    const form = await request.formData()
    if (path === "/parse") return new Response(String((form.get("image") as File | null)?.size ?? 0))
    return fetch(new URL("/v1/images/edits", env.UPSTREAM_URL), {
      method: "POST",
      headers: { authorization: `Bearer ${env.UPSTREAM_KEY}` },
      body: form
    })
  }
} satisfies ExportedHandler<Env>

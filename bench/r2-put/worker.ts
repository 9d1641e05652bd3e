/**
 * Measures what the local R2 simulator costs: under `wrangler dev` it runs in
 * the same workerd process as the Worker, so its CPU for a 1 MiB write shows
 * up in the gateway's `url` path. With MODE=put this Worker writes 1 MiB and
 * does nothing else; with MODE=none it does not write.
 */
interface Env {
  readonly IMAGES: R2Bucket
  readonly MODE: string
}

const payload = new Uint8Array(1024 * 1024).map((_, i) => (i * 31 + 7) & 255)

export default {
  async fetch(_request: Request, env: Env) {
    if (env.MODE === "put") {
      await env.IMAGES.put(`images/${crypto.randomUUID()}`, payload, { httpMetadata: { contentType: "image/png" } })
    }
    return new Response("ok")
  }
} satisfies ExportedHandler<Env>

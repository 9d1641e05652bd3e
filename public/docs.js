// Scalar renders the gateway's own /openapi.json. It loads from its CDN when the page is opened (about 1 MB
// gzipped, kept out of the Worker bundle), pinned to one version with Subresource Integrity: the browser runs
// exactly the file hashed here, or nothing. To update, see "API docs" in the README.
const SCALAR = {
  src: "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js",
  integrity: "sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ"
}

const fallback = () => {
  const note = document.createElement("p")
  note.id = "fallback"
  const link = (href, text) => Object.assign(document.createElement("a"), { href, textContent: text })
  note.append(
    "The API reference viewer (Scalar, from cdn.jsdelivr.net) could not be loaded. The raw description is at ",
    link("/openapi.json", "/openapi.json"),
    "; the ",
    link("/", "status page"),
    " works offline."
  )
  document.getElementById("app").replaceChildren(note)
}

const script = document.createElement("script")
script.src = SCALAR.src
script.integrity = SCALAR.integrity
script.crossOrigin = "anonymous"
script.onload = () => {
  if (window.Scalar) window.Scalar.createApiReference("#app", { url: "/openapi.json", hideClientButton: false })
  else fallback()
}
script.onerror = fallback
document.head.append(script)

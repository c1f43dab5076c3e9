// Waits until the Medusa backend answers GET /health with 200, or fails after a deadline.
const url = new URL("/health", process.env.BACKEND_URL).toString()
const deadline = Date.now() + Number(process.env.WAIT_TIMEOUT_SECONDS || "600") * 1000
for (;;) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
    if (response.ok) {
      console.log(`backend ready: ${url}`)
      process.exit(0)
    }
    console.log(`backend not ready: ${url} answered ${response.status}`)
  } catch (err) {
    console.log(`backend not ready: ${url}: ${err.cause?.code || err.message}`)
  }
  if (Date.now() > deadline) {
    console.error(`gave up waiting for ${url}`)
    process.exit(1)
  }
  await new Promise((resolve) => setTimeout(resolve, 5000))
}

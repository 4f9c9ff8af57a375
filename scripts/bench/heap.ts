// Heap of a `wrangler dev` worker's V8 isolate, read through wrangler's inspector proxy (Runtime.getHeapUsage).
// Locally the worker and every Durable Object of its script share that one isolate, so this is the cluster's worker
// and all its nodes together; a single node's heap cannot be told apart under wrangler dev.

export interface HeapSample {
  readonly usedBytes: number;
  readonly totalBytes: number;
}

const INSPECTOR_TIMEOUT_MS = 10_000;

/** One DevTools protocol call on a fresh connection; the proxy wants an Origin header. */
function inspectorCall(inspectorPort: number, method: string): Promise<Record<string, unknown>> {
  return new Promise((resolveCall, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${inspectorPort}/ws`, {
      headers: { Origin: "http://127.0.0.1" },
    } as unknown as string[]);
    // Far above the ids the proxy uses for its own messages.
    const id = 1_000_000_000 + Math.floor(Math.random() * 1_000_000);
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`the inspector did not answer ${method} within ${INSPECTOR_TIMEOUT_MS} ms`));
    }, INSPECTOR_TIMEOUT_MS);
    socket.onopen = () => socket.send(JSON.stringify({ id, method }));
    socket.onerror = () => {
      clearTimeout(timer);
      reject(new Error(`the inspector on port ${inspectorPort} refused the connection`));
    };
    socket.onmessage = (event) => {
      // The proxy sends messages of its own (with other ids) on connect: wait for ours.
      const message = JSON.parse(String(event.data)) as {
        id?: number;
        result?: Record<string, unknown>;
        error?: { message: string };
      };
      if (message.id !== id) {
        return;
      }
      clearTimeout(timer);
      socket.close();
      if (message.error !== undefined) {
        reject(new Error(`${method}: ${message.error.message}`));
      } else {
        resolveCall(message.result ?? {});
      }
    };
  });
}

export async function heapUsage(inspectorPort: number): Promise<HeapSample> {
  const result = await inspectorCall(inspectorPort, "Runtime.getHeapUsage");
  const sample = { usedBytes: Number(result["usedSize"]), totalBytes: Number(result["totalSize"]) };
  if (!Number.isFinite(sample.usedBytes) || !Number.isFinite(sample.totalBytes)) {
    throw new Error(`Runtime.getHeapUsage answered ${JSON.stringify(result).slice(0, 200)}`);
  }
  return sample;
}

/** Asks V8 to collect garbage first (for an "at rest" figure); false when the isolate refuses. */
export async function collectGarbage(inspectorPort: number): Promise<boolean> {
  try {
    await inspectorCall(inspectorPort, "HeapProfiler.collectGarbage");
    return true;
  } catch {
    return false;
  }
}

/** The heap, or the reason it could not be read (the benchmark reports either; it never fails for it). */
export async function tryHeapUsage(inspectorPort: number): Promise<HeapSample | { readonly unavailable: string }> {
  try {
    return await heapUsage(inspectorPort);
  } catch (error) {
    return { unavailable: error instanceof Error ? error.message : String(error) };
  }
}

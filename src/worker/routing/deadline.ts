// Every await on a node has a deadline: a node that never answers costs at most the time we gave it.

export class DeadlineExceeded extends Error {
  override readonly name = "DeadlineExceeded";

  constructor(readonly afterMs: number) {
    super(`no answer within ${Math.round(afterMs)} ms`);
  }
}

/** Settles like `promise`, or rejects with DeadlineExceeded after `ms`. The timer never outlives the race. */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded(ms)), Math.max(0, ms));
  });
  return Promise.race([promise, expired]).finally(() => {
    if (timer !== null) {
      clearTimeout(timer);
    }
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

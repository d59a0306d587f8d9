// Waiting on work for a bounded time.

/**
 * Resolves true when `ms` pass before `work` settles (the work goes on; its
 * result is dropped), false when it finishes first; rejects if it fails first.
 */
export async function timedOut (work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      work.then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Keeps the page live while training runs: calls `tick` every `intervalMs`,
 * never two at once, pauses while the tab is hidden (TensorBoard users leave
 * tabs open for days) and catches up as soon as it is shown again.
 */

export interface Poller {
  /** Runs a tick now (e.g. the refresh button) and restarts the interval. */
  now(): void;
  stop(): void;
}

export function startPolling(tick: () => Promise<void>, intervalMs: number): Poller {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let running = false;
  let stopped = false;
  let missed = false;

  const schedule = () => {
    if (timer !== null) clearTimeout(timer);
    timer = stopped ? null : setTimeout(run, intervalMs);
  };

  const run = async () => {
    timer = null;
    if (stopped) return;
    if (typeof document !== "undefined" && document.hidden) {
      missed = true;
      return; // resumed by the visibilitychange listener
    }
    if (running) return;
    running = true;
    try {
      await tick();
    } catch {
      // tick reports its own errors; polling simply carries on
    } finally {
      running = false;
      schedule();
    }
  };

  const onVisibility = () => {
    if (!document.hidden && missed) {
      missed = false;
      void run();
    }
  };
  if (typeof document !== "undefined") document.addEventListener("visibilitychange", onVisibility);

  schedule();
  return {
    now() {
      if (timer !== null) clearTimeout(timer);
      void run();
    },
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      if (typeof document !== "undefined") document.removeEventListener("visibilitychange", onVisibility);
    },
  };
}

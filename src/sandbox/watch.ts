/**
 * The deadline and the gateway's stop, watched while one invocation runs in a process (spawned,
 * forked or warm): whichever comes first calls `kill` and is remembered; `end` stops watching and
 * says how long the run took and what, if anything, cut it short.
 */
export class RunWatch {
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;
  private readonly onStop: () => void;
  private timedOut = false;
  private interrupted = false;

  constructor(
    timeoutMs: number,
    private readonly stop: AbortSignal,
    kill: () => void,
  ) {
    this.timer = setTimeout(() => {
      this.timedOut = true;
      kill();
    }, timeoutMs);
    this.onStop = () => {
      this.interrupted = true;
      kill();
    };
    stop.addEventListener("abort", this.onStop, { once: true });
    if (stop.aborted) this.onStop();
  }

  /** Whether the deadline or the stop has ended the run. */
  get cut(): boolean {
    return this.timedOut || this.interrupted;
  }

  end(): { durationMs: number; timedOut: boolean; interrupted: boolean } {
    clearTimeout(this.timer);
    this.stop.removeEventListener("abort", this.onStop);
    return { durationMs: performance.now() - this.started, timedOut: this.timedOut, interrupted: this.interrupted };
  }
}
